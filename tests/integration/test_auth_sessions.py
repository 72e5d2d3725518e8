"""Sign-in sessions, CSRF, rate limits and the cookie on /api/* (Flask test client, real Redis)."""

from __future__ import annotations

import json

import pytest

from app import create_app, sessions
from app.config import load_config
from app.redis_keys import SESSION_PREFIX
from app.services import Services
from app.web import bp as web_bp  # noqa: F401 - imported so monkeypatching the module below is explicit
from tests.support.env import ADMIN_TOKEN, make_env

ORIGIN = "http://localhost"


@pytest.fixture(autouse=True)
def fast_failures(monkeypatch):
    """Failed sign-ins wait SIGN_IN_DELAY_SECONDS; a shorter wait keeps these tests quick (one test measures it)."""
    import app.web

    monkeypatch.setattr(app.web, "SIGN_IN_DELAY_SECONDS", 0.05)


def sign_in(client, token: str = ADMIN_TOKEN, **headers):
    return client.post("/signin", data={"token": token}, headers=headers)


def csrf_of(client) -> str:
    page = client.get("/").get_data(as_text=True)
    marker = 'name="csrf-token" content="'
    return page.split(marker, 1)[1].split('"', 1)[0]


def test_without_a_session_the_page_is_the_sign_in_form(client):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert '<label for="token">Admin token</label>' in html and 'type="password"' in html
    assert ">Sign in</button>" in html
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_sign_in_sets_an_httponly_lax_cookie_and_the_token_never_reaches_the_page(client):
    answer = sign_in(client)
    assert answer.status_code == 200, answer.data
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"{sessions.COOKIE_NAME}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http here
    assert ADMIN_TOKEN not in cookie
    page = client.get("/").get_data(as_text=True)
    assert "Sign out" in page and ADMIN_TOKEN not in page
    assert client.get("/api/orders").status_code == 200


@pytest.mark.parametrize(("trusted_proxies", "secure"), [("0", False), ("1", True)])
def test_x_forwarded_proto_counts_only_from_trusted_proxies(
    redis_client, redis_url, sqlite_url, tmp_path, trusted_proxies, secure
):
    """Behind TRUSTED_PROXIES a proxy's X-Forwarded-Proto makes the cookie Secure; without, the header is
    anyone's to send and changes nothing (nor the same-origin check's scheme)."""
    env = make_env(redis_url, sqlite_url, tmp_path, TRUSTED_PROXIES=trusted_proxies)
    services = Services.build(load_config(env))
    client = create_app(services.config, services).test_client()
    answer = sign_in(client, **{"X-Forwarded-Proto": "https"})
    assert answer.status_code == 200
    assert ("Secure" in answer.headers["Set-Cookie"]) is secure
    signed_out = client.post("/signout", headers={"X-Forwarded-Proto": "https", "X-CSRF-Token": csrf_of(client)})
    assert ("Secure" in signed_out.headers["Set-Cookie"]) is secure
    services.engine.dispose()


def test_session_has_an_idle_expiry_in_redis(client, services):
    sign_in(client)
    sid = client.get_cookie(sessions.COOKIE_NAME).value
    ttl = services.redis.ttl(SESSION_PREFIX + sid)
    assert 0 < ttl <= sessions.IDLE_SECONDS


def test_sign_out_ends_the_session_on_the_server(client):
    sign_in(client)
    old = client.get_cookie(sessions.COOKIE_NAME).value
    csrf = csrf_of(client)
    assert client.post("/signout", headers={"X-CSRF-Token": "wrong"}).status_code == 403
    answer = client.post("/signout", headers={"X-CSRF-Token": csrf, "Origin": ORIGIN})
    assert answer.status_code == 200
    client.set_cookie(sessions.COOKIE_NAME, old)
    refused = client.get("/api/orders")
    assert refused.status_code == 401 and "error" in refused.get_json()
    assert "Admin token" in client.get("/").get_data(as_text=True)


def test_wrong_token_is_refused_as_json(client):
    answer = sign_in(client, token="nope")
    assert answer.status_code == 401 and "wrong admin token" in answer.get_json()["error"]
    assert client.get_cookie(sessions.COOKIE_NAME) is None


def test_failed_sign_ins_are_slowed_down(client, monkeypatch):
    import time

    import app.web

    monkeypatch.setattr(app.web, "SIGN_IN_DELAY_SECONDS", 0.5)
    started = time.monotonic()
    sign_in(client, token="nope")
    assert time.monotonic() - started >= 0.5


