"""Daily logins by redirect against local fakes of Kite's and Flattrade's login pages and token APIs (real HTTP).

The browser is Flask's test client (its cookie jar is the signed-in session); the broker's login page is
driven with `requests`, as a browser would submit it. Every callback that the same browser session did not
start is refused before any code reaches the broker, and nothing is stored for it.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from app import create_app
from app.accounts.expiry import next_rollover
from app.accounts.model import SessionState
from app.config import load_config
from app.redis_keys import reconcile_request_key
from app.services import Services, set_services
from tests.support.env import ADMIN_TOKEN, make_env
from tests.support.fakes.flattrade_login import FakeFlattrade, flattrade_server
from tests.support.fakes.kite_login import FakeKite, kite_server

API_KEY = "kiteapikey01"
API_SECRET = "kite-api-secret-never-shown-0123"
FT_KEY = "ftapikey0123456789"
FT_SECRET = "2026.flattrade-secret-never-shown"
CALLBACK_BASE = "http://localhost"


@pytest.fixture
def fakes():
    kite = FakeKite(redirect_url=f"{CALLBACK_BASE}/brokers/kite/callback", apps={API_KEY: API_SECRET})
    flattrade = FakeFlattrade(redirect_url=f"{CALLBACK_BASE}/brokers/flattrade/callback", apps={FT_KEY: FT_SECRET})
    with kite_server(kite) as kite_http, flattrade_server(flattrade) as flattrade_http:
        yield kite, kite_http.url, flattrade, flattrade_http.url


@pytest.fixture
def login_services(redis_client, redis_url, sqlite_url, tmp_path, fakes):
    _, kite_url, _, flattrade_url = fakes
    env = make_env(
        redis_url,
        sqlite_url,
        tmp_path,
        KITE_LOGIN_URL=kite_url,
        KITE_API_URL=kite_url,
        FLATTRADE_AUTH_URL=flattrade_url,
        FLATTRADE_TOKEN_URL=f"{flattrade_url}/trade/apitoken",
    )
    built = Services.build(load_config(env))
    set_services(built)
    yield built
    set_services(None)
    built.engine.dispose()


@pytest.fixture
def web(login_services):
    return create_app(login_services.config, login_services)


def signed_in(web):
    """A browser with a signed-in session."""
    browser = web.test_client()
    assert browser.post("/signin", data={"token": ADMIN_TOKEN}).status_code == 200
    return browser


def kite_account(services, account_id="", secret=API_SECRET):
    return services.accounts.create(
        "kite", account_id, label="zerodha", credentials={"api_key": API_KEY, "api_secret": secret}
    )


def submit_kite_login(location: str, user_id: str | None = None) -> str:
    """Open the fake Kite login page at `location` and submit it; the callback URL (path and query) it sends to."""
    page = requests.get(location, timeout=10)
    assert page.status_code == 200 and "Kite" in page.text
    query = parse_qs(urlsplit(location).query)
    form = {"api_key": query["api_key"][0], "redirect_params": query["redirect_params"][0], "user_id": user_id or ""}
    if user_id is None:
        form["user_id"] = "AB1234"
    answer = requests.post(location.split("?")[0], data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    return _path(answer.headers["Location"])


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def outcome(response) -> dict[str, str]:
    """The Accounts page query a callback redirected to."""
    assert response.status_code == 302, response.get_data(as_text=True)
    parts = urlsplit(response.headers["Location"])
    assert parts.path == "/" and parts.fragment == "accounts"
    return {key: values[0] for key, values in parse_qs(parts.query).items()}


def start(browser, account) -> str:
    response = browser.get(f"/accounts/{account.id}/login")
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def test_kite_login_stores_the_session_names_the_account_and_asks_for_a_reconciliation(web, login_services, fakes):
    kite = fakes[0]
    account = kite_account(login_services)
    browser = signed_in(web)
    location = start(browser, account)
    assert location.startswith(fakes[1] + "/connect/login?")
    query = parse_qs(urlsplit(location).query)
    assert query["v"] == ["3"] and query["api_key"] == [API_KEY]
    state = parse_qs(query["redirect_params"][0])["state"][0]
    assert len(state) >= 32 and API_SECRET not in location

    callback = submit_kite_login(location)
    assert parse_qs(urlsplit(callback).query)["state"] == [state]  # redirect_params came back as a query key
    landed = outcome(browser.get(callback))
    assert landed["login"] == "ok" and landed["account"] == account.id

    stored = login_services.accounts.get(account.id, secrets=True)
    assert stored.session.state == SessionState.ACTIVE
    assert stored.session.token == kite.tokens[-1]
    assert stored.account_id == "AB1234"  # the login answer's user_id fills in the client id
    assert stored.session.expires_at == next_rollover("06:00", stored.session.logged_in_at)
    assert login_services.redis.get(reconcile_request_key(stored.reconcile_name)) == b"new session"
    exchange = kite.exchanges[-1]
    assert set(exchange) == {"api_key", "request_token", "checksum"} and API_SECRET not in json.dumps(exchange)


def test_a_forged_state_is_refused_and_nothing_reaches_the_broker(web, login_services, fakes):
    kite = fakes[0]
    account = kite_account(login_services)
    browser = signed_in(web)
    start(browser, account)
    for query in ("state=forged-state-0123456789&request_token=abc&status=success", "request_token=abc", "state=../x"):
        answer = browser.get(f"/brokers/kite/callback?{query}")
        assert answer.status_code == 403
        assert "Log in" in answer.get_json()["error"]
    assert kite.exchanges == []
    assert login_services.accounts.get(account.id).session.state == SessionState.MISSING


def test_a_used_state_is_refused_the_second_time(web, login_services, fakes):
    account = kite_account(login_services)
    browser = signed_in(web)
    callback = submit_kite_login(start(browser, account))
    assert outcome(browser.get(callback))["login"] == "ok"
    revision = login_services.accounts.get(account.id).session.revision
    again = browser.get(callback)
    assert again.status_code == 403
    assert login_services.accounts.get(account.id).session.revision == revision


def test_a_state_from_another_browser_session_is_refused_and_stays_its_owners(web, login_services, fakes):
    account = kite_account(login_services)
    owner, other = signed_in(web), signed_in(web)
    callback = submit_kite_login(start(owner, account))
    assert other.get(callback).status_code == 403
    assert web.test_client().get(callback).status_code == 403  # no session at all
    assert login_services.accounts.get(account.id).session.state == SessionState.MISSING
    assert outcome(owner.get(callback))["login"] == "ok"  # the refusal did not use the owner's login up


def test_a_wrong_checksum_is_refused_by_the_broker_and_said_without_the_secret(web, login_services, fakes):
    account = kite_account(login_services, secret="not-the-apps-secret-0123456789")
    browser = signed_in(web)
    landed = outcome(browser.get(submit_kite_login(start(browser, account))))
    assert landed["login"] == "error"
    assert "Kite refused the login" in landed["message"] and "checksum" in landed["message"]
    assert "not-the-apps-secret" not in json.dumps(landed)
    stored = login_services.accounts.get(account.id)
    assert stored.session.state == SessionState.MISSING
    assert "checksum" in stored.last_error


def test_a_login_as_another_broker_user_is_refused(web, login_services, fakes):
    account = kite_account(login_services, account_id="AB1234")
    browser = signed_in(web)
    landed = outcome(browser.get(submit_kite_login(start(browser, account), user_id="ZZ9999")))
    assert landed["login"] == "error" and "ZZ9999" in landed["message"] and "AB1234" in landed["message"]
    stored = login_services.accounts.get(account.id)
    assert stored.session.state == SessionState.MISSING and stored.account_id == "AB1234"
    assert "ZZ9999" in stored.last_error
    assert login_services.redis.get(reconcile_request_key(stored.reconcile_name)) is None


def test_two_kite_accounts_wait_for_their_logins_and_one_user_cannot_be_both(web, login_services, fakes):
    """Several accounts may wait for the login that names them; a login naming a user another account already
    is gets a plain refusal on the Accounts page, never a database error."""
    first, second = kite_account(login_services), kite_account(login_services)
    browser = signed_in(web)
    assert outcome(browser.get(submit_kite_login(start(browser, first), user_id="AB1234")))["login"] == "ok"
    landed = outcome(browser.get(submit_kite_login(start(browser, second), user_id="AB1234")))
    assert landed["login"] == "error" and "already another account" in landed["message"]
    assert login_services.accounts.get(second.id).session.state == SessionState.MISSING
    assert login_services.accounts.get(first.id).account_id == "AB1234"


def test_a_refused_status_from_kite_is_an_error_on_the_accounts_page(web, login_services, fakes):
    account = kite_account(login_services)
    browser = signed_in(web)
    callback = submit_kite_login(start(browser, account)).replace("status=success", "status=cancelled")
    landed = outcome(browser.get(callback))
    assert landed["login"] == "error" and "did not succeed" in landed["message"]
    assert fakes[0].exchanges == []


def test_starting_a_login_needs_a_browser_session_and_a_redirect_broker(web, login_services, redis_url, tmp_path):
    account = kite_account(login_services)
    anonymous = web.test_client().get(f"/accounts/{account.id}/login")
    assert anonymous.status_code == 302 and urlsplit(anonymous.headers["Location"]).path == "/"
    bearer = web.test_client().get(f"/accounts/{account.id}/login", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert bearer.status_code == 302 and urlsplit(bearer.headers["Location"]).path == "/"  # no browser to bind to
    browser = signed_in(web)
    dhan = login_services.accounts.create("dhan", "1100001")
    pasted = browser.get(f"/accounts/{dhan.id}/login")
    assert pasted.status_code == 400 and "paste" in pasted.get_json()["error"]
    assert browser.get("/accounts/acc_nope/login").status_code == 404
    assert browser.get("/brokers/nobroker/callback?state=x").status_code == 404
    assert browser.get("/brokers/dhan/callback?state=x").status_code == 400
    cross = browser.get(f"/accounts/{account.id}/login", headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    no_key = login_services.accounts.create("kite", "CD5678", credentials={"api_secret": "s"})
    missing = browser.get(f"/accounts/{no_key.id}/login")
    assert missing.status_code == 400 and "api_key" in missing.get_json()["error"]


def test_the_environment_account_is_not_logged_in_from_the_browser(redis_client, redis_url, sqlite_url, tmp_path):
    env = make_env(redis_url, sqlite_url, tmp_path, KITE_API_KEY="envkey", KITE_ACCESS_TOKEN="env-token-123")
    services = Services.build(load_config(env))
    try:
        web = create_app(services.config, services)
        answer = signed_in(web).get("/accounts/env-kite/login")
        assert answer.status_code == 409 and "environment" in answer.get_json()["error"]
    finally:
        services.engine.dispose()


# Flattrade: no state comes back, so the callback is bound to the latest login this browser session started.


def flattrade_account(services, secret=FT_SECRET, account_id="FT012345"):
    return services.accounts.create(
        "flattrade", account_id, credentials={"api_key": FT_KEY, "api_secret": secret}, label="flat"
    )


def submit_flattrade_login(location: str, client: str = "FT012345") -> str:
    page = requests.get(location, timeout=10)
    assert page.status_code == 200 and "FLATTRADE" in page.text
    app_key = parse_qs(urlsplit(location).query)["app_key"][0]
    base = location.split("?")[0].rstrip("/")
    answer = requests.post(
        f"{base}/login", data={"app_key": app_key, "client": client}, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 302
    return _path(answer.headers["Location"])


def test_flattrade_login_exchanges_the_request_code(web, login_services, fakes):
    flattrade = fakes[2]
    account = flattrade_account(login_services)
    browser = signed_in(web)
    location = start(browser, account)
    assert location == f"{fakes[3]}/?app_key={FT_KEY}"
    callback = submit_flattrade_login(location)
    assert outcome(browser.get(callback))["login"] == "ok"
    stored = login_services.accounts.get(account.id, secrets=True)
    assert stored.session.state == SessionState.ACTIVE and stored.session.token == flattrade.tokens[-1]
    assert set(flattrade.exchanges[-1]) == {"api_key", "request_code", "api_secret"}
    assert FT_SECRET not in json.dumps(flattrade.exchanges[-1])
    assert login_services.redis.get(reconcile_request_key(stored.reconcile_name)) == b"new session"
    assert browser.get(callback).status_code == 403  # used once


def test_flattrade_callback_nobody_started_or_from_another_session_is_refused(web, login_services, fakes):
    flattrade = fakes[2]
    account = flattrade_account(login_services)
    owner, other = signed_in(web), signed_in(web)
    assert owner.get("/brokers/flattrade/callback?code=abc&client=FT012345").status_code == 403  # never started
    callback = submit_flattrade_login(start(owner, account))
    assert other.get(callback).status_code == 403
    assert flattrade.exchanges == []
    assert outcome(owner.get(callback))["login"] == "ok"


def test_flattrade_wrong_secret_and_wrong_user_are_refused(web, login_services, fakes):
    wrong_secret = flattrade_account(login_services, secret="2026.not-the-secret", account_id="FT000001")
    browser = signed_in(web)
    landed = outcome(browser.get(submit_flattrade_login(start(browser, wrong_secret), client="FT000001")))
    assert landed["login"] == "error" and "Invalid API Secret" in landed["message"]
    assert "not-the-secret" not in json.dumps(landed)
    assert login_services.accounts.get(wrong_secret.id).session.state == SessionState.MISSING

    account = flattrade_account(login_services)
    landed = outcome(browser.get(submit_flattrade_login(start(browser, account), client="FT999999")))
    assert landed["login"] == "error" and "FT999999" in landed["message"]
    assert login_services.accounts.get(account.id).session.state == SessionState.MISSING


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/" + "x" * 5000 + "/login",
        "/accounts/%00%ff%fe/login",
        "/accounts/\u202e/login",
        "/brokers/kite/callback?state=" + "A" * 5000,
        "/brokers/kite/callback?state=%00&state=x&request_token=%ff",
        "/brokers/flattrade/callback?code=" + "c" * 5000,
        "/brokers/" + "k" * 300 + "/callback",
    ],
)
def test_hostile_login_urls_are_refused_plainly(web, login_services, path):
    answer = signed_in(web).get(path)
    assert answer.status_code in (400, 403, 404), answer.get_data(as_text=True)
    assert "error" in answer.get_json()
