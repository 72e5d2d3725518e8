"""Kotak Neo: the adapter (ordSt words, quantities, segments) and the stream against a local fake of Kotak's side."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from app.brokers.kotak.adapter import KotakAdapter
from app.brokers.kotak.feed import KotakConnector
from app.config import load_config
from app.events import OrderStatus
from app.exceptions import PostbackPayloadError
from tests.brokers.kotak.fake_socket import FakeKotakStream, parse_login
from tests.brokers.kotak.samples import ORDER_FRAME, POSITION_FRAME, order
from tests.support.fakes.harness import ServiceBuilder, api_client, feed_state, running, wait_state
from tests.support.helpers import run_pipeline

TOKEN = "eyJhbGciOiJ.kotak-trade-token.77aa88bb99"
SID = "5f0c2d8e-1b7a-4c3d-9e8f-0a1b2c3d4e5f"
RECEIVED = "2026-01-01T00:00:00.000000Z"


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


def normalize(frame: dict):
    adapter = KotakAdapter(load_config({"APP_ENV": "development"}))
    return adapter.event_from_payload(frame["data"], source="websocket", received_at=RECEIVED)


# Adapter (docs/brokers.md §13)


def test_the_documented_order_frame_normalizes_every_field():
    event = normalize(ORDER_FRAME).to_dict()
    assert (event["broker"], event["order_id"], event["exchange_order_id"]) == (
        "kotak",
        "260216000308219",
        "1100000049435826",
    )
    assert (event["status"], event["broker_status"]) == (OrderStatus.FILLED, "COMPLETE")
    assert (event["side"], event["exchange"], event["symbol"], event["product"]) == ("BUY", "NSE", "ITBEES", "NRML")
    assert (event["order_type"], event["quantity"], event["filled_quantity"], event["pending_quantity"]) == (
        "MARKET",
        1,
        1,
        0,
    )
    assert event["average_price"] == 35.88 and event["exchange_time"] == "2026-02-16T06:59:31.000000Z"


@pytest.mark.parametrize(
    ("word", "filled", "expected", "modified"),
    [
        ("put order req received", 0, OrderStatus.PENDING, False),
        ("validation pending", 0, OrderStatus.PENDING, False),
        ("open pending", 0, OrderStatus.PENDING, False),
        ("after market order req received", 0, OrderStatus.PENDING, False),
        ("open", 0, OrderStatus.OPEN, False),
        ("open", 4, OrderStatus.PARTIALLY_FILLED, False),
        ("trigger pending", 0, OrderStatus.TRIGGER_PENDING, False),
        ("modified", 0, OrderStatus.OPEN, True),
        ("modify validation pending", 0, OrderStatus.OPEN, True),
        ("modify pending", 4, OrderStatus.PARTIALLY_FILLED, True),
        ("modify after market order req received", 0, OrderStatus.PENDING, True),
        ("cancel pending", 0, OrderStatus.OPEN, False),
        ("complete", 10, OrderStatus.FILLED, False),
        ("complete", 6, OrderStatus.PARTIALLY_FILLED, False),
        ("cancelled", 3, OrderStatus.CANCELLED, False),
        ("canceled", 0, OrderStatus.CANCELLED, False),
        ("cancelled after market order", 0, OrderStatus.CANCELLED, False),
        ("rejected", 0, OrderStatus.REJECTED, False),
    ],
)
def test_status_words_and_quantities(word, filled, expected, modified):
    event = normalize(order(ordSt=word, qty="10", fldQty=str(filled), unFldSz=str(10 - filled)))
    assert (event.status, event.modified) == (expected, modified)


def test_unknown_words_are_kept_but_never_move_the_state(caplog):
    with caplog.at_level(logging.WARNING):
        event = normalize(order(ordSt="some new word", fldQty=0))
    assert event.status == OrderStatus.PENDING and event.broker_status == "SOME NEW WORD"


@pytest.mark.parametrize(
    ("segment", "exchange"), [("nse_fo", "NFO"), ("bse_cm", "BSE"), ("mcx_fo", "MCX"), ("x_y", "X_Y")]
)
def test_segments(segment, exchange):
    assert normalize(order(exSeg=segment)).exchange == exchange


def test_an_order_without_its_number_is_refused():
    with pytest.raises(PostbackPayloadError, match="nOrdNo"):
        normalize(order(nOrdNo=""))


# Stream


def kotak_env(fake: FakeKotakStream, **extra: str) -> dict[str, str]:
    return {
        "FEEDS": "kotak",
        "KOTAK_UCC": "XP6M4",
        "KOTAK_SESSION": f"{TOKEN}|{SID}|{fake.http_url}",
        "KOTAK_HEARTBEAT_SECONDS": "5",
        **extra,
    }


def life_of_an_order() -> list[dict]:
    """Received, validated, open, part filled, modified, filled; another cancelled; a third rejected."""
    oid = {"nOrdNo": "260216000400001", "qty": "10", "prcTp": "L", "prc": "812.00", "sym": "SBIN"}
    other = {"nOrdNo": "260216000400002", "qty": "5"}

    def step(base: dict, word: str, second: int, **fields: str) -> dict:
        return order(**{**base, "ordSt": word, "fldQty": "0", "boeSec": str(1771225200 + second), **fields})

    return [
        step(oid, "put order req received", 0),
        step(oid, "validation pending", 1),
        step(oid, "open pending", 2),
        step(oid, "open", 3),
        step(oid, "open", 5, fldQty="4", avgPrc="812.00"),
        step(oid, "modified", 7, fldQty="4", avgPrc="812.00", prc="812.50"),
        step(oid, "complete", 9, fldQty="10", avgPrc="812.30", prc="812.50"),
        step(other, "open", 10),
        step(other, "cancelled", 11),
        step({"nOrdNo": "260216000400003", "qty": "1"}, "rejected", 12, rejRsn="RMS:Margin Exceeds"),
    ]


def test_login_ack_heartbeat_and_an_orders_life_persisted(build, admin_headers):
    """The JSON cn frame first, the ack, hb frames on time; order frames stored, position frames skipped."""
    interval = 0.1
    frames = life_of_an_order()

    async def scenario():
        async with FakeKotakStream(TOKEN, SID) as fake:
            services = build(**kotak_env(fake, KOTAK_HEARTBEAT_SECONDS=str(interval)))
            async with running(KotakConnector, services):
                session = await fake.wait_sessions(1)
                await wait_state(services, "kotak", "connected", lambda s: s.get("connected"))
                await fake.push(POSITION_FRAME)
                for frame in frames:
                    await fake.push(frame)
                await fake.wait_for(lambda: len(fake.heartbeats) >= 3, what="three heartbeats")
                state = await wait_state(services, "kotak", "all events", lambda s: s.get("events") == len(frames))
        return services, session, state

    services, session, state = asyncio.run(scenario())
    assert json.loads(session.first) == {"type": "cn", "Authorization": TOKEN, "Sid": SID, "src": "WEB"}
    assert session.path == "/realtime" and state["invalid"] == 0
    beats = [t for t, m in session.messages if m == '{"type":"hb"}'][:3]
    gaps = [b - a for a, b in zip([session.messages[0][0], *beats], beats, strict=False)]
    assert all(interval * 0.5 <= gap <= interval * 2.5 for gap in gaps), gaps
    run_pipeline(services)
    client = api_client(services)
    filled = client.get("/api/orders/kotak/260216000400001", headers=admin_headers).get_json()
    assert filled["status"] == "FILLED" and filled["filled_quantity"] == 10 and filled["average_price"] == 812.3
    statuses = [e["status"] for e in filled["events"]]
    assert statuses == ["PENDING", "PENDING", "PENDING", "OPEN", "PARTIALLY_FILLED", "PARTIALLY_FILLED", "FILLED"]
    assert [e["modified"] for e in filled["events"]].count(True) == 1 and filled["events"][5]["price"] == 812.5
    cancelled = client.get("/api/orders/kotak/260216000400002", headers=admin_headers).get_json()
    rejected = client.get("/api/orders/kotak/260216000400003", headers=admin_headers).get_json()
    assert cancelled["status"] == "CANCELLED" and rejected["status"] == "REJECTED"
    assert rejected["reason"] == "RMS:Margin Exceeds"


def test_a_socket_that_never_acks_is_caught_and_the_raw_form_tried(build):
    """Open but silent after the JSON login: dropped at the ack deadline, dialled again with the doc's raw form."""

    async def scenario():
        async with FakeKotakStream(TOKEN, SID, accepts=("raw",)) as fake:
            services = build(**kotak_env(fake, KOTAK_ACK_SECONDS="0.3"))
            async with running(KotakConnector, services):
                await fake.wait_sessions(2, timeout=10)
                state = await wait_state(services, "kotak", "connected", lambda s: s.get("connected"))
                return fake, state

    fake, state = asyncio.run(scenario())
    assert (
        fake.logins == ["json", "raw"]
        and fake.sessions[1].first == f"{{type:cn,Authorization:{TOKEN},Sid:{SID},src:WEB}}"
    )
    assert state["reconnects"] == 1 and "never authenticated" in state["last_error"]
    assert TOKEN not in json.dumps(state) and SID not in json.dumps(state)


