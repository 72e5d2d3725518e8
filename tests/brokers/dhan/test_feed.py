"""Dhan's official order WebSocket and the Dhan web order feed against local fakes."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from app.brokers.dhan.feed import DhanConnector
from app.brokers.dhan.web_feed import DhanWebConnector
from app.secrets_store import DhanWebFrameStore
from tests.support.fakes import FakeDhanSocket, FakeDhanWebSocket
from tests.support.fakes.harness import ServiceBuilder, api_client, running, wait_state
from tests.support.fakes.samples import b64, dhan_web_login_frame
from tests.support.helpers import load_fixture, run_pipeline

CLIENT_ID = "1100000001"
ACCESS_TOKEN = "dhan-access-token-0a1b2c3d4e5f"
ORDER_ALERT = load_fixture("dhan_ws_order_alert_traded.json")
WEB_FRAMES = load_fixture("dhan_web_feed_frames.json")
URL = "/api/feeds/dhan-web/login-frame"
FEED_KEY = "x4sVJQ8pVd2cS1yS0d3vPZ2F0bQ2b0Zr9Jg3rXW2m7E="  # a Fernet key for the tests only


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


def dhan_env(fake: FakeDhanSocket) -> dict[str, str]:
    return {
        "FEEDS": "dhan",
        "DHAN_ORDER_WS_URL": fake.url,
        "DHAN_CLIENT_ID": CLIENT_ID,
        "DHAN_ACCESS_TOKEN": ACCESS_TOKEN,
    }


def web_env(fake: FakeDhanWebSocket, **extra: str) -> dict[str, str]:
    return {
        "FEEDS": "dhan_web",
        "DHAN_WEB_WS_URL": fake.url,
        "FEEDS_SECRET_KEY": FEED_KEY,
        "DHAN_WEB_PING_SECONDS": "5",
        **extra,
    }


def store_frame(services, frame: bytes) -> None:
    """What PUT /api/feeds/dhan-web/login-frame does."""
    DhanWebFrameStore(services.config).store(frame)


# Official feed (docs/brokers.md §4.2)


def test_dhan_login_frame_byte_for_byte_and_order_alert_persisted(build, admin_headers):
    """The first text frame is the documented self login; an order_alert becomes the order's state."""

    async def scenario():
        async with FakeDhanSocket(CLIENT_ID, ACCESS_TOKEN) as fake:
            services = build(**dhan_env(fake))
            async with running(DhanConnector, services):
                session = await fake.wait_sessions(1)
                await wait_state(services, "dhan", "connected", lambda s: s.get("connected"))
                await fake.push({"Type": "login_ack", "Data": {"status": "ok"}})  # other types are ignored
                await fake.push(ORDER_ALERT)
                state = await wait_state(services, "dhan", "an event", lambda s: s.get("events") == 1)
        return services, session, state

    services, session, state = asyncio.run(scenario())
    assert session.first == (
        '{"LoginReq":{"MsgCode":42,"ClientId":"1100000001","Token":"dhan-access-token-0a1b2c3d4e5f"},"UserType":"SELF"}'
    )
    assert state["messages"] == 2 and state["invalid"] == 0
    run_pipeline(services)
    order = api_client(services).get("/api/orders/dhan/52250312123456", headers=admin_headers).get_json()
    assert order["status"] == "FILLED" and order["filled_quantity"] == 75
    assert order["events"][0]["source"] == "websocket" and order["events"][0]["raw"] == ORDER_ALERT["Data"]


def test_dhan_refused_login_stops_with_auth_failed(build):
    """A close with an auth code after the login: auth_failed, no second connection, token not published."""

    async def scenario():
        async with FakeDhanSocket(CLIENT_ID, "another-token-xyz") as fake:
            services = build(**dhan_env(fake))
            async with running(DhanConnector, services):
                state = await wait_state(services, "dhan", "auth_failed", lambda s: s.get("state") == "auth_failed")
                await asyncio.sleep(0.3)
                return state, fake.handshakes

    state, handshakes = asyncio.run(scenario())
    assert handshakes == 1 and "4001" in state["last_error"]
    assert ACCESS_TOKEN not in json.dumps(state)


def test_dhan_drop_reconnects_and_logs_in_again(build):
    """After a network drop the same login frame is sent on the new connection."""

    async def scenario():
        async with FakeDhanSocket(CLIENT_ID, ACCESS_TOKEN) as fake:
            services = build(**dhan_env(fake))
            async with running(DhanConnector, services):
                first = await fake.wait_sessions(1)
                fake.drop()
                second = await fake.wait_sessions(2)
                state = await wait_state(services, "dhan", "reconnected", lambda s: s.get("reconnects") >= 1)
                return first, second, state

    first, second, state = asyncio.run(scenario())
    assert second.first == first.first and state["reconnects"] >= 1


# Web feed (docs/brokers.md §4.3, seed 003)


