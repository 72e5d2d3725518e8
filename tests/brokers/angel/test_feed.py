"""Angel One's order-status socket against a local fake: bearer headers, the AB00 ack, pings, an order's life,
a modification's stale figures, refusals, drops and a mute socket (docs/brokers.md §9.2-§9.4)."""

from __future__ import annotations

import asyncio
import json

import pytest

from app.brokers.angel.feed import AngelConnector
from app.redis_keys import reconcile_request_key
from tests.support.fakes.angel import FakeAngelSocket
from tests.support.fakes.harness import ServiceBuilder, api_client, running, wait_state
from tests.support.helpers import load_fixture, run_pipeline

CLIENT = "R52269012"
TOKEN = "eyJhbGciOiJIUzUxMiJ9.angel-test-jwt-5e4d3c2b1a"
API_KEY = "angel-api-key-01"
ROW = load_fixture("angel_ws_open.json")["orderData"]
ORDER_ID = ROW["orderid"]


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


def angel_env(fake: FakeAngelSocket, **extra: str) -> dict[str, str]:
    return {
        "FEEDS": "angel",
        "ANGEL_WS_URL": fake.url,
        "ANGEL_CLIENT_CODE": CLIENT,
        "ANGEL_JWT_TOKEN": TOKEN,
        "ANGEL_API_KEY": API_KEY,
        "ANGEL_PING_SECONDS": "5",
        **extra,
    }


def row(**changes) -> dict:
    """The published AB01 row with fields changed (a limit order of 1120 at 12.5, say)."""
    return dict(ROW, **changes)


def test_bearer_headers_ack_and_an_order_placed_partly_filled_then_filled(build, admin_headers):
    async def scenario():
        async with FakeAngelSocket(CLIENT, {TOKEN}) as fake:
            services = build(**angel_env(fake))
            async with running(AngelConnector, services):
                await wait_state(services, "angel", "connected", lambda s: s.get("connected"))
                await fake.push("pong")  # a text pong some servers send: skipped, not counted invalid
                await fake.push_update("AB01", ROW)
                partly = row(
                    filledshares="400", unfilledshares="720", averageprice=12.25, updatetime="19-Dec-2023 09:18:11"
                )
                await fake.push_update("AB01", partly)
                done = row(
                    orderstatus="complete",
                    status="complete",
                    filledshares="1120",
                    unfilledshares="0",
                    averageprice=12.3,
                    updatetime="19-Dec-2023 09:18:12",
                )
                await fake.push_update("AB05", done)
                state = await wait_state(services, "angel", "three events", lambda s: s.get("events") == 3)
        return services, fake.requests[0], state

    services, headers, state = asyncio.run(scenario())
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["x-client-code"] == CLIENT and headers["x-api-key"] == API_KEY
    assert state["invalid"] == 0 and TOKEN not in json.dumps(state)
    run_pipeline(services)
    order = api_client(services).get(f"/api/orders/angel/{ORDER_ID}", headers=admin_headers).get_json()
    assert (order["status"], order["filled_quantity"], order["account_id"]) == ("FILLED", 1120, CLIENT)
    assert [e["status"] for e in order["events"]] == ["OPEN", "PARTIALLY_FILLED", "FILLED"]
    assert {e["source"] for e in order["events"]} == {"websocket"}


def test_rejection_and_cancel_frames(build, admin_headers):
    async def scenario():
        async with FakeAngelSocket(CLIENT, {TOKEN}) as fake:
            services = build(**angel_env(fake))
            async with running(AngelConnector, services):
                await wait_state(services, "angel", "connected", lambda s: s.get("connected"))
                rejected = row(
                    orderid="231219000044296", orderstatus="rejected", status="rejected", text="RMS:Margin Exceeds"
                )
                await fake.push_update("AB03", rejected)
                await fake.push_update("AB01", row(orderid="231219000044297"))
                cancelled = row(
                    orderid="231219000044297", orderstatus="cancelled", status="cancelled", cancelsize="1120"
                )
                await fake.push_update("AB02", cancelled)
                await wait_state(services, "angel", "three events", lambda s: s.get("events") == 3)
        return services

    services = asyncio.run(scenario())
    run_pipeline(services)
    client = api_client(services)
    rejected = client.get("/api/orders/angel/231219000044296", headers=admin_headers).get_json()
    assert rejected["status"] == "REJECTED" and rejected["reason"] == "RMS:Margin Exceeds"
    cancelled = client.get("/api/orders/angel/231219000044297", headers=admin_headers).get_json()
    assert cancelled["status"] == "CANCELLED" and cancelled["filled_quantity"] == 0


def test_a_modification_keeps_the_orders_figures_and_asks_for_the_book(build, admin_headers):
    """AB11/AB04 carry the values from before the change (§9.4): the order keeps its own; a reconciliation is asked."""

    async def scenario():
        async with FakeAngelSocket(CLIENT, {TOKEN}) as fake:
            services = build(**angel_env(fake))
            async with running(AngelConnector, services):
                await wait_state(services, "angel", "connected", lambda s: s.get("connected"))
                await fake.push_update("AB01", row(ordertype="LIMIT", price=12.5))
                services.redis.delete(reconcile_request_key("angel"))  # the connect's own request
                stale = row(ordertype="LIMIT", price=12.5, quantity="40", updatetime="19-Dec-2023 09:20:00")
                await fake.push_update("AB11", dict(stale, orderstatus="modify pending", status="modify pending"))
                await fake.push_update("AB04", dict(stale, orderstatus="modified", status="modified"))
                await wait_state(services, "angel", "three events", lambda s: s.get("events") == 3)
        return services

    services = asyncio.run(scenario())
    assert services.redis.get(reconcile_request_key("angel")) == b"an Angel One modification"
    run_pipeline(services)
    order = api_client(services).get(f"/api/orders/angel/{ORDER_ID}", headers=admin_headers).get_json()
    assert (order["status"], order["price"], order["quantity"]) == ("OPEN", 12.5, 1120)  # not the frames' 40
    assert [e["modified"] for e in order["events"]] == [False, True, True]
    assert all(e["quantity"] is None and e["price"] is None for e in order["events"][1:])


