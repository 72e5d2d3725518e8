"""Upstox's Portfolio Stream Feed against a local fake: the authorize step, single-use URLs, frames, refusals,
drops and mute sockets (docs/brokers.md §10.2)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import responses
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from app.accounts.model import SessionState
from app.brokers.feed import FeedAuthError
from app.brokers.upstox.feed import UpstoxConnector
from app.redis_keys import ALERTS_STREAM
from tests.brokers.upstox.fakes import FakeUpstox, FakeUpstoxSocket, upstox_server
from tests.brokers.upstox.samples import AUTHORIZE_ANSWER, lifecycle, order_update
from tests.support.fakes.harness import ServiceBuilder, api_client, wait_state
from tests.support.fakes.socket_server import wait_until
from tests.support.helpers import run_pipeline
from workers.feeds.runner import build_supervisor

TOKEN = "upstox-access-token-0123456789abcdef"
USER = "UP1234"
AUTHORIZE = "/v2/feed/portfolio-stream-feed/authorize"
QUICK = {"FEEDS_ACCOUNTS_POLL_SECONDS": "0.2", "FEEDS_LEASE_SECONDS": "6", "FEEDS_CONNECT_RATE": "100"}
TELEGRAM = {"TELEGRAM_BOT_TOKEN": "123456:test-bot-token", "TELEGRAM_CHAT_ID": "42"}


#: Seconds a connector gets to stop at the end of a test: generous, as the machine may be busy (a connection
#: closing on a mute peer waits its close timeout).
STOP_SECONDS = 20


@asynccontextmanager
async def running(services) -> AsyncIterator[UpstoxConnector]:
    """The connector's run() as a task; stopped (and awaited, bounded) on exit."""
    stop = asyncio.Event()
    connector = UpstoxConnector(services, stop)
    task = asyncio.ensure_future(connector.run())
    try:
        yield connector
    finally:
        stop.set()
        await asyncio.wait_for(task, STOP_SECONDS)


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


def upstox_env(http_url: str, **extra: str) -> dict[str, str]:
    return {
        "FEEDS": "upstox",
        "UPSTOX_FEED_AUTHORIZE_URL": http_url + AUTHORIZE,
        "UPSTOX_ACCESS_TOKEN": TOKEN,
        "UPSTOX_USER_ID": USER,
        **extra,
    }


def codes(fake_socket: FakeUpstoxSocket) -> list[str]:
    """The code each accepted connection came with."""
    return [dict(part.split("=") for part in s.path.split("?")[1].split("&"))["code"] for s in fake_socket.sessions]


def test_authorize_step_then_an_orders_life_a_rejection_a_modification_and_a_cancel_are_stored(build, admin_headers):
    """Bearer token and update_types=order at the authorize step; JSON text frames; other update types skipped."""
    placed, opened, partly, filled = lifecycle("250512000000001")
    rejected = order_update("250512000000002", status="rejected", status_message="Insufficient funds")
    working = order_update("250512000000003", status="open", exchange_timestamp="2025-05-12 10:20:00")
    modified = dict(working, status="modified", price=270.0, exchange_timestamp="2025-05-12 10:21:00")
    cancelling = dict(modified, status="cancel pending", exchange_timestamp="2025-05-12 10:22:00")
    cancelled = dict(cancelling, status="cancelled", pending_quantity=0, exchange_timestamp="2025-05-12 10:22:01")

    async def scenario():
        async with FakeUpstoxSocket() as sock:
            fake = FakeUpstox(socket=sock, tokens={TOKEN: USER})
            with upstox_server(fake) as http:
                services = build(**upstox_env(http.url))
                async with running(services):
                    await sock.wait_sessions(1, logged_in=False)
                    await wait_state(services, "upstox", "connected", lambda s: s.get("connected"))
                    await sock.push({"update_type": "position", "instrument_token": "NSE_EQ|INE848E01016"})
                    await sock.push(dict(placed, update_type="gtt_order"))  # not an order: skipped
                    for frame in (placed, opened, partly, filled, rejected, working, modified, cancelling, cancelled):
                        await sock.push(frame)
                    state = await wait_state(services, "upstox", "nine events", lambda s: s.get("events") == 9)
        return services, fake, sock, state

    services, fake, sock, state = asyncio.run(scenario())
    assert fake.authorize_requests == [{"update_types": "order", "auth": f"Bearer {TOKEN}"}]
    assert sock.sessions[0].messages == []  # nothing is sent: the server starts pushing at once
    assert state["invalid"] == 0 and state["messages"] == 11
    run_pipeline(services)
    client = api_client(services)
    order = client.get("/api/orders/upstox/250512000000001", headers=admin_headers).get_json()
    assert [e["status"] for e in order["events"]] == ["PENDING", "OPEN", "PARTIALLY_FILLED", "FILLED"]
    assert order["status"] == "FILLED" and order["filled_quantity"] == 10 and order["account_id"] == USER
    assert {e["source"] for e in order["events"]} == {"websocket"}
    refused = client.get("/api/orders/upstox/250512000000002", headers=admin_headers).get_json()
    assert refused["status"] == "REJECTED" and refused["reason"] == "Insufficient funds"
    changed = client.get("/api/orders/upstox/250512000000003", headers=admin_headers).get_json()
    assert changed["status"] == "CANCELLED" and changed["price"] == 270.0
    assert [(e["status"], e["modified"]) for e in changed["events"]] == [
        ("OPEN", False),
        ("OPEN", True),
        ("OPEN", True),
        ("CANCELLED", False),
    ]