def test_failed_sign_ins_are_rate_limited_per_client(client):
    for _ in range(sessions.SIGN_IN_LIMIT.amount):
        assert sign_in(client, token="nope").status_code == 401
    blocked = sign_in(client)  # even the right token waits: no oracle for a guesser
    assert blocked.status_code == 429 and "error" in blocked.get_json()
    assert 0 < int(blocked.headers["Retry-After"]) <= sessions.SIGN_IN_LIMIT.get_expiry()
    other = client.post("/signin", data={"token": ADMIN_TOKEN}, environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert other.status_code == 200  # another client (its address as ProxyFix or the peer gives it)


def test_wrong_bearer_tokens_are_rate_limited_per_client(client):
    for _ in range(sessions.BEARER_LIMIT.amount):
        assert client.get("/api/orders", headers={"Authorization": "Bearer wrong"}).status_code == 401
    blocked = client.get("/api/orders", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert blocked.status_code == 429 and blocked.headers["Retry-After"].isdigit()
    assert "wait" in blocked.get_json()["error"]
    right = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert client.get("/api/orders", headers=right, environ_base={"REMOTE_ADDR": "198.51.100.9"}).status_code == 200


def test_requests_without_credentials_are_not_counted(client):
    for _ in range(sessions.BEARER_LIMIT.amount + 5):
        assert client.get("/api/orders").status_code == 401
    assert client.get("/api/orders", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no CSRF header
        {"X-CSRF-Token": "not-it"},
        {"X-CSRF-Token": "{csrf}", "Origin": "https://evil.example"},
        {"X-CSRF-Token": "{csrf}", "Sec-Fetch-Site": "cross-site"},
        {"X-CSRF-Token": "{csrf}", "Origin": "null"},
    ],
)
def test_cookie_writes_from_another_site_are_refused(client, headers):
    sign_in(client)
    csrf = csrf_of(client)
    sent = {k: v.replace("{csrf}", csrf) for k, v in headers.items()}
    answer = client.post("/api/deliveries/1/retry", headers=sent)
    assert answer.status_code == 403 and "error" in answer.get_json()


def test_cookie_writes_from_the_page_pass(client):
    sign_in(client)
    headers = {"X-CSRF-Token": csrf_of(client), "Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/deliveries/1/retry", headers=headers).status_code == 404  # past auth: no such delivery


def test_bearer_writes_need_no_csrf(client, admin_headers):
    assert client.post("/api/deliveries/1/retry", headers=admin_headers).status_code == 404


def test_cross_site_sign_in_is_refused(client):
    answer = sign_in(client, Origin="https://evil.example")
    assert answer.status_code == 403 and client.get_cookie(sessions.COOKIE_NAME) is None


def test_stream_needs_auth(client):
    assert client.get("/api/stream").status_code == 401


def test_dev_sign_in_link_is_development_only(client, services):
    code = sessions.issue_dev_code(services.redis)
    assert client.get(f"/signin/dev?code={code}").status_code == 404


@pytest.fixture
def dev_client(redis_client, redis_url, sqlite_url, tmp_path):
    env = make_env(redis_url, sqlite_url, tmp_path, APP_ENV="development")
    services = Services.build(load_config(env))
    yield create_app(services.config, services).test_client(), services
    services.engine.dispose()


def test_dev_sign_in_link_works_once(dev_client):
    client, services = dev_client
    code = sessions.issue_dev_code(services.redis)
    first = client.get(f"/signin/dev?code={code}")
    assert first.status_code == 303 and first.headers["Location"].endswith("/")
    assert "HttpOnly" in first.headers["Set-Cookie"]
    assert client.get("/api/orders").status_code == 200
    client.delete_cookie(sessions.COOKIE_NAME)
    again = client.get(f"/signin/dev?code={code}")
    assert again.status_code == 403 and "expired" in again.get_json()["error"]


def test_redrive_counts_first_and_validates(client, admin_headers):
    def post(body):
        return client.post(
            "/api/deliveries/redrive", data=json.dumps(body), headers=admin_headers, content_type="application/json"
        )

    answer = post({"consumer": "http://127.0.0.1:9/hook", "since": "2026-01-01T00:00:00Z", "dry_run": True})
    assert answer.status_code == 200 and answer.get_json() == {"count": 0, "dry_run": True}
    assert post({"consumer": "http://127.0.0.1:9/hook", "dry_run": False}).get_json()["count"] == 0
    for bad in ({}, {"consumer": 3}, {"consumer": "x", "since": "yesterday"}, {"consumer": "x", "dry_run": "no"}, [1]):
        refused = post(bad)
        assert refused.status_code == 400 and refused.get_json()["error"], bad
