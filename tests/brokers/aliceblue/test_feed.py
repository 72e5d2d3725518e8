"""AliceBlue's order status feed against a local fake of its side: seed 000's protocol with Noren `om` frames.

The fake is the seed-000 fake Jainam's tests use (tests/support/fakes/sockets.py), at AliceBlue's socket path: one
protocol, one fake, as one module speaks it (app/brokers/notify_feed.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus

import pytest

from app.brokers.aliceblue.feed import AliceBlueConnector
from app.brokers.jainam.feed import JainamConnector
from app.brokers.notify_feed import OrderNotifyConnector
from tests.brokers.aliceblue.samples import FEED_ORDER, order
from tests.support.fakes import FakeJainamSocket
from tests.support.fakes.harness import ServiceBuilder, api_client, running, wait_state
from tests.support.helpers import run_pipeline

SESSION = "aliceblue-user-session-eyJhbGciOi-77aa88"
USER = "1332014"


class FakeAliceBlueSocket(FakeJainamSocket):
    """createWsToken (bearer) and the order socket at AliceBlue's paths; an empty token answer on demand."""

    path = "/open-api/order-notify/websocket"

    def __init__(self, bearer: str, user_id: str) -> None:
        super().__init__(bearer, user_id)
        #: Answer createWsToken with an empty 200 body (the feed is not enabled for the account).
        self.not_enabled = False

    def check_request(self, ws, request):
        if self.not_enabled and request.path.endswith("/ws/createWsToken"):
            self.token_requests += 1
            return ws.respond(HTTPStatus.OK, "")
        return super().check_request(ws, request)


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


def alice_env(fake: FakeAliceBlueSocket, **extra: str) -> dict[str, str]:
    return {
        "FEEDS": "aliceblue",
        "ALICEBLUE_NOTIFY_URL": fake.http_url + "/open-api/order-notify",
        "ALICEBLUE_WS_URL": fake.url,
        "ALICEBLUE_SESSION": SESSION,
        "ALICEBLUE_USER_ID": USER,
        "ALICEBLUE_HEARTBEAT_SECONDS": "5",
        **extra,
    }


def test_both_brokers_speak_the_one_shared_protocol():
    """Shared, not copied: the token exchange, login, heartbeat and frame reading are the module's, not each feed's."""
    shared = ("fetch_order_token", "login_frame", "heartbeat_frame", "login", "keepalives", "order_payloads", "url")
    for connector in (AliceBlueConnector, JainamConnector):
        assert issubclass(connector, OrderNotifyConnector)
        assert not any(name in vars(connector) for name in shared), connector


def life_of_an_order() -> list[dict]:
    """Placed, acknowledged, part filled, modified, filled; a second order cancelled; a third rejected."""
    base = {"norenordno": "24070600001000", "qty": "10", "tsym": "SBIN-EQ"}
    other = {"norenordno": "24070600001001", "qty": "5"}

    def step(fields: dict, status: str, report: str, at: str, **extra: str) -> dict:
        return order(**{**fields, "status": status, "reporttype": report, "exch_tm": f"06-07-2024 {at}", **extra})

    return [
        step(base, "PENDING", "NewAck", "10:00:00"),
        step(base, "OPEN", "New", "10:00:01"),
        step(base, "OPEN", "Fill", "10:00:05", fillshares="4", avgprc="2450.50"),
        step(base, "OPEN", "Replaced", "10:00:09", fillshares="4", avgprc="2450.50", prc="2451.00"),
        step(base, "COMPLETE", "Fill", "10:01:00", fillshares="10", avgprc="2450.80", prc="2451.00"),
        step(other, "OPEN", "New", "10:02:00"),
        step(other, "CANCELED", "Canceled", "10:03:00"),
        FEED_ORDER,
    ]


def test_token_login_heartbeat_and_an_orders_life_persisted(build, admin_headers):
    """Bearer → orderToken; the token and the client id go first; heartbeats on time; every `om` update stored."""
    interval = 0.1
    frames = life_of_an_order()

    async def scenario():
        async with FakeAliceBlueSocket(SESSION, USER) as fake:
            services = build(**alice_env(fake, ALICEBLUE_HEARTBEAT_SECONDS=str(interval)))
            async with running(AliceBlueConnector, services):
                session = await fake.wait_sessions(1)
                await wait_state(services, "aliceblue", "connected", lambda s: s.get("connected"))
                await fake.push({"t": "ck", "s": "OK"})  # not an order frame: skipped
                for frame in frames:
                    await fake.push(frame)
                await fake.wait_for(lambda: session.texts().count(heartbeat) >= 3, what="three heartbeats")
                state = await wait_state(services, "aliceblue", "all events", lambda s: s.get("events") == len(frames))
        return services, session, fake, state

    heartbeat = f'{{"heartbeat":"h","userId":"{USER}"}}'
    services, session, fake, state = asyncio.run(scenario())
    assert fake.token_requests == 1 and session.path == "/open-api/order-notify/websocket"
    assert session.first == f'{{"orderToken":"{fake.issued[0]}","userId":"{USER}"}}'
    beats = [t for t, m in session.messages if m == heartbeat][:3]
    gaps = [b - a for a, b in zip([session.messages[0][0], *beats], beats, strict=False)]
    assert all(interval * 0.5 <= gap <= interval * 2.5 for gap in gaps), gaps
    assert state["invalid"] == 0
    run_pipeline(services)
    client = api_client(services)
    filled = client.get("/api/orders/aliceblue/24070600001000", headers=admin_headers).get_json()
    assert filled["status"] == "FILLED" and filled["filled_quantity"] == 10 and filled["average_price"] == 2450.8
    assert [e["status"] for e in filled["events"]] == [
        "PENDING",
        "OPEN",
        "PARTIALLY_FILLED",
        "PARTIALLY_FILLED",
        "FILLED",
    ]
    assert [e["modified"] for e in filled["events"]] == [False, False, False, True, False]
    assert filled["events"][1]["order_type"] == "LIMIT" and filled["account_id"] == USER
    cancelled = client.get("/api/orders/aliceblue/24070600001001", headers=admin_headers).get_json()
    assert cancelled["status"] == "CANCELLED"
    rejected = client.get("/api/orders/aliceblue/24070600000744", headers=admin_headers).get_json()
    assert rejected["status"] == "REJECTED" and rejected["reason"].startswith("RED:Margin Shortfall")


