"""Session and rate-limit checks fail closed on a real Redis whose pool is small or exhausted: many
concurrent requests (threads, each with its own Flask test client) and every pooled connection held."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from werkzeug.test import TestResponse

from app import create_app, redis_conn, sessions
from app.config import load_config
from app.services import Services, set_services
from tests.support.env import ADMIN_TOKEN, make_env

WRONG = {"Authorization": "Bearer wrong-token"}
RIGHT = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def small(redis_client, redis_url, sqlite_url, tmp_path):
    """An app whose Redis pool is small: WEB_CONNECTIONS=4 (the pool is sized from it)."""
    env = make_env(redis_url, sqlite_url, tmp_path, WEB_CONNECTIONS="4")
    services = Services.build(load_config(env))
    set_services(services)
    app = create_app(services.config, services)
    yield services, app
    set_services(None)
    services.engine.dispose()


def signed_in(app) -> str:
    """A session id, signed in through the page."""
    client = app.test_client()
    assert client.post("/signin", data={"token": ADMIN_TOKEN}).status_code == 200
    return client.get_cookie(sessions.COOKIE_NAME).value


def with_cookie(app, sid: str):
    client = app.test_client()
    client.set_cookie(sessions.COOKIE_NAME, sid)
    return client


#: The client of the guesses made while Redis cannot count: the process's own window for it lasts a minute,
#: so it is one no other test uses.
GUESSER = "203.0.113.77"


def guess(app, address: str = "127.0.0.1") -> int:
    """One wrong bearer token from `address`: the answer's status."""
    return app.test_client().get("/api/orders", headers=WRONG, environ_base={"REMOTE_ADDR": address}).status_code


def right(app, address: str) -> TestResponse:
    """The right bearer token from `address`."""
    return app.test_client().get("/api/orders", headers=RIGHT, environ_base={"REMOTE_ADDR": address})


def assert_unchecked(answer) -> None:
    """503 with Retry-After and a JSON error: refused, not waved through, not signed out."""
    assert answer.status_code == 503, (answer.status_code, answer.data)
    assert answer.headers["Retry-After"].isdigit()
    assert "Redis" in answer.get_json()["error"]


def test_the_pool_is_a_blocking_one_sized_by_web_connections(small):
    services, _app = small
    pool = services.redis.connection_pool
    assert isinstance(pool, redis.BlockingConnectionPool)  # callers wait for a connection, not fail at once
    assert pool.max_connections == redis_conn.pool_size(services.config) == 4 + redis_conn.POOL_HEADROOM
    assert pool.timeout == redis_conn.POOL_WAIT_SECONDS


def test_with_every_pooled_connection_held_checks_fail_closed(small):
    services, app = small
    sid = signed_in(app)
    pool = services.redis.connection_pool
    held = [pool.get_connection() for _ in range(pool.max_connections)]
    try:
        assert_unchecked(with_cookie(app, sid).get("/api/orders"))  # never 401: that signs the blotter out
        assert_unchecked(with_cookie(app, sid).get("/api/stream"))
        page = with_cookie(app, sid).get("/")
        assert page.status_code == 503 and "Admin token" not in page.get_data(as_text=True)  # not the sign-in form
        assert_unchecked(app.test_client().get("/api/orders", headers=WRONG, environ_base={"REMOTE_ADDR": GUESSER}))
        # The limit still holds, in the process's own window: the right token passes until the client
        # is past it, and then it waits like every guess.
        assert right(app, GUESSER).status_code == 200
        with ThreadPoolExecutor(max_workers=40) as threads:
            codes = Counter(threads.map(lambda _n: guess(app, GUESSER), range(sessions.BEARER_LIMIT.amount + 10)))
        assert codes == {503: sessions.BEARER_LIMIT.amount - 1, 429: 11}, codes
        blocked = right(app, GUESSER)
        assert blocked.status_code == 429 and blocked.headers["Retry-After"].isdigit()
    finally:
        for connection in held:
            pool.release(connection)
    assert with_cookie(app, sid).get("/api/orders").status_code == 200
    assert guess(app) == 401  # Redis counts again (its own window is fresh)


def test_many_concurrent_wrong_tokens_meet_the_limit_exactly(small):
    """300 wrong tokens from one client, 100 at a time, over the small pool: exactly the
    limit's 30 are answered 401, every other one 429 (or 503 had one waited out the pool), none passes."""
    _services, app = small
    with ThreadPoolExecutor(max_workers=100) as threads:
        codes = Counter(threads.map(lambda _n: guess(app), range(300)))
    assert set(codes) <= {401, 429, 503}, codes
    assert codes[401] == sessions.BEARER_LIMIT.amount, codes


def test_many_concurrent_signed_in_streams_are_never_signed_out(small):
    """200 signed-in stream opens at once over the small pool: each opens (or is told to retry), none 401."""
    _services, app = small
    sid = signed_in(app)

    def open_stream(_n: int) -> int:
        answer = with_cookie(app, sid).get("/api/stream")
        try:
            return answer.status_code
        finally:
            answer.close()

    with ThreadPoolExecutor(max_workers=100) as threads:
        codes = Counter(threads.map(open_stream, range(200)))
    assert 401 not in codes and set(codes) <= {200, 503}, codes
    assert codes[200] > 0, codes