def test_a_socket_that_never_acks_at_all_is_never_called_connected(build):
    """KOTAK_LOGIN_FORM pinned, no ack ever: each attempt is dropped at the deadline and retried, never `connected`."""

    async def scenario():
        async with FakeKotakStream(TOKEN, SID) as fake:
            fake.never_ack = True
            services = build(**kotak_env(fake, KOTAK_ACK_SECONDS="0.2", KOTAK_LOGIN_FORM="json"))
            async with running(KotakConnector, services):
                state = await wait_state(services, "kotak", "retries", lambda s: (s.get("reconnects") or 0) >= 2)
                return fake, state

    fake, state = asyncio.run(scenario())
    assert not state.get("connected_at") and state["state"] != "auth_failed"
    assert "no cn ack within 0.2 s" in state["last_error"] and len(fake.sessions) >= 2
    assert {parse_login(s.first)[0] for s in fake.sessions if s.first} == {"json"}  # pinned: never the other form


def test_unpinned_the_form_alternates_until_one_is_acknowledged(build):
    """Neither form acked: json, raw, json... each dropped at the deadline, none ever called connected."""

    async def scenario():
        async with FakeKotakStream(TOKEN, SID, accepts=()) as fake:
            services = build(**kotak_env(fake, KOTAK_ACK_SECONDS="0.2"))
            async with running(KotakConnector, services):
                await fake.wait_sessions(3, timeout=15)
                return fake, feed_state(services, "kotak")

    fake, state = asyncio.run(scenario())
    assert fake.logins[:3] == ["json", "raw", "json"] and not state.get("connected_at")


