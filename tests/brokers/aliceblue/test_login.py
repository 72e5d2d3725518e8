"""AliceBlue's redirect login against a local fake of its login page and session API (real HTTP).

The browser is Flask's test client (signed in); the fake login page is submitted with `requests`, as a browser
would. AliceBlue sends no state back, so the callback is bound to the latest login this browser session started.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from app import create_app
from app.accounts.model import SessionState
from app.brokers.aliceblue.login import checksum
from app.config import load_config
from app.redis_keys import reconcile_request_key
from app.services import Services, set_services
from tests.brokers.aliceblue.fake_login import FakeAliceBlue, aliceblue_server
from tests.support.env import ADMIN_TOKEN, make_env

APP_CODE = "voAliceAppCode01"
API_SECRET = "alice-api-secret-never-shown-0123456789"
CALLBACK_BASE = "http://localhost"
CLIENT = "912444"


@pytest.fixture
def fake():
    broker = FakeAliceBlue(redirect_url=f"{CALLBACK_BASE}/brokers/aliceblue/callback", apps={APP_CODE: API_SECRET})
    with aliceblue_server(broker) as http:
        yield broker, http.url


@pytest.fixture
def login_services(redis_client, redis_url, sqlite_url, tmp_path, fake):
    url = fake[1]
    env = make_env(redis_url, sqlite_url, tmp_path, ALICEBLUE_LOGIN_URL=url, ALICEBLUE_API_URL=f"{url}/open-api/od/v1")
    built = Services.build(load_config(env))
    set_services(built)
    yield built
    set_services(None)
    built.ingestor.close()
    built.engine.dispose()


@pytest.fixture
def web(login_services):
    return create_app(login_services.config, login_services)


def signed_in(web):
    browser = web.test_client()
    assert browser.post("/signin", data={"token": ADMIN_TOKEN}).status_code == 200
    return browser


def account(services, secret=API_SECRET, account_id=CLIENT):
    return services.accounts.create(
        "aliceblue", account_id, credentials={"app_code": APP_CODE, "api_secret": secret}, label="alice"
    )


def start(browser, acc) -> str:
    response = browser.get(f"/accounts/{acc.id}/login")
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def submit(location: str, user_id: str = CLIENT) -> str:
    """Open the fake login page and submit it; the callback (path and query) it redirects to."""
    page = requests.get(location, timeout=10)
    assert page.status_code == 200 and "ALICEBLUE" in page.text
    app_code = parse_qs(urlsplit(location).query)["appcode"][0]
    base = location.split("?")[0].rstrip("/")
    answer = requests.post(
        f"{base}/login", data={"appcode": app_code, "userId": user_id}, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 302
    parts = urlsplit(answer.headers["Location"])
    return f"{parts.path}?{parts.query}"


def outcome(response) -> dict[str, str]:
    assert response.status_code == 302, response.get_data(as_text=True)
    parts = urlsplit(response.headers["Location"])
    assert parts.path == "/" and parts.fragment == "accounts"
    return {key: values[0] for key, values in parse_qs(parts.query).items()}


def test_the_checksum_is_sha256_of_user_auth_code_and_secret():
    """docs/brokers.md "Accounts and daily logins": SHA-256 of userId + authCode + apiSecret, in that order."""
    assert checksum("912444", "code", "secret") == hashlib.sha256(b"912444codesecret").hexdigest()
    assert checksum("912444", "code", "secret") != hashlib.sha256(b"code912444secret").hexdigest()


def test_the_login_stores_the_user_session_and_asks_for_a_reconciliation(web, login_services, fake):
    broker, url = fake
    acc = account(login_services)
    browser = signed_in(web)
    location = start(browser, acc)
    assert location == f"{url}/?appcode={APP_CODE}" and API_SECRET not in location
    callback = submit(location)
    assert outcome(browser.get(callback))["login"] == "ok"
    stored = login_services.accounts.get(acc.id, secrets=True)
    assert stored.session.state == SessionState.ACTIVE and stored.session.token == broker.sessions[-1]
    assert set(broker.requests[-1]) == {"checkSum"} and API_SECRET not in json.dumps(broker.requests)
    assert login_services.redis.get(reconcile_request_key(stored.reconcile_name)) == b"new session"
    assert browser.get(callback).status_code == 403  # used once


def test_a_callback_nobody_started_or_from_another_session_is_refused(web, login_services, fake):
    broker, _ = fake
    acc = account(login_services)
    owner, other = signed_in(web), signed_in(web)
    assert owner.get(f"/brokers/aliceblue/callback?authCode=abc&userId={CLIENT}").status_code == 403
    callback = submit(start(owner, acc))
    assert other.get(callback).status_code == 403
    assert broker.requests == []
    assert outcome(owner.get(callback))["login"] == "ok"


def test_a_wrong_secret_and_another_user_are_refused(web, login_services):
    wrong = account(login_services, secret="not-the-secret-at-all-000", account_id="912000")
    browser = signed_in(web)
    landed = outcome(browser.get(submit(start(browser, wrong), user_id="912000")))
    assert landed["login"] == "error" and "Invalid auth code" in landed["message"]
    assert "not-the-secret" not in json.dumps(landed)
    assert login_services.accounts.get(wrong.id).session.state == SessionState.MISSING

    acc = account(login_services)
    landed = outcome(browser.get(submit(start(browser, acc), user_id="999999")))
    assert landed["login"] == "error" and "999999" in landed["message"]
    assert login_services.accounts.get(acc.id).session.state == SessionState.MISSING
