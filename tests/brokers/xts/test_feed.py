"""Symphony XTS: the adapter's words and fields, and the socket.io feed against a real socket.io server playing XTS."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal

import pytest

from app.brokers.feed import add_connected_hook, remove_connected_hook
from app.brokers.xts.adapter import XtsAdapter
from app.brokers.xts.feed import XtsConnector
from app.config import load_config
from app.events import OrderStatus
from app.exceptions import PostbackPayloadError
from tests.brokers.xts.samples import ORDER_EVENT, order
from tests.support.fakes.harness import ServiceBuilder, api_client, feed_state, running, wait_state
from tests.support.fakes.xts import FakeXtsServer
from tests.support.helpers import run_pipeline

TOKEN = "eyJhbGciOiJIUzI1NiJ9.xts-session-token-for-tests.c2lnbmF0dXJl"
USER = "D7730001"
RECEIVED = "2026-01-01T00:00:00.000000Z"


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


def normalize(message: dict):
    adapter = XtsAdapter(load_config({"APP_ENV": "development"}))
    return adapter.event_from_payload(message, source="websocket", received_at=RECEIVED)


# Adapter (docs/brokers.md §14.2)


def test_published_order_normalizes_every_field():
    event = normalize(ORDER_EVENT).to_dict()
    assert event["broker"] == "xts" and event["order_id"] == "901464450"
    assert event["status"] == OrderStatus.FILLED and event["broker_status"] == "Filled"
    assert event["account_id"] == "D7730002" and event["exchange"] == "NFO" and event["side"] == "SELL"
    assert (event["quantity"], event["filled_quantity"], event["pending_quantity"]) == (50, 50, 0)
    assert event["product"] == "MIS" and event["order_type"] == "MARKET" and event["tag"] == "454845"
    assert event["average_price"] is None  # "" on the wire
    assert event["exchange_time"] == "2021-05-14T05:47:29.000000Z"  # 11:17:29 IST
    assert event["symbol"] == "48186" and event["raw"] == ORDER_EVENT


@pytest.mark.parametrize(
    ("word", "filled", "expected", "modified"),
    [
        ("PendingNew", 0, OrderStatus.PENDING, False),
        ("New", 0, OrderStatus.OPEN, False),
        ("PartiallyFilled", 20, OrderStatus.PARTIALLY_FILLED, False),
        ("PartiallyFilled", 50, OrderStatus.FILLED, False),
        ("Filled", 50, OrderStatus.FILLED, False),
        ("Filled", 30, OrderStatus.PARTIALLY_FILLED, False),  # quantities decide (docs/brokers.md §2)
        ("PendingReplace", 0, OrderStatus.OPEN, False),
        ("Replaced", 0, OrderStatus.OPEN, True),
        ("PendingCancel", 10, OrderStatus.PARTIALLY_FILLED, False),
        ("Cancelled", 10, OrderStatus.CANCELLED, False),
        ("Rejected", 0, OrderStatus.REJECTED, False),
    ],
)
def test_status_words_and_quantities(word, filled, expected, modified):
    event = normalize(order(OrderStatus=word, CumulativeQuantity=filled, LeavesQuantity=50 - filled))
    assert (event.status, event.modified) == (expected, modified)


def test_unknown_word_is_kept_and_a_missing_id_refused(caplog):
    with caplog.at_level(logging.WARNING):
        assert normalize(order(OrderStatus="Frozen", CumulativeQuantity=0)).status == OrderStatus.PENDING
    assert "Frozen" in caplog.text
    with pytest.raises(PostbackPayloadError, match="AppOrderID"):
        normalize(order(AppOrderID=""))


# Feed (docs/brokers.md §14.1)


def xts_env(fake: FakeXtsServer, **extra: str) -> dict[str, str]:
    return {"FEEDS": "xts", "XTS_ROOT_URL": fake.url, "XTS_USER_ID": USER, "XTS_TOKEN": TOKEN, **extra}


def test_query_joined_and_an_order_lifecycle(build, admin_headers):
    """The query carries token, userID and apiType; joined connects; placed, partly filled, filled, a modify, a
    cancel and a rejection are stored; a trade event repeating the fill is a duplicate; positions are skipped."""
    calls: list[tuple[str, str]] = []
    hook = lambda status_name, reconcile_name: calls.append((status_name, reconcile_name))  # noqa: E731

    async def scenario():
        async with FakeXtsServer(TOKEN, USER) as fake:
            services = build(**xts_env(fake))
            add_connected_hook(hook)
            try:
                async with running(XtsConnector, services):
                    session = await fake.wait_sessions(1)
                    await wait_state(services, "xts", "connected", lambda s: s.get("connected"))
                    lifecycle = [
                        order(
                            AppOrderID=1001,
                            OrderStatus="New",
                            OrderQuantity=10,
                            CumulativeQuantity=0,
                            LeavesQuantity=10,
                            OrderType="Limit",
                            OrderPrice=210.5,
                            LastUpdateDateTime="2026-05-08T11:55:00",
                        ),
                        order(
                            AppOrderID=1001,
                            OrderStatus="Replaced",
                            OrderQuantity=10,
                            CumulativeQuantity=0,
                            LeavesQuantity=10,
                            OrderType="Limit",
                            OrderPrice=211.0,
                            LastUpdateDateTime="2026-05-08T11:55:10",
                        ),
                        order(
                            AppOrderID=1001,
                            OrderStatus="PartiallyFilled",
                            OrderQuantity=10,
                            CumulativeQuantity=4,
                            LeavesQuantity=6,
                            OrderType="Limit",
                            OrderPrice=211.0,
                            OrderAverageTradedPrice="211",
                            LastUpdateDateTime="2026-05-08T11:55:20",
                        ),
                        order(
                            AppOrderID=1001,
                            OrderStatus="Filled",
                            OrderQuantity=10,
                            CumulativeQuantity=10,
                            LeavesQuantity=0,
                            OrderType="Limit",
                            OrderPrice=211.0,
                            OrderAverageTradedPrice="211",
                            LastUpdateDateTime="2026-05-08T11:55:30",
                        ),
                    ]
                    for item in lifecycle:
                        await fake.emit("order", item)
                    await fake.emit("trade", lifecycle[-1])  # the same fill as a trade event: one event
                    await fake.emit("position", {"NetQty": 10})
                    await fake.emit(
                        "order",
                        order(
                            AppOrderID=1002,
                            OrderStatus="Cancelled",
                            OrderQuantity=5,
                            CumulativeQuantity=0,
                            LeavesQuantity=0,
                        ),
                    )
                    await fake.emit(
                        "order",
                        order(
                            AppOrderID=1003,
                            OrderStatus="Rejected",
                            OrderQuantity=5,
                            CumulativeQuantity=0,
                            LeavesQuantity=0,
                            CancelRejectReason="RMS: margin exceeds",
                        ),
                    )
                    await fake.emit("order", {"AppOrderID": object.__name__})  # no status: counted invalid
                    state = await wait_state(
                        services, "xts", "6 events", lambda s: int(s.get("events", 0)) >= 6 and s.get("invalid")
                    )
                    await wait_state(services, "xts", "a duplicate", lambda s: int(s.get("duplicates", 0)) >= 1)
                    return services, session, state
            finally:
                remove_connected_hook(hook)

    services, session, state = asyncio.run(scenario())
    assert session.path == "/interactive/socket.io/"
    assert session.query["token"] == TOKEN and session.query["userID"] == USER
    assert session.query["apiType"] == "INTERACTIVE" and session.query["EIO"] == "3"
    assert calls == [("xts", "xts")]  # a reconciliation is asked for after the join
    assert int(state["invalid"]) == 1 and TOKEN not in json.dumps(feed_state(services, "xts"))
    run_pipeline(services)
    client = api_client(services)
    filled = client.get("/api/orders/xts/1001", headers=admin_headers).get_json()
    assert filled["status"] == "FILLED" and filled["filled_quantity"] == 10 and filled["average_price"] == 211.0
    assert [e["status"] for e in filled["events"]] == ["OPEN", "OPEN", "PARTIALLY_FILLED", "FILLED"]
    assert [e["modified"] for e in filled["events"]] == [False, True, False, False]
    assert client.get("/api/orders/xts/1002", headers=admin_headers).get_json()["status"] == "CANCELLED"
    rejected = client.get("/api/orders/xts/1003", headers=admin_headers).get_json()
    assert rejected["status"] == "REJECTED" and rejected["reason"] == "RMS: margin exceeds"


def test_refused_token_stops_without_logging_it(build, caplog):
    """The handshake refused (401) is an authentication refusal: auth_failed, no retry loop, no token anywhere."""
    caplog.set_level(logging.DEBUG)

    async def scenario():
        async with FakeXtsServer("another-token-entirely", USER) as fake:
            services = build(**xts_env(fake))
            async with running(XtsConnector, services):
                state = await wait_state(services, "xts", "auth_failed", lambda s: s.get("state") == "auth_failed")
                await asyncio.sleep(0.3)
                return fake, state

    fake, state = asyncio.run(scenario())
    assert fake.refused == 1 and not fake.sessions
    assert "401" in state["last_error"]
    server = ("engineio.server", "socketio.server", "aiohttp")  # the fake's own lines
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(server))
    assert TOKEN not in logged and TOKEN not in json.dumps(state)


def test_logout_event_is_a_refusal(build):
    """XTS's `logout` (the session ended elsewhere) stops the feed as a refusal: retrying the token is pointless."""

    async def scenario():
        async with FakeXtsServer(TOKEN, USER) as fake:
            services = build(**xts_env(fake))
            async with running(XtsConnector, services):
                await wait_state(services, "xts", "connected", lambda s: s.get("connected"))
                await fake.emit("logout", "User logged out", as_text=False)
                state = await wait_state(services, "xts", "auth_failed", lambda s: s.get("state") == "auth_failed")
                await asyncio.sleep(0.3)
                return fake, state

    fake, state = asyncio.run(scenario())
    assert "logged the session out" in state["last_error"] and len(fake.sessions) == 1


