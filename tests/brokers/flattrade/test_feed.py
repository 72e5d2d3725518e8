"""Flattrade (Noren) order WebSocket against a local fake: login forms, subscribe, heartbeat, om updates."""

from __future__ import annotations

import asyncio
import json

import pytest

from app.brokers.flattrade.feed import FlattradeConnector
from app.exceptions import ConfigurationError
from tests.support.fakes import FakeNorenSocket
from tests.support.fakes.harness import ServiceBuilder, api_client, running, wait_state
from tests.support.helpers import load_fixture, run_pipeline

UID = "AJ0101"
TOKEN = "noren-session-token-5e4d3c2b1a"
OPEN = {"t": "om", **load_fixture("flattrade_noren_open.json")}
COMPLETE = {"t": "om", **load_fixture("flattrade_noren_complete.json")}


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


def noren_env(fake: FakeNorenSocket, **extra: str) -> dict[str, str]:
    return {
        "FEEDS": "flattrade",
        "NOREN_WS_URL": fake.url,
        "NOREN_USER_ID": UID,
        "NOREN_TOKEN": TOKEN,
        "NOREN_HEARTBEAT_SECONDS": "5",
        **extra,
    }


def test_access_token_login_subscribe_and_om_updates_persisted(build, admin_headers):
    """Default login form `a`, then the subscribe, byte for byte; om frames become order states."""

    async def scenario():
        async with FakeNorenSocket(UID, TOKEN) as fake:
            services = build(**noren_env(fake))
            async with running(FlattradeConnector, services):
                session = await fake.wait_sessions(1)
                await wait_state(services, "flattrade", "connected", lambda s: s.get("connected"))
                await fake.wait_for(lambda: len(session.texts()) >= 2, what="subscribe")
                await fake.push({"t": "ok"})
                await fake.push(OPEN)
                partial = dict(
                    OPEN,
                    reporttype="Fill",
                    fillshares="500",
                    avgprc="22480.00",
                    flid="1",
                    flqty="500",
                    exch_tm="12-03-2024 13:53:09",
                )
                await fake.push(partial)
                await fake.push(COMPLETE)
                state = await wait_state(services, "flattrade", "three events", lambda s: s.get("events") == 3)
        return services, session, state

    services, session, state = asyncio.run(scenario())
    assert session.texts()[:2] == [
        '{"t":"a","uid":"AJ0101","actid":"AJ0101","source":"API","accesstoken":"noren-session-token-5e4d3c2b1a"}',
        '{"t":"o","actid":"AJ0101"}',
    ]
    assert session.path == "/PiConnectWSAPI/"
    assert state["invalid"] == 0
    run_pipeline(services)
    client = api_client(services)
    working = client.get("/api/orders/flattrade/24031200000035", headers=admin_headers).get_json()
    assert working["status"] == "PARTIALLY_FILLED" and working["filled_quantity"] == 500
    done = client.get("/api/orders/flattrade/24031200000025", headers=admin_headers).get_json()
    assert done["status"] == "FILLED" and done["events"][0]["source"] == "websocket"


def test_susertoken_login_form_and_separate_account(build):
    """NOREN_LOGIN_MODE=c sends the older login; NOREN_ACCOUNT_ID goes in actid and the subscribe."""

    async def scenario():
        async with FakeNorenSocket(UID, TOKEN) as fake:
            services = build(**noren_env(fake, NOREN_LOGIN_MODE="c", NOREN_ACCOUNT_ID="AJ0101A"))
            async with running(FlattradeConnector, services):
                session = await fake.wait_sessions(1)
                await fake.wait_for(lambda: len(session.texts()) >= 2, what="subscribe")
                return session

    session = asyncio.run(scenario())
    assert session.texts()[:2] == [
        '{"t":"c","uid":"AJ0101","actid":"AJ0101A","susertoken":"noren-session-token-5e4d3c2b1a","source":"API"}',
        '{"t":"o","actid":"AJ0101A"}',
    ]