def test_pings_carry_ping_on_time(build):
    interval = 0.2

    async def scenario():
        async with FakeAngelSocket(CLIENT, {TOKEN}) as fake:
            services = build(**angel_env(fake, ANGEL_PING_SECONDS=str(interval)))
            async with running(AngelConnector, services):
                session = await fake.wait_sessions(1, logged_in=False)
                await fake.wait_for(lambda: len(session.pings) >= 4, what="four pings")
                return session

    session = asyncio.run(scenario())
    assert {data for _, data in session.pings} == {b"ping"}
    times = [t for t, _ in session.pings[:4]]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # Never faster than the period; on time on average (a busy machine may delay one, never several in a row).
    assert all(gap >= interval * 0.5 for gap in gaps) and sum(gaps) / len(gaps) <= interval * 4, gaps


def test_a_mute_socket_is_dropped_and_reconnected(build):
    """Connected but silent (no pong): dropped after the ping period, then a new connection."""

    async def scenario():
        async with FakeAngelSocket(CLIENT, {TOKEN}) as fake:
            services = build(**angel_env(fake, ANGEL_PING_SECONDS="0.2"))
            async with running(AngelConnector, services):
                first = await fake.wait_sessions(1, logged_in=False)
                await wait_state(services, "angel", "connected", lambda s: s.get("connected"))
                fake.mute(first)
                await fake.wait_sessions(2, timeout=10, logged_in=False)
                state = await wait_state(services, "angel", "reconnected", lambda s: s.get("connected"))
                first.ws.transport.abort()  # a paused connection never finishes a closing handshake
                return state

    state = asyncio.run(scenario())
    assert state["reconnects"] >= 1 and "mute" in state["last_error"]


def test_a_refused_token_stops_with_auth_failed_without_hammering(build):
    async def scenario():
        async with FakeAngelSocket(CLIENT, {"another-token"}) as fake:
            services = build(**angel_env(fake))
            async with running(AngelConnector, services):
                state = await wait_state(services, "angel", "auth_failed", lambda s: s.get("state") == "auth_failed")
                await asyncio.sleep(0.3)
                return state, fake.handshakes

    state, handshakes = asyncio.run(scenario())
    assert handshakes == 1 and "401" in state["last_error"] and TOKEN not in json.dumps(state)


def test_a_refusal_in_the_ack_is_an_auth_failure(build):
    async def scenario():
        async with FakeAngelSocket(CLIENT, {"another-token"}) as fake:
            fake.refuse_in_ack = True
            services = build(**angel_env(fake))
            async with running(AngelConnector, services):
                state = await wait_state(services, "angel", "auth_failed", lambda s: s.get("state") == "auth_failed")
                await asyncio.sleep(0.3)
                return state, fake.handshakes

    state, handshakes = asyncio.run(scenario())
    assert handshakes == 1 and "status-code '401'" in state["last_error"]


def test_a_drop_reconnects_with_the_same_headers_and_keeps_ingesting(build):
    async def scenario():
        async with FakeAngelSocket(CLIENT, {TOKEN}) as fake:
            services = build(**angel_env(fake))
            async with running(AngelConnector, services):
                await wait_state(services, "angel", "connected", lambda s: s.get("connected"))
                fake.drop()
                await fake.wait_sessions(2, logged_in=False)
                await wait_state(
                    services, "angel", "reconnected", lambda s: s.get("reconnects") == 1 and s.get("connected")
                )
                await fake.push_update("AB01", ROW)
                state = await wait_state(services, "angel", "one event", lambda s: s.get("events") == 1)
                return state, fake.requests

    state, requests = asyncio.run(scenario())
    assert len(requests) == 2 and requests[0]["Authorization"] == requests[1]["Authorization"] == f"Bearer {TOKEN}"
    assert state["events"] == 1


def test_the_ack_and_garbled_frames_are_no_orders():
    connector_frames = AngelConnector.order_payloads
    assert connector_frames(None, json.dumps(load_fixture("angel_ws_ack.json"))) == []
    assert connector_frames(None, "pong") == []
    with pytest.raises(ValueError):
        connector_frames(None, "[1, 2]")
    assert connector_frames(None, json.dumps(load_fixture("angel_ws_open.json")))[0]["order-status"] == "AB01"


def test_an_update_before_the_ack_is_taken(build):
    """The ack is documented first; an order frame that comes before it is an update all the same."""

    class EarlyUpdate(FakeAngelSocket):
        async def _handler(self, ws):
            await ws.send(
                json.dumps({"user-id": CLIENT, "status-code": "200", "order-status": "AB01", "orderData": ROW})
            )
            await super()._handler(ws)

    async def scenario():
        async with EarlyUpdate(CLIENT, {TOKEN}) as fake:
            services = build(**angel_env(fake))
            async with running(AngelConnector, services):
                ready = lambda s: s.get("events") == 1 and s.get("connected")  # noqa: E731
                return await wait_state(services, "angel", "one event, then connected", ready)

    state = asyncio.run(scenario())
    assert state["invalid"] == 0
