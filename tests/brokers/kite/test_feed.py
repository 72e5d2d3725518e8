"""Kite order updates over WebSocket against a local fake: credentials, frames, dedup with postbacks, drops."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest

from app.brokers.kite.feed import KiteConnector
from tests.support.env import KITE_SECRET
from tests.support.fakes import FakeKiteSocket
from tests.support.fakes.harness import ServiceBuilder, api_client, running, wait_state
from tests.support.helpers import load_fixture, run_pipeline, sign_kite

API_KEY = "kiteapikey01"
ACCESS_TOKEN = "kite-access-token-9f8e7d6c5b4a"
SEED = load_fixture("kite_postback_complete.json")
ORDER_ID = SEED["order_id"]


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


def ws_order(**changes) -> dict:
    """A postback-shaped order as the WebSocket carries it: the checksum is blank (docs/brokers.md §3.2)."""
    return dict(SEED, checksum="", **changes)


def kite_env(fake: FakeKiteSocket, **extra: str) -> dict[str, str]:
    return {
        "FEEDS": "kite",
        "KITE_WS_URL": fake.url,
        "KITE_API_KEY": API_KEY,
        "KITE_ACCESS_TOKEN": ACCESS_TOKEN,
        **extra,
    }


def test_credentials_in_query_frames_normalized_and_persisted(build, admin_headers):
    """api_key/access_token in the query; order frames with and without `data`; binary and other types ignored."""

    async def scenario():
        async with FakeKiteSocket(API_KEY, ACCESS_TOKEN) as fake:
            services = build(**kite_env(fake))
            async with running(KiteConnector, services):
                session = await fake.wait_sessions(1, logged_in=False)
                await wait_state(services, "kite", "connected", lambda s: s.get("connected"))
                await fake.push(b"\x00\x01binary market data")
                await fake.push({"type": "message", "data": "an alert"})
                opened = ws_order(
                    status="OPEN",
                    filled_quantity=0,
                    pending_quantity=1,
                    average_price=0,
                    exchange_update_timestamp="2022-03-03 09:24:20",
                )
                await fake.push({"type": "order", "data": opened})
                complete = {"type": "order", **ws_order()}  # the reported frame without `data` (forum 7454)
                await fake.push(complete)
                state = await wait_state(services, "kite", "two events", lambda s: s.get("events") == 2)
        return services, session, state

    services, session, state = asyncio.run(scenario())
    query = parse_qs(urlsplit(session.path).query)
    assert query == {"api_key": [API_KEY], "access_token": [ACCESS_TOKEN]}
    assert session.messages == []  # Kite needs no subscription
    assert state["messages"] == 4 and state["invalid"] == 0 and state["reconnects"] == 0
    run_pipeline(services)
    order = api_client(services).get(f"/api/orders/kite/{ORDER_ID}", headers=admin_headers).get_json()
    assert order["status"] == "FILLED" and order["filled_quantity"] == 1 and order["average_price"] == 470
    assert [e["source"] for e in order["events"]] == ["websocket", "websocket"]
    assert [e["status"] for e in order["events"]] == ["OPEN", "FILLED"]
    assert order["events"][1]["raw"]["order_id"] == ORDER_ID


def test_same_update_by_postback_and_websocket_is_one_event(build, admin_headers):
    """The postback arrives first (202); the WebSocket copy is a duplicate; one event is stored."""

    async def scenario():
        async with FakeKiteSocket(API_KEY, ACCESS_TOKEN) as fake:
            services = build(**kite_env(fake))
            client = api_client(services)
            posted = client.post("/postbacks/kite", data=json.dumps(sign_kite(SEED, KITE_SECRET)))
            assert posted.status_code == 202
            async with running(KiteConnector, services):
                await wait_state(services, "kite", "connected", lambda s: s.get("connected"))
                await fake.push({"type": "order", "data": ws_order()})
                state = await wait_state(services, "kite", "a duplicate", lambda s: s.get("duplicates") == 1)
        return services, posted.get_json()["id"], state

    services, event_id, state = asyncio.run(scenario())
    assert state.get("events", 0) == 0
    run_pipeline(services)
    order = api_client(services).get(f"/api/orders/kite/{ORDER_ID}", headers=admin_headers).get_json()
    assert [e["id"] for e in order["events"]] == [event_id]
    assert order["events"][0]["source"] == "postback"


def test_drop_reconnects_and_keeps_ingesting(build, admin_headers):
    """A cut connection is retried with backoff; the reconnect count goes up; updates flow again."""

    async def scenario():
        async with FakeKiteSocket(API_KEY, ACCESS_TOKEN) as fake:
            services = build(**kite_env(fake))
            async with running(KiteConnector, services):
                await wait_state(services, "kite", "connected", lambda s: s.get("connected"))
                await fake.wait_sessions(1, logged_in=False)
                fake.drop()
                await fake.wait_sessions(2, logged_in=False)
                state = await wait_state(
                    services, "kite", "reconnected", lambda s: s.get("reconnects") == 1 and s.get("connected")
                )
                await fake.push({"type": "order", "data": ws_order()})
                await wait_state(services, "kite", "an event", lambda s: s.get("events") == 1)
        return services, state

    services, state = asyncio.run(scenario())
    assert state["state"] == "running" and "dropped" in state["last_error"]
    run_pipeline(services)
    order = api_client(services).get(f"/api/orders/kite/{ORDER_ID}", headers=admin_headers).get_json()
    assert order["status"] == "FILLED"


def test_refused_token_stops_with_auth_failed_and_never_logs_it(build, caplog):
    """HTTP 403 at the handshake: state auth_failed, no retries, the token appears nowhere."""
    caplog.set_level(logging.DEBUG)

    async def scenario():
        async with FakeKiteSocket(API_KEY, "the-real-token-1234") as fake:
            services = build(**kite_env(fake))
            async with running(KiteConnector, services) as connector:
                state = await wait_state(services, "kite", "auth_failed", lambda s: s.get("state") == "auth_failed")
                await asyncio.sleep(0.3)  # many backoff periods: no retry may happen
                attempts = fake.handshakes
                finished = connector
        return state, attempts, finished

    state, attempts, _ = asyncio.run(scenario())
    assert attempts == 1
    assert state["connected"] is False and "403" in state["last_error"]
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.server"))
    assert ACCESS_TOKEN not in ours and ACCESS_TOKEN not in json.dumps(state)
    assert "AUTHENTICATION REFUSED" in ours


def test_unparseable_and_invalid_updates_are_counted_not_fatal(build):
    """Garbage text and an order that does not validate are skipped; the connection stays up."""

    async def scenario():
        async with FakeKiteSocket(API_KEY, ACCESS_TOKEN) as fake:
            services = build(**kite_env(fake))
            async with running(KiteConnector, services):
                await wait_state(services, "kite", "connected", lambda s: s.get("connected"))
                await fake.push("not json")
                await fake.push({"type": "order", "data": ws_order(quantity="lots")})
                await fake.push({"type": "order", "data": ws_order()})
                return await wait_state(services, "kite", "one event", lambda s: s.get("events") == 1)

    state = asyncio.run(scenario())
    assert state["invalid"] == 2 and state["connected"] is True and "quantity" in state["last_invalid"]


def test_update_is_held_and_retried_while_it_cannot_be_queued(build, admin_headers):
    """A feed cannot ask for a replay: when the queue step fails the update is retried, not dropped."""
    from app.exceptions import NotDurableError

    async def scenario():
        async with FakeKiteSocket(API_KEY, ACCESS_TOKEN) as fake:
            services = build(**kite_env(fake))
            real_submit, failures = services.ingestor.submit, []

            def flaky_submit(event, raw):
                if len(failures) < 2:
                    failures.append(event.id)
                    raise NotDurableError("Redis away (test)")
                return real_submit(event, raw)

            services.ingestor.submit = flaky_submit
            async with running(KiteConnector, services):
                await wait_state(services, "kite", "connected", lambda s: s.get("connected"))
                await fake.push({"type": "order", "data": ws_order()})
                state = await wait_state(services, "kite", "the event", lambda s: s.get("events") == 1)
        return services, failures, state

    services, failures, state = asyncio.run(scenario())
    assert len(failures) == 2 and state["connected"] is True
    run_pipeline(services)
    order = api_client(services).get(f"/api/orders/kite/{ORDER_ID}", headers=admin_headers).get_json()
    assert order["status"] == "FILLED" and len(order["events"]) == 1


def test_every_connect_and_reconnect_runs_the_connected_hooks(build):
    """Brokers never replay what was missed while a feed was down: each (re)connect tells the hooks, so a
    reconciliation can be started there; a failing hook costs nothing."""
    from app.brokers.feed import add_connected_hook, remove_connected_hook

    calls: list[tuple[str, str]] = []

    def broken(feed: str, broker: str) -> None:
        raise RuntimeError("a hook's own bug")

    async def scenario():
        async with FakeKiteSocket(API_KEY, ACCESS_TOKEN) as fake:
            services = build(**kite_env(fake))
            async with running(KiteConnector, services):
                await wait_state(services, "kite", "connected", lambda s: s.get("connected"))
                await fake.wait_sessions(1, logged_in=False)
                fake.drop()
                await wait_state(
                    services, "kite", "reconnected", lambda s: s.get("reconnects") == 1 and s.get("connected")
                )
                await fake.push({"type": "order", "data": ws_order()})
                await wait_state(services, "kite", "an event", lambda s: s.get("events") == 1)

    def record(feed: str, broker: str) -> None:
        calls.append((feed, broker))

    add_connected_hook(broken)
    add_connected_hook(record)
    try:
        asyncio.run(scenario())
    finally:
        remove_connected_hook(broken)
        remove_connected_hook(record)
    assert calls == [("kite", "kite"), ("kite", "kite")]
