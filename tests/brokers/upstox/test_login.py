"""Upstox's daily OAuth2 login against a local fake of its login dialog and token API (real HTTP).

The browser is Flask's test client (its cookie jar is the signed-in session); the fake's login page is submitted
with `requests`, as a browser would (docs/brokers.md "Accounts and daily logins").
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
from tests.brokers.upstox.fakes import FakeUpstox, upstox_server
from tests.support.env import ADMIN_TOKEN, make_env

API_KEY = "615b1297-d443-3b39-ba19-1927fbcdddc7"  # the shape of the authentication page's sample client_id
API_SECRET = "upstox-api-secret-never-shown-01"
REDIRECT = "https://orderhook.example.com/brokers/upstox/callback"  # PUBLIC_BASE_URL of make_env


@pytest.fixture
def fake_upstox():
    fake = FakeUpstox(apps={API_KEY: (API_SECRET, REDIRECT)})
    with upstox_server(fake) as http:
        yield fake, http.url


@pytest.fixture
def web(redis_client, redis_url, sqlite_url, tmp_path, fake_upstox):
    _, url = fake_upstox
    env = make_env(
        redis_url, sqlite_url, tmp_path, UPSTOX_API_URL=url, UPSTOX_LOGIN_URL=f"{url}/v2/login/authorization/dialog"
    )
    services = Services.build(load_config(env))
    set_services(services)
    yield create_app(services.config, services), services
    set_services(None)
    services.engine.dispose()


def signed_in(app):
    browser = app.test_client()
    assert browser.post("/signin", data={"token": ADMIN_TOKEN}).status_code == 200
    return browser


def add_account(services, account_id: str = "UP1234", secret: str = API_SECRET):
    return services.accounts.create(
        "upstox", account_id, label="upstox", credentials={"api_key": API_KEY, "api_secret": secret}
    )


def submit_login(location: str, user_id: str = "UP1234") -> str:
    """Open the fake login dialog and submit it; the callback's path and query it redirects to."""
    page = requests.get(location, timeout=10)
    assert page.status_code == 200 and "UPSTOX" in page.text
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    form = {"client_id": query["client_id"], "redirect_uri": query["redirect_uri"], "state": query["state"]}
    login = f"{location.split('/v2/')[0]}/login"
    answer = requests.post(login, data={**form, "user_id": user_id}, allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    parts = urlsplit(answer.headers["Location"])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT
    return f"{parts.path}?{parts.query}"


def outcome(response) -> dict[str, str]:
    assert response.status_code == 302, response.get_data(as_text=True)
    parts = urlsplit(response.headers["Location"])
    assert parts.path == "/" and parts.fragment == "accounts"
    return {key: values[0] for key, values in parse_qs(parts.query).items()}


def start(browser, account) -> str:
    response = browser.get(f"/accounts/{account.id}/login")
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def test_the_login_stores_the_day_token_until_0330_ist_and_asks_for_a_reconciliation(web, fake_upstox):
    app, services = web
    fake, url = fake_upstox
    account = add_account(services)
    browser = signed_in(app)
    location = start(browser, account)
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{url}/v2/login/authorization/dialog?")
    assert query["response_type"] == ["code"] and query["client_id"] == [API_KEY]
    assert query["redirect_uri"] == [REDIRECT] and len(query["state"][0]) >= 32
    assert API_SECRET not in location

    callback = submit_login(location)
    assert parse_qs(urlsplit(callback).query)["state"] == query["state"]
    landed = outcome(browser.get(callback))
    assert landed["login"] == "ok" and landed["account"] == account.id, landed

    stored = services.accounts.get(account.id, secrets=True)
    assert stored.session.state == SessionState.ACTIVE and stored.session.token == fake.latest_token("UP1234")
    assert stored.session.expires_at == next_rollover("03:30", stored.session.logged_in_at)
    assert services.redis.get(reconcile_request_key(stored.reconcile_name)) == b"new session"
    [exchange] = fake.exchanges
    assert exchange["grant_type"] == "authorization_code" and exchange["redirect_uri"] == REDIRECT
    assert exchange["client_id"] == API_KEY and exchange["client_secret"] == API_SECRET  # form-encoded, server side


def test_a_forged_or_used_state_is_refused_before_the_code_reaches_upstox(web, fake_upstox):
    app, services = web
    fake, _ = fake_upstox
    account = add_account(services)
    browser = signed_in(app)
    callback = submit_login(start(browser, account))
    for forged in ("code=abc&state=forged-state-0123456789", "code=abc", "code=abc&state=../x"):
        answer = browser.get(f"/brokers/upstox/callback?{forged}")
        assert answer.status_code == 403 and "Log in" in answer.get_json()["error"]
    assert signed_in(app).get(callback).status_code == 403  # another browser session
    assert fake.exchanges == []
    assert outcome(browser.get(callback))["login"] == "ok"
    assert browser.get(callback).status_code == 403  # used once


def test_a_wrong_secret_is_refused_by_upstox_and_said_without_the_secret(web, fake_upstox):
    app, services = web
    account = add_account(services, secret="not-the-apps-secret-0123456789")
    browser = signed_in(app)
    landed = outcome(browser.get(submit_login(start(browser, account))))
    assert landed["login"] == "error" and "Upstox refused the login: Invalid Credentials" in landed["message"]
    assert "not-the-apps-secret" not in json.dumps(landed)
    stored = services.accounts.get(account.id)
    assert stored.session.state == SessionState.MISSING and "Invalid Credentials" in stored.last_error


def test_a_login_as_another_upstox_user_is_refused(web, fake_upstox):
    app, services = web
    account = add_account(services, account_id="UP1234")
    browser = signed_in(app)
    landed = outcome(browser.get(submit_login(start(browser, account), user_id="ZZ9999")))
    assert landed["login"] == "error" and "ZZ9999" in landed["message"] and "UP1234" in landed["message"]
    assert services.accounts.get(account.id).session.state == SessionState.MISSING


def test_a_denied_login_never_exchanges_anything(web, fake_upstox):
    app, services = web
    fake, _ = fake_upstox
    account = add_account(services)
    browser = signed_in(app)
    state = parse_qs(urlsplit(start(browser, account)).query)["state"][0]
    landed = outcome(browser.get(f"/brokers/upstox/callback?state={state}"))
    assert landed["login"] == "error" and "no authorization code" in landed["message"]
    assert fake.exchanges == []
