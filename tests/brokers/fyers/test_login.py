"""Fyers' daily login by redirect against a local fake of its login page, validate-authcode and profile (real HTTP):
the auth code for the day's token, bound to the state this browser session was issued (docs/brokers.md "Fyers")."""

from __future__ import annotations

import hashlib
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
from tests.brokers.fyers.fakes import FakeFyers, fyers_server
from tests.support.env import ADMIN_TOKEN, make_env

APP_ID = "XC4XXXXXXM-100"
APP_SECRET = "fyers-app-secret-never-shown-01"
CALLBACK = "https://orderhook.example.com/brokers/fyers/callback"  # PUBLIC_BASE_URL of the test env


@pytest.fixture
def fake():
    broker = FakeFyers(apps={APP_ID: APP_SECRET}, redirect_url=CALLBACK)
    with fyers_server(broker) as server:
        yield broker, server.url


@pytest.fixture
def login_services(redis_client, redis_url, sqlite_url, tmp_path, fake):
    _, url = fake
    env = make_env(redis_url, sqlite_url, tmp_path, FYERS_LOGIN_URL=url, FYERS_API_URL=url)
    built = Services.build(load_config(env))
    set_services(built)
    yield built
    set_services(None)
    built.engine.dispose()


@pytest.fixture
def browser(login_services):
    client = create_app(login_services.config, login_services).test_client()
    assert client.post("/signin", data={"token": ADMIN_TOKEN}).status_code == 200
    return client


def fyers_account(services, account_id="XP0001", secret=APP_SECRET):
    return services.accounts.create(
        "fyers", account_id, label="fyers", credentials={"app_id": APP_ID, "app_secret": secret}
    )


