"""The Noren family's one connector, tested once per broker against a fake that plays that broker's side.

Each of Flattrade, Shoonya, Zebu and Firstock: its login (a frame, or the credentials in the query), the
subscription with or without its ack, the heartbeat (or none), an order placed → partly filled → filled, a rejection,
a modify and a cancel, a refused token, a drop, a mute socket, and an account added as data (docs/brokers.md §5).
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from app.brokers.firstock.spec import BROKER as FIRSTOCK
from app.brokers.flattrade.spec import BROKER as FLATTRADE
from app.brokers.loader import connector_classes
from app.brokers.noren.family import QUERY, NorenBroker
from app.brokers.shoonya.spec import BROKER as SHOONYA
from app.brokers.zebu.spec import BROKER as ZEBU
from tests.support.fakes import FakeNorenSocket
from tests.support.fakes.harness import ServiceBuilder, api_client, running, wait_state
from tests.support.helpers import load_fixture, run_pipeline

BROKERS = (FLATTRADE, SHOONYA, ZEBU, FIRSTOCK)
UID = "NR0101"
TOKEN = "noren-family-session-token-7c6b5a"
BASE = {k: v for k, v in load_fixture("flattrade_noren_open.json").items() if k not in ("uid", "actid")}


def update(order_id: str, status: str, report: str, **values: str) -> dict:
    """One Noren order update (Noren keys, every value a string) for our user."""
    return {**BASE, "uid": UID, "actid": UID, "norenordno": order_id, "status": status, "reporttype": report, **values}


#: An order placed, partly filled, then filled; one rejected; one modified then cancelled (docs/brokers.md §5.1).
LIFE = [
    update("A1", "PENDING", "NewAck", qty="100", exchordid="", exch_tm=""),
    update("A1", "OPEN", "New", qty="100", exch_tm="12-03-2024 13:53:04"),
    update(
        "A1", "OPEN", "Fill", qty="100", fillshares="40", avgprc="22480.00", flqty="40", exch_tm="12-03-2024 13:53:09"
    ),
    update("A1", "COMPLETE", "Fill", qty="100", fillshares="100", avgprc="22481.00", exch_tm="12-03-2024 13:53:15"),
    update("R1", "REJECTED", "Rejected", rejreason="RED:Margin Shortfall", exch_tm="12-03-2024 13:54:00"),
    update("M1", "OPEN", "New", prc="22400.00", exch_tm="12-03-2024 13:55:00"),
    update("M1", "REPLACED", "Replaced", prc="22410.00", exch_tm="12-03-2024 13:55:30"),
    update("M1", "CANCELED", "Canceled", prc="22410.00", cancelqty="1500", exch_tm="12-03-2024 13:56:00"),
]


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


def connector_of(broker: NorenBroker):
    """The broker's connector class, as the registry names it."""
    return connector_classes()[broker.name]


def family_env(broker: NorenBroker, fake: FakeNorenSocket, token: str = TOKEN, **extra: str) -> dict[str, str]:
    """The broker's variables pointing at the fake."""
    values = {
        "FEEDS": broker.name,
        broker.var("WS_URL"): fake.url,
        broker.var("USER_ID"): UID,
        broker.var("TOKEN"): token,
    }
    if broker.text_heartbeat:
        values[broker.var("HEARTBEAT_SECONDS")] = "5"
    return {**values, **extra}


def expected_login(broker: NorenBroker, session) -> None:
    """The session logged in the way the broker declares: its first frame form, or the query."""
    if broker.login_forms[0] == QUERY:
        query = parse_qs(urlsplit(session.path).query)
        assert query == {"userId": [UID], "jKey": [TOKEN], "source": ["developer-api"]}
        assert session.texts() == [] or json.loads(session.texts()[0]).get("t") != "o"  # no subscription
        return
    form = broker.login_forms[0]
    login = json.loads(session.texts()[0])
    token_key = "accesstoken" if form == "a" else "susertoken"
    assert login == {"t": form, "uid": UID, "actid": UID, "source": "API", token_key: TOKEN}
    assert session.texts()[1] == '{"t":"o","actid":"NR0101"}'