def test_a_drop_reconnects_and_joins_again(build):
    async def scenario():
        async with FakeXtsServer(TOKEN, USER) as fake:
            services = build(**xts_env(fake))
            async with running(XtsConnector, services):
                await wait_state(services, "xts", "connected", lambda s: s.get("connected"))
                await fake.drop()
                await fake.wait_sessions(2)
                state = await wait_state(
                    services, "xts", "reconnected", lambda s: s.get("connected") and int(s.get("reconnects", 0)) >= 1
                )
                await fake.emit("order", order(AppOrderID=2001, OrderStatus="New", CumulativeQuantity=0))
                await wait_state(services, "xts", "an event", lambda s: int(s.get("events", 0)) >= 1)
                return state

    state = asyncio.run(scenario())
    assert "closed the socket.io connection" in state["last_error"]


def test_a_mute_socket_without_joined_is_dialled_again(build):
    """Connected but never `joined` within FEEDS_LOGIN_TIMEOUT_SECONDS: dropped and dialled again, never 'connected'."""

    async def scenario():
        async with FakeXtsServer(TOKEN, USER, join=False) as fake:
            services = build(**xts_env(fake, FEEDS_LOGIN_TIMEOUT_SECONDS="0.5"))
            async with running(XtsConnector, services):
                await fake.wait_sessions(2)
                return feed_state(services, "xts")

    state = asyncio.run(scenario())
    assert state.get("connected") in (None, "0", 0, False, "false", "False")
    assert "no 'joined' event" in state["last_error"] and int(state["reconnects"]) >= 1


def test_the_library_leaves_the_processs_sigint_handler_alone(build):
    """engineio 3.x would install a loop-stopping SIGINT handler at its first connect: the feeds process's own
    (workers/feeds/__main__.py) must still be the one a Ctrl-C reaches."""
    seen: list[int] = []

    async def scenario():
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, seen.append, signal.SIGINT)
        try:
            async with FakeXtsServer(TOKEN, USER) as fake:
                services = build(**xts_env(fake))
                async with running(XtsConnector, services):
                    await wait_state(services, "xts", "connected", lambda s: s.get("connected"))
                    os.kill(os.getpid(), signal.SIGINT)
                    for _ in range(100):
                        if seen:
                            break
                        await asyncio.sleep(0.02)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    asyncio.run(scenario())
    assert seen == [signal.SIGINT]