def start(browser, account) -> str:
    response = browser.get(f"/accounts/{account.id}/login")
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def log_in_at_fyers(location: str) -> str:
    """Open the fake login page and submit it, as a browser does; the callback's path and query."""
    page = requests.get(location, timeout=10)
    assert page.status_code == 200 and "FYERS" in page.text
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    form = {"client_id": query["client_id"], "state": query["state"], "redirect_uri": query["redirect_uri"]}
    answer = requests.post(location.split("/api/v3/")[0] + "/login", data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    parts = urlsplit(answer.headers["Location"])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == CALLBACK
    return f"{parts.path}?{parts.query}"


def outcome(response) -> dict[str, str]:
    assert response.status_code == 302, response.get_data(as_text=True)
    parts = urlsplit(response.headers["Location"])
    assert parts.path == "/" and parts.fragment == "accounts"
    return {key: values[0] for key, values in parse_qs(parts.query).items()}


def test_the_login_exchanges_the_auth_code_with_the_app_id_hash(browser, login_services, fake):
    broker, url = fake
    account = fyers_account(login_services)
    location = start(browser, account)
    assert location.startswith(url + "/api/v3/generate-authcode?")
    query = parse_qs(urlsplit(location).query)
    assert query["client_id"] == [APP_ID] and query["response_type"] == ["code"]
    assert query["redirect_uri"] == [CALLBACK] and len(query["state"][0]) >= 32
    assert APP_SECRET not in location

    callback = log_in_at_fyers(location)
    assert parse_qs(urlsplit(callback).query)["state"] == query["state"]
    landed = outcome(browser.get(callback))
    assert landed["login"] == "ok" and landed["account"] == account.id

    stored = login_services.accounts.get(account.id, secrets=True)
    assert stored.session.state == SessionState.ACTIVE
    assert broker.user_of(f"{APP_ID}:{stored.session.token}") == "XP0001"
    assert stored.session.expires_at == next_rollover("06:00", stored.session.logged_in_at)
    assert login_services.redis.get(reconcile_request_key(stored.reconcile_name)) == b"new session"
    [exchange] = broker.exchanges
    assert exchange["grant_type"] == "authorization_code"
    assert exchange["appIdHash"] == hashlib.sha256(f"{APP_ID}:{APP_SECRET}".encode()).hexdigest()
    assert APP_SECRET not in json.dumps(exchange)
    profile = [r for r in broker.requests if r["path"] == "/api/v3/profile"]
    assert profile and profile[0]["headers"]["Authorization"] == f"{APP_ID}:{stored.session.token}"


def test_the_tokens_own_exp_claim_ends_the_session(browser, login_services, fake):
    from datetime import UTC, datetime, timedelta

    from app.brokers.fyers.login import token_expiry

    broker, _ = fake
    broker.token_lifetime = 5 * 3600  # the fake's tokens are JWTs that end in five hours
    account = fyers_account(login_services)
    assert outcome(browser.get(log_in_at_fyers(start(browser, account))))["login"] == "ok"
    stored = login_services.accounts.get(account.id, secrets=True)
    assert stored.session.expires_at == token_expiry(stored.session.token)
    assert timedelta(hours=4) < stored.session.expires_at - datetime.now(UTC) <= timedelta(hours=5)
    assert token_expiry("not-a-jwt") is None and token_expiry("eyJ0eXAi.opaque") is None


def test_a_forged_or_reused_state_is_refused_before_the_code_reaches_fyers(browser, login_services, fake):
    broker, _ = fake
    account = fyers_account(login_services)
    callback = log_in_at_fyers(start(browser, account))
    forged = callback.replace("state=", "state=x")
    refused = browser.get(forged)
    assert refused.status_code == 403 and "press Log in" in refused.get_json()["error"]
    assert broker.exchanges == []
    assert outcome(browser.get(callback))["login"] == "ok"
    again = browser.get(callback)
    assert again.status_code == 403 and len(broker.exchanges) == 1


def test_another_browser_sessions_callback_is_refused(browser, login_services, fake):
    broker, _ = fake
    callback = log_in_at_fyers(start(browser, fyers_account(login_services)))
    stranger = create_app(login_services.config, login_services).test_client()
    assert stranger.post("/signin", data={"token": ADMIN_TOKEN}).status_code == 200
    assert stranger.get(callback).status_code == 403 and broker.exchanges == []


def test_a_wrong_secret_is_refused_by_fyers_and_said_without_it(browser, login_services, fake):
    account = fyers_account(login_services, secret="not-the-apps-secret-0123")
    landed = outcome(browser.get(log_in_at_fyers(start(browser, account))))
    assert landed["login"] == "error" and "Fyers refused the login" in landed["message"]
    assert "not-the-apps-secret-0123" not in landed["message"]
    stored = login_services.accounts.get(account.id)
    assert stored.session.state == SessionState.MISSING and "Fyers refused" in stored.last_error


def test_a_login_as_another_fyers_user_is_refused(browser, login_services, fake):
    broker, _ = fake
    broker.user_id = "XP0999"  # the trader logged in at Fyers as somebody else
    account = fyers_account(login_services)
    landed = outcome(browser.get(log_in_at_fyers(start(browser, account))))
    assert landed["login"] == "error" and "XP0999" in landed["message"]
    assert login_services.accounts.get(account.id).session.state == SessionState.MISSING


def test_a_failed_login_at_fyers_is_an_error_and_nothing_is_exchanged(browser, login_services, fake):
    broker, _ = fake
    account = fyers_account(login_services)
    location = start(browser, account)
    state = parse_qs(urlsplit(location).query)["state"][0]
    landed = outcome(browser.get(f"/brokers/fyers/callback?s=error&code=-1&message=cancelled&state={state}"))
    assert landed["login"] == "error" and "did not succeed" in landed["message"]
    assert broker.exchanges == []


def test_the_redirect_url_to_register_is_the_callback(login_services):
    from app.accounts.login import login_for

    flow = login_for(login_services.config, "fyers")
    assert flow.redirect_url() == CALLBACK
    assert login_services.config.broker("fyers")["FYERS_LOGIN_URL"].startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("claims", "expected_hours"),
    [
        ({"exp": 5 * 3600}, 5),
        ({"exp": -60}, None),  # already past
        ({"exp": 30 * 24 * 3600}, None),  # a month: not a day's token, the rollover applies
        ({"exp": "soon"}, None),
        ({}, None),
    ],
)
def test_the_exp_claim_is_believed_only_within_a_days_reach(claims, expected_hours):
    import time
    from datetime import UTC, datetime, timedelta

    import jwt

    from app.brokers.fyers.login import token_expiry

    now = datetime.fromtimestamp(int(time.time()), UTC)
    if isinstance(claims.get("exp"), int):
        claims = {"exp": int(now.timestamp()) + claims["exp"]}
    token = jwt.encode(claims, "any-key-the-service-never-knows-0123456789", algorithm="HS256")
    expected = None if expected_hours is None else now + timedelta(hours=expected_hours)
    assert token_expiry(token, now=now) == expected