def test_heartbeat_text_frames_arrive_on_time(build):
    """`{"t":"h"}` as a text frame every NOREN_HEARTBEAT_SECONDS."""
    interval = 0.1

    async def scenario():
        async with FakeNorenSocket(UID, TOKEN) as fake:
            services = build(**noren_env(fake, NOREN_HEARTBEAT_SECONDS=str(interval)))
            async with running(FlattradeConnector, services):
                session = await fake.wait_sessions(1)
                await fake.wait_for(lambda: session.texts().count('{"t":"h"}') >= 4, what="four heartbeats")
                return session

    session = asyncio.run(scenario())
    subscribed_at = session.messages[1][0]
    beats = [t for t, m in session.messages if m == '{"t":"h"}'][:4]
    gaps = [b - a for a, b in zip([subscribed_at, *beats], beats, strict=False)]
    assert all(interval * 0.5 <= gap <= interval * 2.5 for gap in gaps), gaps


def test_refused_login_stops_with_auth_failed(build):
    """`ak` refused, then `ck` refused too (no NOREN_LOGIN_MODE set): auth_failed, no subscribe, no more retries."""

    async def scenario():
        async with FakeNorenSocket(UID, "the-right-token") as fake:
            services = build(**noren_env(fake))
            async with running(FlattradeConnector, services):
                state = await wait_state(
                    services, "flattrade", "auth_failed", lambda s: s.get("state") == "auth_failed"
                )
                await asyncio.sleep(0.3)
                return state, fake.handshakes, fake.sessions

    state, handshakes, sessions = asyncio.run(scenario())
    assert handshakes == 2  # one try per login form
    assert [json.loads(s.texts()[0])["t"] for s in sessions] == ["a", "c"]
    assert all(len(s.texts()) == 1 for s in sessions)  # the login only, never the subscribe
    assert "NOT_OK" in state["last_error"] and TOKEN not in json.dumps(state)


def test_a_configured_login_form_is_not_second_guessed(build):
    """NOREN_LOGIN_MODE=a: a refusal is final at once."""

    async def scenario():
        async with FakeNorenSocket(UID, "the-right-token") as fake:
            services = build(**noren_env(fake, NOREN_LOGIN_MODE="a"))
            async with running(FlattradeConnector, services):
                await wait_state(services, "flattrade", "auth_failed", lambda s: s.get("state") == "auth_failed")
                await asyncio.sleep(0.3)
                return fake.handshakes

    assert asyncio.run(scenario()) == 1


def test_the_older_login_form_is_tried_when_the_newer_is_refused(build):
    """A deployment that only knows `c`: the feed falls back to it by itself and subscribes."""

    class OldNoren(FakeNorenSocket):
        async def handle(self, session, message):
            if json.loads(message).get("t") == "a":
                await session.ws.send(json.dumps({"t": "ak", "s": "NOT_OK", "emsg": "unknown request"}))
                return
            await super().handle(session, message)

    async def scenario():
        async with OldNoren(UID, TOKEN) as fake:
            services = build(**noren_env(fake))
            async with running(FlattradeConnector, services):
                await wait_state(services, "flattrade", "connected", lambda s: s.get("connected"))
                session = await fake.wait_sessions(2)
                await fake.wait_for(lambda: len(session.texts()) >= 2, what="subscribe")
                return session.texts()[:2]

    login, subscribe = asyncio.run(scenario())
    assert json.loads(login)["t"] == "c" and json.loads(login)["susertoken"] == TOKEN
    assert subscribe == '{"t":"o","actid":"AJ0101"}'


def test_drop_reconnects_logs_in_and_subscribes_again(build):
    """A dropped socket is reopened with the same login and subscribe."""

    async def scenario():
        async with FakeNorenSocket(UID, TOKEN) as fake:
            services = build(**noren_env(fake))
            async with running(FlattradeConnector, services):
                first = await fake.wait_sessions(1)
                await fake.wait_for(lambda: len(first.texts()) >= 2, what="subscribe")
                fake.drop()
                second = await fake.wait_sessions(2)
                await fake.wait_for(lambda: len(second.texts()) >= 2, what="second subscribe")
                state = await wait_state(services, "flattrade", "reconnected", lambda s: s.get("connected"))
                return first, second, state

    first, second, state = asyncio.run(scenario())
    assert second.texts()[:2] == first.texts()[:2] and state["reconnects"] == 1


def test_unknown_login_mode_is_a_configuration_error(build):
    """A typo in NOREN_LOGIN_MODE stops the process at start-up, naming the variable."""
    with pytest.raises(ConfigurationError, match="NOREN_LOGIN_MODE must be 'a' or 'c'"):
        build(NOREN_LOGIN_MODE="x", NOREN_USER_ID=UID, NOREN_TOKEN=TOKEN)