def test_a_refused_session_stops_and_is_never_logged(build, caplog):
    """`ak` other than ok: an authentication refusal, no retry, neither token nor sid in logs or state."""
    caplog.set_level(logging.DEBUG)

    async def scenario():
        async with FakeKotakStream("another-token-entirely", SID) as fake:
            services = build(**kotak_env(fake))
            async with running(KotakConnector, services):
                state = await wait_state(services, "kotak", "auth_failed", lambda s: s.get("state") == "auth_failed")
                await asyncio.sleep(0.3)
                return fake, state

    fake, state = asyncio.run(scenario())
    assert len(fake.sessions) == 1 and "nok" in state["last_error"]
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.server"))
    for secret in (TOKEN, SID):
        assert secret not in ours and secret not in json.dumps(state)


def test_an_unreadable_session_is_a_refusal_before_any_dial(build):
    async def scenario():
        async with FakeKotakStream(TOKEN, SID) as fake:
            services = build(**kotak_env(fake, KOTAK_SESSION="just-a-token-without-its-sid"))
            async with running(KotakConnector, services):
                state = await wait_state(services, "kotak", "auth_failed", lambda s: s.get("state") == "auth_failed")
                return fake, state

    fake, state = asyncio.run(scenario())
    assert fake.handshakes == 0 and "KOTAK_SESSION" in state["last_error"]


def test_a_drop_and_a_mute_socket_reconnect(build):
    """A cut connection and a connected-but-mute one (no pong) are both dialled again, logged in again."""

    async def scenario():
        async with FakeKotakStream(TOKEN, SID) as fake:
            services = build(**kotak_env(fake), FEEDS_PING_SECONDS="0.3")
            async with running(KotakConnector, services):
                await fake.wait_sessions(1)
                await wait_state(services, "kotak", "connected", lambda s: s.get("connected"))
                fake.drop()
                second = await fake.wait_sessions(2, timeout=10)
                await fake.wait_for(lambda: len(second.pings) >= 1, 10, "a ping answered")
                fake.mute(second)
                await fake.wait_sessions(3, timeout=15)
                second.ws.transport.abort()
                state = await wait_state(services, "kotak", "two reconnects", lambda s: (s.get("reconnects") or 0) >= 2)
                return fake, state

    fake, state = asyncio.run(scenario())
    assert fake.logins == ["json", "json", "json"] and state["reconnects"] >= 2


def test_an_order_before_the_ack_proves_the_login_and_is_kept(build):
    """Live data first (OpenAlgo saw it so): the login is taken as accepted and the order stored."""

    class OrderFirst(FakeKotakStream):
        async def handle(self, session, message):
            if len(session.messages) == 1:
                await session.ws.send(json.dumps(ORDER_FRAME))

    async def scenario():
        async with OrderFirst(TOKEN, SID) as fake:
            services = build(**kotak_env(fake, KOTAK_ACK_SECONDS="0.5"))
            async with running(KotakConnector, services):
                await wait_state(services, "kotak", "an event", lambda s: s.get("events") == 1)
                await asyncio.sleep(0.7)
                return fake, feed_state(services, "kotak")

    fake, state = asyncio.run(scenario())
    assert len(fake.sessions) == 1 and state["connected"] and not state.get("reconnects")
