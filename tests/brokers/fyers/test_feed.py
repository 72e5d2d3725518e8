"""The Fyers order socket against a local fake (docs/brokers.md §11.2): the Authorization header, SUB_ORD, the `ping`
keepalive, an order's frames from placement to fill, a rejection, a modification, a cancel, refusals, drops, mutes."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from app.accounts.model import SessionState
from app.brokers.fyers.feed import FyersConnector
from app.events import OrderStatus
from tests.brokers.fyers.fakes import FakeFyers, FakeFyersSocket
from tests.brokers.fyers.samples import SOCKET_PARSED_TRADED, SOCKET_RAW_NEW_ACK
from tests.support.fakes.harness import ServiceBuilder, api_client, running, wait_state
from tests.support.fakes.socket_server import wait_until
from tests.support.helpers import run_pipeline
from workers.feeds.runner import build_supervisor

APP_ID = "XC4XXXXXXM-100"
USER = "XP0001"
ORDER_ID = "25120400011111"


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


def fyers_env(socket: FakeFyersSocket, token: str, **extra: str) -> dict[str, str]:
    return {
        "FEEDS": "fyers",
        "FYERS_WS_URL": socket.url,
        "FYERS_APP_ID": APP_ID,
        "FYERS_ACCESS_TOKEN": token,
        "FYERS_USER_ID": USER,
        "FYERS_PING_SECONDS": "0.2",
        **extra,
    }


def frame(status: int, *, filled: int = 0, price: float = 801.5, report: str = "", **more) -> dict:
    """An order as the socket sends it: short keys (the Usage Guide's raw frame), a 10-share limit buy."""
    order = {
        "client_id": USER,
        "id": ORDER_ID,
        "id_exchange": "1100000012345678",
        "exchange": 10,
        "segment": 10,
        "symbol": "NSE:SBIN-EQ",
        "product_type": "INTRADAY",
        "ord_type": 1,
        "tran_side": 1,
        "qty": 10,
        "qty_filled": filled,
        "qty_remaining": 10 - filled,
        "price_limit": price,
        "price_stop": 0,
        "price_traded": 801.4 if filled else 0,
        "org_ord_status": status,
        "ord_status": 20,
        "report_type": report,
        "status_msg": report,
        "time_oms": "04-Dec-2025 10:15:02",
        "validity": "DAY",
    }
    order.update(more)
    return order


def test_header_subscription_ping_and_an_order_from_placement_to_fill(build, admin_headers):
    async def scenario():
        broker = FakeFyers()
        token = broker.issue_token(APP_ID, USER)
        async with FakeFyersSocket(broker) as fake:
            services = build(**fyers_env(fake, token))
            async with running(FyersConnector, services):
                session = await fake.wait_sessions(1)
                await wait_state(services, "fyers", "connected", lambda s: s.get("connected"))
                await fake.wait_for(lambda: fake.subscribed(USER), what="subscribed")
                await fake.wait_for(lambda: session.texts().count("ping") >= 2, what="two pings")
                for status, filled, report in ((4, 0, "New Ack"), (6, 0, "New"), (6, 4, "Trade Conf"), (2, 10, "Fill")):
                    await fake.push_order(USER, frame(status, filled=filled, report=report))
                await fake.push_order(USER, frame(2, filled=10, report="Fill"))  # a repeat: a duplicate
                await fake.push({"trades": {"orderNumber": ORDER_ID, "tradedQty": 6}, "s": "ok"})
                state = await wait_state(
                    services, "fyers", "four events", lambda s: s.get("events") == 4 and s.get("duplicates") == 1
                )
        return services, session, state

    services, session, state = asyncio.run(scenario())
    assert session.headers["Authorization"].startswith(f"{APP_ID}:eyJ0eXAi.")
    assert json.loads(session.texts()[0]) == {"T": "SUB_ORD", "SLIST": ["orders"], "SUB_T": 1}
    assert state["invalid"] == 0 and state["reconnects"] == 0  # the 1605 ack and the pongs are no updates
    run_pipeline(services)
    order = api_client(services).get(f"/api/orders/fyers/{ORDER_ID}", headers=admin_headers).get_json()
    assert order["status"] == OrderStatus.FILLED and order["filled_quantity"] == 10 and order["account_id"] == USER
    assert [e["status"] for e in order["events"]] == ["PENDING", "OPEN", "PARTIALLY_FILLED", "FILLED"]
    assert {e["source"] for e in order["events"]} == {"websocket"}
    assert order["events"][2]["average_price"] == 801.4 and order["events"][2]["pending_quantity"] == 6


def test_a_rejection_a_modification_and_a_cancel(build, admin_headers):
    async def scenario():
        broker = FakeFyers()
        token = broker.issue_token(APP_ID, USER)
        async with FakeFyersSocket(broker) as fake:
            services = build(**fyers_env(fake, token))
            async with running(FyersConnector, services):
                await fake.wait_for(lambda: fake.subscribed(USER), what="subscribed")
                rejected = frame(5, id="25120400022222", report="Rejected", status_msg="RMS: insufficient margin")
                await fake.push_order(USER, rejected)
                await fake.push_order(USER, frame(6, report="New"))
                await fake.push_order(USER, frame(6, price=799.0, report="Modified"))
                await fake.push_order(USER, frame(1, price=799.0, report="Cancelled"))
                await fake.push(SOCKET_RAW_NEW_ACK)
                await fake.push(SOCKET_PARSED_TRADED)  # the SDK's long keys are read too
                await wait_state(services, "fyers", "six events", lambda s: s.get("events") == 6)
        return services

    services = asyncio.run(scenario())
    run_pipeline(services)
    client = api_client(services)
    rejected = client.get("/api/orders/fyers/25120400022222", headers=admin_headers).get_json()
    assert rejected["status"] == OrderStatus.REJECTED and rejected["reason"] == "RMS: insufficient margin"
    order = client.get(f"/api/orders/fyers/{ORDER_ID}", headers=admin_headers).get_json()
    assert [(e["status"], e["modified"], e["price"]) for e in order["events"]] == [
        ("OPEN", False, 801.5),
        ("OPEN", True, 799.0),
        ("CANCELLED", False, 799.0),
    ]
    assert order["status"] == OrderStatus.CANCELLED and order["filled_quantity"] == 0
    parsed = client.get("/api/orders/fyers/23080400089344", headers=admin_headers).get_json()
    assert parsed["status"] == OrderStatus.FILLED


def test_a_refused_token_stops_with_auth_failed_and_is_never_logged(build, caplog):
    caplog.set_level(logging.DEBUG)

    async def scenario():
        broker = FakeFyers()
        async with FakeFyersSocket(broker) as fake:
            services = build(**fyers_env(fake, "eyJ0eXAi.stale-token-0123456789"))
            async with running(FyersConnector, services):
                state = await wait_state(services, "fyers", "auth_failed", lambda s: s.get("state") == "auth_failed")
                await asyncio.sleep(0.5)  # many backoff periods: no retry
                return state, fake.handshakes

    state, attempts = asyncio.run(scenario())
    assert attempts == 1 and "403" in state["last_error"]
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.server"))
    assert "stale-token-0123456789" not in ours and "stale-token-0123456789" not in json.dumps(state)
    assert APP_ID not in json.dumps(state) and "AUTHENTICATION REFUSED" in ours


def test_a_subscription_refused_with_a_token_error_is_an_auth_failure(build):
    async def scenario():
        broker = FakeFyers()
        token = broker.issue_token(APP_ID, USER)
        async with FakeFyersSocket(broker) as fake:
            fake.refuse_subscribe = True
            services = build(**fyers_env(fake, token))
            async with running(FyersConnector, services):
                return await wait_state(services, "fyers", "auth_failed", lambda s: s.get("state") == "auth_failed")

    state = asyncio.run(scenario())
    assert "-15" in state["last_error"]


def test_a_drop_reconnects_and_subscribes_again(build):
    async def scenario():
        broker = FakeFyers()
        token = broker.issue_token(APP_ID, USER)
        async with FakeFyersSocket(broker) as fake:
            services = build(**fyers_env(fake, token))
            async with running(FyersConnector, services):
                await fake.wait_for(lambda: fake.subscribed(USER), what="subscribed")
                fake.drop()
                second = await fake.wait_sessions(2)
                await fake.wait_for(lambda: len(fake.subscribed(USER)) == 1 and second in fake.subscribed(USER))
                await fake.push_order(USER, frame(6, report="New"))
                state = await wait_state(services, "fyers", "an event", lambda s: s.get("events") == 1)
        return state, second

    state, second = asyncio.run(scenario())
    assert state["reconnects"] == 1 and "dropped" in state["last_error"]
    assert json.loads(second.texts()[0])["T"] == "SUB_ORD"


def test_a_mute_socket_is_closed_and_reconnected(build):
    """Connected but answering nothing, not even the WebSocket ping: the library's ping times out; it reconnects."""

    async def scenario():
        broker = FakeFyers()
        token = broker.issue_token(APP_ID, USER)
        async with FakeFyersSocket(broker) as fake:
            services = build(**fyers_env(fake, token, FEEDS_PING_SECONDS="0.3"))
            async with running(FyersConnector, services):
                first = await fake.wait_sessions(1)
                await fake.wait_for(lambda: first.pings, what="a WebSocket ping")
                fake.mute(first)
                muted = time.monotonic()
                await fake.wait_sessions(2, timeout=10)
                took = time.monotonic() - muted
                first.ws.transport.abort()
                state = await wait_state(services, "fyers", "reconnected", lambda s: s.get("reconnects"))
        return took, state

    took, state = asyncio.run(scenario())
    assert took < 10 and state["reconnects"] >= 1


def test_an_accounts_refused_session_is_marked_and_a_new_login_reconnects(build):
    """Per account (the supervisor): a token refused at the handshake marks the session refused; a new session
    connects with the new token."""
    quick = {"FEEDS_ACCOUNTS_POLL_SECONDS": "0.2", "FEEDS_LEASE_SECONDS": "6", "FEEDS_CONNECT_RATE": "100"}

    async def scenario():
        broker = FakeFyers()
        async with FakeFyersSocket(broker) as fake:
            services = build(**quick, FYERS_WS_URL=fake.url)
            account = services.accounts.create(
                "fyers",
                USER,
                credentials={"app_id": APP_ID, "app_secret": "fyers-app-secret-0001"},
                session_token="eyJ0eXAi.yesterdays-token",
            )
            stop = asyncio.Event()
            task = asyncio.ensure_future(build_supervisor(services, stop, ()).run())
            await wait_until(
                lambda: services.accounts.get(account.id).session.state == SessionState.REFUSED, "refused", 10
            )
            fresh = broker.issue_token(APP_ID, USER)
            services.accounts.set_session(account.id, fresh)
            await fake.wait_for(lambda: fake.subscribed(USER), 10, "the new session subscribed")
            await wait_state(services, account.feed_status_name("fyers"), "connected", lambda s: s.get("connected"))
            stop.set()
            await asyncio.wait_for(task, 15)
        return fake, fresh

    fake, fresh = asyncio.run(scenario())
    assert [ok for _, ok in fake.attempts] == [False, True]
    assert fake.attempts[1][0] == f"{APP_ID}:{fresh}"