@pytest.mark.parametrize("broker", BROKERS, ids=lambda b: b.name)
def test_login_subscription_and_an_orders_life(build, admin_headers, broker):
    """Login as declared, the subscription (acked where the broker acks it), then every update is one event:
    placed → partly filled → filled, a rejection, a modify, a cancel."""

    async def scenario():
        async with FakeNorenSocket(UID, TOKEN, broker) as fake:
            services = build(**family_env(broker, fake))
            async with running(connector_of(broker), services):
                session = await fake.wait_sessions(1, logged_in=False)
                await wait_state(services, broker.name, "connected", lambda s: s.get("connected"))
                if broker.subscribes:
                    await fake.wait_for(lambda: len(session.texts()) >= 2, what="subscribe")
                for frame in LIFE:
                    await fake.push(fake.order_frame(frame))
                await fake.push({"t": "hk"})  # acks are skipped, never invalid
                state = await wait_state(services, broker.name, "every event", lambda s: s.get("events") == len(LIFE))
        return services, session, state

    services, session, state = asyncio.run(scenario())
    expected_login(broker, session)
    assert session.path.startswith(urlsplit(broker.ws_url).path)
    assert state["invalid"] == 0 and state["duplicates"] == 0
    run_pipeline(services)
    client = api_client(services)

    def order(order_id: str) -> dict:
        return client.get(f"/api/orders/{broker.name}/{order_id}", headers=admin_headers).get_json()

    filled = order("A1")
    assert filled["status"] == "FILLED" and filled["filled_quantity"] == 100
    statuses = [e["status"] for e in filled["events"]]
    assert statuses == ["PENDING", "OPEN", "PARTIALLY_FILLED", "FILLED"]
    assert {e["source"] for e in filled["events"]} == {"websocket"}
    rejected = order("R1")
    assert rejected["status"] == "REJECTED" and rejected["events"][0]["reason"] == "RED:Margin Shortfall"
    cancelled = order("M1")
    assert cancelled["status"] == "CANCELLED"
    assert [e["modified"] for e in cancelled["events"]] == [False, True, False]
    assert cancelled["events"][0]["product"] == "MIS"  # `prd` or `pcode`, whichever the broker sends


@pytest.mark.parametrize("broker", [b for b in BROKERS if b.text_heartbeat], ids=lambda b: b.name)
def test_heartbeat_text_frames(build, broker):
    """`{"t":"h"}` as a text frame every <PREFIX>_HEARTBEAT_SECONDS."""

    async def scenario():
        async with FakeNorenSocket(UID, TOKEN, broker) as fake:
            services = build(**family_env(broker, fake, **{broker.var("HEARTBEAT_SECONDS"): "0.1"}))
            async with running(connector_of(broker), services):
                session = await fake.wait_sessions(1)
                await fake.wait_for(lambda: session.texts().count('{"t":"h"}') >= 3, what="three heartbeats")
                return session

    session = asyncio.run(scenario())
    beats = [t for t, m in session.messages if m == '{"t":"h"}'][:3]
    gaps = [b - a for a, b in zip(beats, beats[1:], strict=False)]
    assert all(0.05 <= gap <= 1.0 for gap in gaps), gaps


def test_firstock_sends_nothing_but_is_kept_alive_by_pings(build):
    """Firstock: no login frame, no subscription, no text heartbeat; the WebSocket pings keep the socket."""

    async def scenario():
        async with FakeNorenSocket(UID, TOKEN, FIRSTOCK) as fake:
            services = build(**family_env(FIRSTOCK, fake), FEEDS_PING_SECONDS="0.1")
            async with running(connector_of(FIRSTOCK), services):
                session = await fake.wait_sessions(1, logged_in=False)
                await fake.wait_for(lambda: len(session.pings) >= 2, what="two pings")
                return session

    session = asyncio.run(scenario())
    assert session.messages == []


@pytest.mark.parametrize("broker", BROKERS, ids=lambda b: b.name)
def test_refused_token_stops_with_auth_failed(build, broker):
    """A refused token: auth_failed, never the subscription; each declared login form is tried once, no more."""

    async def scenario():
        async with FakeNorenSocket(UID, "the-right-token", broker) as fake:
            services = build(**family_env(broker, fake))
            async with running(connector_of(broker), services):
                state = await wait_state(
                    services, broker.name, "auth_failed", lambda s: s.get("state") == "auth_failed"
                )
                await asyncio.sleep(0.3)
                return state, fake.handshakes, fake.sessions

    state, handshakes, sessions = asyncio.run(scenario())
    assert handshakes == len(broker.login_forms)
    assert all(json.loads(t).get("t") != "o" for s in sessions for t in s.texts())
    assert TOKEN not in json.dumps(state) and "the-right-token" not in json.dumps(state)