def test_refused_session_stops_before_connecting_and_never_logs_it(build, caplog):
    """401 from createWsToken is an authentication refusal: no socket, no retry, no session in logs or state."""
    caplog.set_level(logging.DEBUG)

    async def scenario():
        async with FakeAliceBlueSocket("another-session", USER) as fake:
            services = build(**alice_env(fake))
            async with running(AliceBlueConnector, services):
                state = await wait_state(
                    services, "aliceblue", "auth_failed", lambda s: s.get("state") == "auth_failed"
                )
                await asyncio.sleep(0.3)
                return state, fake

    state, fake = asyncio.run(scenario())
    assert fake.token_requests == 1 and fake.handshakes == 0
    assert "401" in state["last_error"]
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.server"))
    assert SESSION not in ours and SESSION not in json.dumps(state)


def test_a_drop_reconnects_with_a_fresh_token_and_a_refused_order_token_stops(build):
    """A dropped socket is dialled again with a new orderToken; a not-Ok login answer is auth_failed."""

    async def scenario():
        async with FakeAliceBlueSocket(SESSION, USER) as fake:
            services = build(**alice_env(fake))
            async with running(AliceBlueConnector, services):
                first = await fake.wait_sessions(1)
                await wait_state(services, "aliceblue", "connected", lambda s: s.get("connected"))
                fake.refuse_login = True
                fake.drop()
                second = await fake.wait_sessions(2)
                state = await wait_state(
                    services, "aliceblue", "auth_failed", lambda s: s.get("state") == "auth_failed"
                )
                await asyncio.sleep(0.3)
                return fake, first, second, state

    fake, first, second, state = asyncio.run(scenario())
    assert fake.token_requests == 2 and first.first != second.first and fake.issued[1] in second.first
    assert fake.handshakes == 2 and state["reconnects"] == 1 and "Not_Ok" in state["last_error"]
    assert fake.issued[1] not in json.dumps(state) and SESSION not in json.dumps(state)


def test_a_mute_socket_is_reconnected(build):
    """Connected but mute (no pong to the library's ping): the connection is dropped and dialled again."""

    async def scenario():
        async with FakeAliceBlueSocket(SESSION, USER) as fake:
            services = build(**alice_env(fake), FEEDS_PING_SECONDS="0.3")
            async with running(AliceBlueConnector, services):
                first = await fake.wait_sessions(1)
                await fake.wait_for(lambda: len(first.pings) >= 1, 10, "a ping answered")
                fake.mute(first)
                await fake.wait_sessions(2, timeout=15)
                first.ws.transport.abort()
                state = await wait_state(services, "aliceblue", "reconnect", lambda s: s.get("reconnects"))
                return fake, state

    fake, state = asyncio.run(scenario())
    assert state["reconnects"] >= 1 and fake.token_requests >= 2


def test_a_feed_not_enabled_is_said_and_retried_not_called_a_refusal(build):
    """An empty createWsToken answer: the account lacks the order feed; retried with backoff, never auth_failed."""

    async def scenario():
        async with FakeAliceBlueSocket(SESSION, USER) as fake:
            fake.not_enabled = True
            services = build(**alice_env(fake))
            async with running(AliceBlueConnector, services):
                state = await wait_state(services, "aliceblue", "retried", lambda s: (s.get("reconnects") or 0) >= 2)
                return fake, state

    fake, state = asyncio.run(scenario())
    assert state["state"] != "auth_failed" and "not enabled" in state["last_error"]
    assert fake.handshakes == 0 and fake.token_requests >= 2


def test_an_account_added_as_data_connects_with_its_own_client_id_and_session(build):
    """Per account: the account's client id is the userId, its day's session the bearer (Account.variables)."""
    other_session = "aliceblue-second-account-session-99zz"

    async def scenario():
        async with FakeAliceBlueSocket(other_session, "912444") as fake:
            services = build(**alice_env(fake, ALICEBLUE_SESSION="", ALICEBLUE_USER_ID=""))
            account = services.accounts.create("aliceblue", "912444", session_token=other_session)
            stop = asyncio.Event()
            connector = AliceBlueConnector(services, stop, account=services.accounts.get(account.id, secrets=True))
            task = asyncio.ensure_future(connector.run())
            try:
                session = await fake.wait_sessions(1)
                await fake.push(order(norenordno="24070600002000", actid="912444", uid="912444"))
                state = await wait_state(services, connector.status_name, "an event", lambda s: s.get("events") == 1)
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
            return fake, session, state, connector

    fake, session, state, connector = asyncio.run(scenario())
    assert connector.status_name.startswith("aliceblue:acc_")
    assert session.first == f'{{"orderToken":"{fake.issued[0]}","userId":"912444"}}'
    assert other_session not in json.dumps(state)