def test_every_connection_takes_a_fresh_single_use_url_and_a_used_one_is_refused(build):
    """A drop reconnects through the authorize step again; the first URL cannot be used twice."""

    async def scenario():
        async with FakeUpstoxSocket() as sock:
            fake = FakeUpstox(socket=sock, tokens={TOKEN: USER})
            with upstox_server(fake) as http:
                services = build(**upstox_env(http.url))
                async with running(services):
                    first = await sock.wait_sessions(1, logged_in=False)
                    await wait_state(services, "upstox", "connected", lambda s: s.get("connected"))
                    sock.drop()
                    await sock.wait_sessions(2, logged_in=False)
                    state = await wait_state(services, "upstox", "reconnected", lambda s: s.get("reconnects") == 1)
                    with pytest.raises(InvalidStatus) as reused:
                        async with connect(f"ws://127.0.0.1:{sock.port}{first.path}", open_timeout=5):
                            pass
                    await sock.push(order_update(status="open"))
                    await wait_state(services, "upstox", "an event", lambda s: s.get("events") == 1)
        return fake, sock, state, reused.value

    fake, sock, state, reused = asyncio.run(scenario())
    assert len(fake.authorize_requests) == 2 and len(sock.sessions) == 2
    first, second = codes(sock)
    assert first != second and sock.refused == [first]
    assert reused.response.status_code == 403
    assert first not in json.dumps(state) and second not in json.dumps(state)


def test_a_token_refused_at_the_authorize_step_stops_before_any_socket_and_is_never_logged(build, caplog):
    """401 with UDAPI100050 at the authorize step: auth_failed, no handshake, no second try."""
    caplog.set_level(logging.DEBUG)

    async def scenario():
        async with FakeUpstoxSocket() as sock:
            fake = FakeUpstox(socket=sock, tokens={"some-other-token-0000": USER})
            with upstox_server(fake) as http:
                services = build(**upstox_env(http.url))
                async with running(services):
                    state = await wait_state(services, "upstox", "refused", lambda s: s.get("state") == "auth_failed")
                    await asyncio.sleep(0.5)
        return fake, sock, state

    fake, sock, state = asyncio.run(scenario())
    assert len(fake.authorize_requests) == 1 and sock.handshakes == 0
    assert "401" in state["last_error"] and "Invalid token" in state["last_error"]
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.server"))
    assert TOKEN not in ours and TOKEN not in json.dumps(state)


def test_an_accounts_refused_token_asks_for_a_login_and_a_new_session_reconnects(build):
    """A data account: the refusal marks the session refused with one login-needed line; a new token connects."""

    async def scenario():
        async with FakeUpstoxSocket() as sock:
            fake = FakeUpstox(socket=sock, tokens={TOKEN: USER})
            with upstox_server(fake) as http:
                services = build(**QUICK, **TELEGRAM, **upstox_env(http.url, FEEDS="", UPSTOX_ACCESS_TOKEN=""))
                account = services.accounts.create(
                    "upstox",
                    USER,
                    credentials={"api_key": "upkey", "api_secret": "upsecret"},
                    session_token="yesterdays-upstox-token-000",
                )
                stop = asyncio.Event()
                task = asyncio.ensure_future(build_supervisor(services, stop, ()).run())
                await wait_until(
                    lambda: services.accounts.get(account.id).session.state == SessionState.REFUSED, "refused", 10
                )
                await asyncio.sleep(1.0)  # five ticks: nothing tries the refused token again
                attempts_while_refused = len(fake.authorize_requests)
                services.accounts.set_session(account.id, TOKEN)
                await sock.wait_sessions(1, 10, logged_in=False)
                await wait_state(services, account.feed_status_name("upstox"), "up", lambda s: s.get("connected"))
                stop.set()
                await asyncio.wait_for(task, 15)
        return services, fake, sock, attempts_while_refused

    services, fake, sock, attempts_while_refused = asyncio.run(scenario())
    assert attempts_while_refused == 1 and fake.authorize_requests[-1]["auth"] == f"Bearer {TOKEN}"
    assert sock.connected_tokens == [TOKEN]
    lines = [fields[b"text"].decode() for _, fields in services.redis.xrange(ALERTS_STREAM)]
    assert [line for line in lines if line.startswith("login needed")] == [
        "login needed: upstox UP1234 (the upstox feed's login was refused)"
    ]