def test_web_feed_sends_stored_frame_first_and_persists_seed_orders(build, admin_headers):
    """The stored frame goes out as the first binary message; the seed's four order_alerts become two FILLED orders."""
    frame = dhan_web_login_frame()

    async def scenario():
        async with FakeDhanWebSocket({frame}) as fake:
            services = build(**web_env(fake))
            store_frame(services, frame)
            async with running(DhanWebConnector, services):
                session = await fake.wait_sessions(1)
                await wait_state(services, "dhan_web", "connected", lambda s: s.get("connected"))
                await fake.push(b"\x17\x00\x20binary packet")  # the 2024 binary format is skipped
                for message in WEB_FRAMES:
                    await fake.push(message)
                state = await wait_state(services, "dhan_web", "four events", lambda s: s.get("events") == 4)
        return services, session, state

    services, session, state = asyncio.run(scenario())
    assert session.first == frame and isinstance(session.first, bytes)
    assert parse_qs(urlsplit(session.path).query) == {"src": ["W"], "id": [CLIENT_ID]}
    assert session.headers["Origin"] == "https://web.dhan.co"
    assert state["broker"] == "dhan" and state["invalid"] == 0
    run_pipeline(services)
    client = api_client(services)
    for order_id, side in (("34125112418233", "BUY"), ("4125112418813", "SELL")):
        order = client.get(f"/api/orders/dhan/{order_id}", headers=admin_headers).get_json()
        assert order["broker"] == "dhan" and order["side"] == side
        assert order["status"] == "FILLED" and order["filled_quantity"] == 1
        assert [e["source"] for e in order["events"]] == ["websocket", "websocket"]


def test_web_feed_waits_for_a_frame_then_connects_and_reconnects_on_a_new_one(build, admin_headers):
    """No frame: state waiting, no connection. Storing one connects; storing another reconnects with it."""
    first_frame = dhan_web_login_frame(token="1" * 32)
    second_frame = dhan_web_login_frame(token="2" * 32)

    async def scenario():
        async with FakeDhanWebSocket({first_frame, second_frame}) as fake:
            services = build(**web_env(fake, DHAN_WEB_WS_URL=fake.url + "?src=W&id=42"))
            async with running(DhanWebConnector, services):
                waiting = await wait_state(services, "dhan_web", "waiting", lambda s: s.get("state") == "waiting")
                assert fake.handshakes == 0
                await asyncio.to_thread(store_frame, services, first_frame)
                one = await fake.wait_sessions(1)
                await wait_state(services, "dhan_web", "connected", lambda s: s.get("connected"))
                client = api_client(services)  # the second frame arrives the way a user sends it
                answer = await asyncio.to_thread(client.put, URL, data=b64(second_frame), headers=admin_headers)
                assert answer.status_code == 200
                two = await fake.wait_sessions(2)
                state = await wait_state(services, "dhan_web", "reconnected", lambda s: s.get("connected"))
                return waiting, one, two, state

    waiting, one, two, state = asyncio.run(scenario())
    assert "PUT" in waiting["last_error"] and waiting["connected"] is False
    assert one.first == first_frame and two.first == second_frame
    assert parse_qs(urlsplit(two.path).query) == {"src": ["W"], "id": ["42"]}  # a configured id is kept
    assert state["reconnects"] == 1


def test_web_feed_refused_frame_waits_for_a_new_one(build):
    """A refused frame (close 1008) is auth_failed with no retry; a fresh frame brings the feed back."""
    stale = dhan_web_login_frame(token="3" * 32)
    fresh = dhan_web_login_frame(token="4" * 32)

    async def scenario():
        async with FakeDhanWebSocket({fresh}) as fake:
            services = build(**web_env(fake))
            store_frame(services, stale)
            async with running(DhanWebConnector, services):
                refused = await wait_state(
                    services, "dhan_web", "auth_failed", lambda s: s.get("state") == "auth_failed"
                )
                await asyncio.sleep(0.3)
                assert fake.handshakes == 1
                await asyncio.to_thread(store_frame, services, fresh)
                session = await fake.wait_sessions(2)
                state = await wait_state(services, "dhan_web", "connected again", lambda s: s.get("connected"))
                return refused, session, state

    refused, session, state = asyncio.run(scenario())
    assert "1008" in refused["last_error"]
    assert session.first == fresh and state["state"] == "running"


def test_web_feed_pings_with_a_zero_byte_on_time(build):
    """Keepalive: a WebSocket ping with payload b"\\x00" every DHAN_WEB_PING_SECONDS (§4.3)."""
    frame = dhan_web_login_frame()
    interval = 0.1

    async def scenario():
        async with FakeDhanWebSocket({frame}) as fake:
            services = build(**web_env(fake, DHAN_WEB_PING_SECONDS=str(interval)))
            store_frame(services, frame)
            async with running(DhanWebConnector, services):
                session = await fake.wait_sessions(1)
                await fake.wait_for(lambda: len(session.pings) >= 4, what="four pings")
                return session

    session = asyncio.run(scenario())
    assert {data for _, data in session.pings} == {b"\x00"}
    times = [t for t, _ in session.pings[:4]]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(interval * 0.5 <= gap <= interval * 2.5 for gap in gaps), gaps
    assert session.pings[0][0] - session.messages[0][0] <= interval * 2.5