@pytest.mark.parametrize("broker", [b for b in BROKERS if b.subscribe_ack], ids=lambda b: b.name)
def test_a_subscription_never_acknowledged_is_not_a_connection(build, broker):
    """Shoonya and Zebu acknowledge the subscription: without the ack the feed never reports connected, and
    tries again."""

    async def scenario():
        async with FakeNorenSocket(UID, TOKEN, broker) as fake:
            fake.ack_subscriptions = False
            services = build(**family_env(broker, fake), FEEDS_LOGIN_TIMEOUT_SECONDS="0.3")
            async with running(connector_of(broker), services):
                await fake.wait_sessions(2)
                state = await wait_state(services, broker.name, "a reconnect", lambda s: s.get("reconnects"))
        return state

    state = asyncio.run(scenario())
    assert state["connected"] in (False, "False", "0", 0, None) and "timed out" in state["last_error"]


@pytest.mark.parametrize("broker", BROKERS, ids=lambda b: b.name)
def test_drop_reconnects_and_logs_in_again(build, broker):
    """A dropped socket is reopened with the same login (and subscription)."""

    async def scenario():
        async with FakeNorenSocket(UID, TOKEN, broker) as fake:
            services = build(**family_env(broker, fake))
            async with running(connector_of(broker), services):
                first = await fake.wait_sessions(1, logged_in=False)
                await wait_state(services, broker.name, "connected", lambda s: s.get("connected"))
                fake.drop()
                second = await fake.wait_sessions(2, logged_in=False)
                state = await wait_state(services, broker.name, "reconnected", lambda s: s.get("reconnects") == 1)
                await wait_state(services, broker.name, "connected again", lambda s: s.get("connected"))
                return first, second, state

    first, second, state = asyncio.run(scenario())
    assert second.path == first.path and second.texts()[:2] == first.texts()[:2]


@pytest.mark.parametrize("broker", BROKERS, ids=lambda b: b.name)
def test_a_mute_socket_is_reconnected(build, broker):
    """Connected but mute (nothing answered, not even a ping): the feed closes it and connects again."""

    async def scenario():
        async with FakeNorenSocket(UID, TOKEN, broker) as fake:
            services = build(**family_env(broker, fake), FEEDS_PING_SECONDS="0.3")
            async with running(connector_of(broker), services):
                first = await fake.wait_sessions(1, logged_in=False)
                await fake.wait_for(lambda: len(first.pings) >= 1, 5, "a ping answered")
                fake.mute(first)
                await fake.wait_sessions(2, 10, logged_in=False)
                first.ws.transport.abort()  # the fake's end of the abandoned socket
                return await wait_state(services, broker.name, "reconnect", lambda s: s.get("reconnects"))

    assert asyncio.run(scenario())["reconnects"] >= 1


@pytest.mark.parametrize("broker", BROKERS, ids=lambda b: b.name)
def test_an_account_added_as_data_logs_in_with_its_own_id_and_token(build, broker):
    """Per account: the connector takes the account's client id and day's token, not the environment's."""
    account_token = "account-session-token-1f2e3d"

    async def scenario():
        async with FakeNorenSocket("AC0202", account_token, broker) as fake:
            services = build(**{broker.var("WS_URL"): fake.url})
            credentials = {"account": "AC0202"}
            account = services.accounts.create(
                broker.name, "AC0202", credentials=credentials, session_token=account_token
            )
            account = services.accounts.get(account.id, secrets=True)  # as the feeds process loads it
            connector = connector_of(broker)(services, asyncio.Event(), account=account)
            task = asyncio.ensure_future(connector.run())
            try:
                session = await fake.wait_sessions(1, logged_in=False)
                await wait_state(
                    services, account.feed_status_name(broker.name), "connected", lambda s: s.get("connected")
                )
            finally:
                connector.stop.set()
                await asyncio.wait_for(task, 5)
            return session

    session = asyncio.run(scenario())
    if broker.login_forms[0] == QUERY:
        assert parse_qs(urlsplit(session.path).query)["jKey"] == [account_token]
    else:
        login = json.loads(session.texts()[0])
        assert login["uid"] == "AC0202" and account_token in (login.get("susertoken"), login.get("accesstoken"))