def test_a_refused_one_time_url_and_a_failing_authorize_step_are_drops_not_refusals(build):
    """After the token was accepted, a refused handshake is retried with a fresh URL; a 503 there is retried too."""

    async def scenario():
        async with FakeUpstoxSocket() as sock:
            fake = FakeUpstox(socket=sock, tokens={TOKEN: USER}, authorize_fail_next=[503])
            sock.refuse_handshakes = 1
            with upstox_server(fake) as http:
                services = build(**upstox_env(http.url))
                async with running(services):
                    await sock.wait_sessions(1, 10, logged_in=False)
                    state = await wait_state(services, "upstox", "connected", lambda s: s.get("connected"))
        return fake, sock, state

    fake, sock, state = asyncio.run(scenario())
    assert len(fake.authorize_requests) == 3 and len(sock.refused) == 1 and len(sock.sessions) == 1
    assert state["state"] == "running" and state["reconnects"] == 2


def test_a_mute_socket_is_replaced_through_a_fresh_authorize_step(build):
    """Connected but mute (no pong): the library ping notices, and the reconnect asks for a new URL."""

    async def scenario():
        async with FakeUpstoxSocket() as sock:
            fake = FakeUpstox(socket=sock, tokens={TOKEN: USER})
            with upstox_server(fake) as http:
                services = build(**upstox_env(http.url, FEEDS_PING_SECONDS="0.3"))
                async with running(services):
                    first = await sock.wait_sessions(1, logged_in=False)
                    await sock.wait_for(lambda: len(first.pings) >= 1, 5, "a ping answered")
                    sock.mute(first)
                    await sock.wait_sessions(2, 10, logged_in=False)
                    first.ws.transport.abort()
                    state = await wait_state(services, "upstox", "a reconnect", lambda s: s.get("reconnects"))
        return fake, sock, state

    fake, sock, state = asyncio.run(scenario())
    assert len(fake.authorize_requests) >= 2 and len(set(codes(sock))) == len(sock.sessions) >= 2
    assert state["reconnects"] >= 1


def test_only_the_current_urls_code_is_kept_for_redaction(build):
    """Each URL's code and request id are redacted; a reconnecting process does not keep every old one."""
    services = build(FEEDS="upstox", UPSTOX_ACCESS_TOKEN=TOKEN)
    connector = UpstoxConnector(services, asyncio.Event())
    connector.remember_url_secrets({"code-one-0001", "request-one-0001"})
    assert connector.redact("x code-one-0001 y") == "x *** y"
    connector.remember_url_secrets({"code-two-0002", "request-two-0002"})
    assert connector.redact("code-one-0001 code-two-0002 request-two-0002") == "code-one-0001 *** ***"
    assert connector.redact(f"Bearer {TOKEN}") == "Bearer ***"


@responses.activate
@pytest.mark.parametrize(
    ("status", "answer", "refused"),
    [
        (200, {"status": "success", "data": {"authorized_redirect_uri": "https://evil.example/feed?code=1"}}, False),
        (200, {"status": "success", "data": {}}, False),
        (200, {"status": "error", "errors": [{"errorCode": "UDAPI100050", "message": "Invalid token"}]}, True),
        (200, ["not", "an", "object"], False),
        (403, {}, True),
        (429, {"status": "error", "errors": [{"errorCode": "UDAPI10005", "message": "Too Many Request Sent"}]}, False),
        (500, None, False),
    ],
)
def test_authorize_answers_that_are_not_a_socket_url(build, status, answer, refused):
    """Only a success answer with a ws(s) URL connects; a refused token is a refusal, anything else a retry."""
    url = "https://api.upstox.test" + AUTHORIZE
    responses.get(url, status=status, json=answer) if answer is not None else responses.get(url, status=status)
    connector = UpstoxConnector(build(FEEDS="upstox", UPSTOX_ACCESS_TOKEN=TOKEN, UPSTOX_FEED_AUTHORIZE_URL=url), None)
    with pytest.raises(FeedAuthError if refused else ConnectionError) as caught:
        connector.authorize()
    assert TOKEN not in str(caught.value)
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert responses.calls[0].request.params == {"update_types": "order"}


@responses.activate
def test_authorize_gives_the_documented_answers_url(build):
    """The get-portfolio-stream-feed-authorize page's own sample answer."""
    url = "https://api.upstox.test" + AUTHORIZE
    responses.get(url, json=AUTHORIZE_ANSWER)
    connector = UpstoxConnector(build(FEEDS="upstox", UPSTOX_ACCESS_TOKEN=TOKEN, UPSTOX_FEED_AUTHORIZE_URL=url), None)
    assert connector.authorize() == AUTHORIZE_ANSWER["data"]["authorized_redirect_uri"]
