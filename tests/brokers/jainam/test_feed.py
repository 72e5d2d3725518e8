"""Jainam protrade: the adapter (ORD_NRML/TRD_MSG, status table, paise) and the feed against a local fake."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from app.brokers.jainam.adapter import JainamAdapter, parse_status_map
from app.brokers.jainam.feed import JainamConnector
from app.config import load_config
from app.events import OrderStatus
from app.exceptions import ConfigurationError, PostbackPayloadError
from tests.support.fakes import FakeJainamSocket
from tests.support.fakes.harness import ServiceBuilder, api_client, running, wait_state
from tests.support.fakes.samples import JAINAM_ORD_NRML_SEED, jainam_order
from tests.support.helpers import run_pipeline

BEARER = "jainam-bearer-token-77aa88bb99cc"
USER = "JA1234"
RECEIVED = "2026-01-01T00:00:00.000000Z"


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


def adapter(**env: str) -> JainamAdapter:
    return JainamAdapter(load_config({"APP_ENV": "development", **env}))


def normalize(message: dict, **env: str):
    return adapter(**env).event_from_payload(message, source="websocket", received_at=RECEIVED)


# Adapter (docs/brokers.md §6)


def test_seed_normalizes_every_field():
    """Seed 000: a surveillance reject (15), price in paise, IST time with dots."""
    event = normalize(JAINAM_ORD_NRML_SEED).to_dict()
    assert event["broker"] == "jainam" and event["source"] == "websocket"
    assert event["order_id"] == "OKUAU0000112" and event["exchange_order_id"] is None  # OrderNumber "0"
    assert event["status"] == OrderStatus.REJECTED and event["broker_status"] == "15"
    assert event["side"] == "BUY" and event["exchange"] == "NSE" and event["symbol"] == "ADANIENT"
    assert event["price"] == 2270.0 and event["trigger_price"] == 0
    assert (event["quantity"], event["filled_quantity"], event["pending_quantity"]) == (1, 0, 1)
    assert event["exchange_time"] == "2025-02-01T10:56:05.000000Z"  # 16:26:05 IST
    assert event["reason"].startswith("Order failed surveillance") and event["tag"] is None
    assert event["raw"] == JAINAM_ORD_NRML_SEED


@pytest.mark.parametrize(
    ("code", "traded", "expected", "modified"),
    [
        (5, 0, OrderStatus.OPEN, False),
        (5, 4, OrderStatus.PARTIALLY_FILLED, False),
        ("5.0", 0, OrderStatus.OPEN, False),
        (6, 0, OrderStatus.CANCELLED, False),
        (7, 10, OrderStatus.FILLED, False),
        (7, 6, OrderStatus.PARTIALLY_FILLED, False),
        (9, 0, OrderStatus.REJECTED, False),
        (12, 0, OrderStatus.REJECTED, False),
        (14, 0, OrderStatus.PENDING, False),
        ("15", 0, OrderStatus.REJECTED, False),
        (16, 0, OrderStatus.OPEN, True),
        (17, 3, OrderStatus.CANCELLED, False),
        (18, 0, OrderStatus.PENDING, False),
        (19, 0, OrderStatus.CANCELLED, False),
        (20, 10, OrderStatus.FILLED, False),
        ("ADMIN PENDING", 0, OrderStatus.PENDING, False),
        ("PENDING", 0, OrderStatus.OPEN, False),
        ("EXECUTED", 10, OrderStatus.FILLED, False),
        ("A.REJECTED", 0, OrderStatus.REJECTED, False),
        ("ORDER ERROR", 0, OrderStatus.REJECTED, False),
    ],
)
def test_status_table_a_and_indira_words(code, traded, expected, modified):
    """Table (a) is the default; words from the Indira feed map too; quantities decide partial fills."""
    event = normalize(jainam_order(OrderStatus=code, OrderOriginalQty=10, TradedQTY=traded, OrderNumber="1100"))
    assert (event.status, event.modified) == (expected, modified)
    assert event.exchange_order_id == "1100"


@pytest.mark.parametrize("code", [8, 21, 22, "SOMETHING"])
def test_unknown_codes_are_kept_but_never_move_the_state(code, caplog):
    """8, 21 STOPPED and 22 CONVERTED have no known meaning: logged, stored as PENDING (docs/brokers.md §2)."""
    with caplog.at_level(logging.WARNING):
        event = normalize(jainam_order(OrderStatus=code))
    assert event.status == OrderStatus.PENDING and event.broker_status == str(code)
    assert "JAINAM_STATUS_MAP" in caplog.text


def test_status_map_override_per_deployment():
    """JAINAM_STATUS_MAP replaces or adds codes (e.g. the Choice FINX table, where 6 is Rejected)."""
    event = normalize(jainam_order(OrderStatus=6), JAINAM_STATUS_MAP="6:REJECTED, 21:cancelled")
    assert event.status == OrderStatus.REJECTED
    assert normalize(jainam_order(OrderStatus=21), JAINAM_STATUS_MAP="21:CANCELLED").status == OrderStatus.CANCELLED
    assert normalize(jainam_order(OrderStatus=15), JAINAM_STATUS_MAP="6:REJECTED").status == OrderStatus.REJECTED


@pytest.mark.parametrize("value", ["5=OPEN", "x:OPEN", "5:DONE", "5:"])
def test_bad_status_map_names_the_variable(value):
    with pytest.raises(ConfigurationError, match="JAINAM_STATUS_MAP"):
        parse_status_map(value)


def test_price_divisor_is_configurable():
    """Rupee deployments set JAINAM_PRICE_DIVISOR=1; nonsense is a configuration error."""
    assert normalize(jainam_order(OrderPrice="2270.50"), JAINAM_PRICE_DIVISOR="1").price == 2270.5
    with pytest.raises(ConfigurationError, match="JAINAM_PRICE_DIVISOR"):
        adapter(JAINAM_PRICE_DIVISOR="0")


def test_trade_message_fill_and_average_price():
    """TRD_MSG: cumulative QuantityTradedToday is the fill; one trade making the whole fill gives the average."""
    trade = {
        "MessageType": "TRD_MSG",
        "UniqueCode": "OKUAU0000200",
        "OrderNumber": "1100000000123",
        "Exchange": 2,
        "Buy_Sell": 2,
        "Symbol": "SBIN",
        "OrderOriginalQty": "10",
        "TradeQty": "4",
        "QuantityTradedToday": "4",
        "TradedPrice": "81050",
        "TradeTime": "2026-05-08 11:55:20",
    }
    event = normalize(trade)
    assert event.status == OrderStatus.PARTIALLY_FILLED and event.filled_quantity == 4
    assert event.average_price == 810.5 and event.side == "SELL" and event.exchange == "BSE"
    assert event.exchange_time == "2026-05-08T06:25:20.000000Z"
    later = normalize(dict(trade, TradeQty="6", QuantityTradedToday="10", TradedPrice="81100"))
    assert later.status == OrderStatus.FILLED and later.average_price is None  # two trades: no exact average


def test_gtd_expiry_trigger_inference_and_missing_id():
    assert normalize(jainam_order(OrderStatus=5, GTDOrderStatus=4)).status == OrderStatus.EXPIRED
    stop = normalize(jainam_order(OrderStatus=5, TriggerPrice=226000, TradedQTY=0))
    assert stop.status == OrderStatus.TRIGGER_PENDING and stop.trigger_price == 2260.0
    with pytest.raises(PostbackPayloadError, match="UniqueCode"):
        normalize(jainam_order(UniqueCode="", OrderNumber="0"))
    assert normalize(jainam_order(UniqueCode="", OrderNumber="1100000000555")).order_id == "1100000000555"


# Feed (seed 000 transport)


def jainam_env(fake: FakeJainamSocket, **extra: str) -> dict[str, str]:
    return {
        "FEEDS": "jainam",
        "JAINAM_API_URL": fake.http_url + "/odrest",
        "JAINAM_WS_URL": fake.url,
        "JAINAM_BEARER_TOKEN": BEARER,
        "JAINAM_USER_ID": USER,
        "JAINAM_HEARTBEAT_SECONDS": "5",
        **extra,
    }


def test_token_login_heartbeat_and_orders_persisted(build, admin_headers):
    """createWsToken with the bearer; the token and user go first; heartbeats on time; ORD_NRML/TRD_MSG persisted."""
    interval = 0.1

    async def scenario():
        async with FakeJainamSocket(BEARER, USER) as fake:
            services = build(**jainam_env(fake, JAINAM_HEARTBEAT_SECONDS=str(interval)))
            async with running(JainamConnector, services):
                session = await fake.wait_sessions(1)
                await wait_state(services, "jainam", "connected", lambda s: s.get("connected"))
                await fake.push({"MessageType": "MKT_STAT", "Exchange": 1})  # not an order: skipped
                await fake.push(JAINAM_ORD_NRML_SEED)
                working = jainam_order(
                    UniqueCode="OKUAU0000300",
                    OrderStatus="5",
                    OrderOriginalQty=10,
                    PendingQty=10,
                    OrderNumber="1100000000300",
                    LastModifiedTime="08-May-2026 11:55:00",
                )
                trade = {
                    "MessageType": "TRD_MSG",
                    "UniqueCode": "OKUAU0000300",
                    "OrderOriginalQty": 10,
                    "TradeQty": 10,
                    "QuantityTradedToday": 10,
                    "TradedPrice": 227100,
                    "TradeTime": "2026-05-08 11:55:20",
                }
                await fake.push([working, trade])  # a frame may carry a list
                await fake.wait_for(lambda: session.texts().count(heartbeat) >= 3, what="three heartbeats")
                state = await wait_state(services, "jainam", "three events", lambda s: s.get("events") == 3)
        return services, session, fake, state

    heartbeat = '{"heartbeat":"h","userId":"JA1234"}'
    services, session, fake, state = asyncio.run(scenario())
    assert fake.token_requests == 1 and session.path == "/omo/odrest/websocket"
    assert session.first == f'{{"orderToken":"{fake.issued[0]}","userId":"JA1234"}}'
    beats = [t for t, m in session.messages if m == heartbeat][:3]
    gaps = [b - a for a, b in zip([session.messages[0][0], *beats], beats, strict=False)]
    assert all(interval * 0.5 <= gap <= interval * 2.5 for gap in gaps), gaps
    assert state["invalid"] == 0
    run_pipeline(services)
    client = api_client(services)
    rejected = client.get("/api/orders/jainam/OKUAU0000112", headers=admin_headers).get_json()
    assert rejected["status"] == "REJECTED" and rejected["price"] == 2270.0
    filled = client.get("/api/orders/jainam/OKUAU0000300", headers=admin_headers).get_json()
    assert filled["status"] == "FILLED" and filled["filled_quantity"] == 10 and filled["average_price"] == 2271.0
    assert [e["status"] for e in filled["events"]] == ["OPEN", "FILLED"]


def test_bearer_refused_stops_before_connecting(build, caplog):
    """401 from createWsToken is an authentication refusal: no socket, no retry, no token in logs."""
    caplog.set_level(logging.DEBUG)

    async def scenario():
        async with FakeJainamSocket("some-other-bearer", USER) as fake:
            services = build(**jainam_env(fake))
            async with running(JainamConnector, services):
                state = await wait_state(services, "jainam", "auth_failed", lambda s: s.get("state") == "auth_failed")
                await asyncio.sleep(0.3)
                return state, fake

    state, fake = asyncio.run(scenario())
    assert fake.token_requests == 1 and fake.handshakes == 0
    assert "401" in state["last_error"]
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.server"))
    assert BEARER not in ours and BEARER not in json.dumps(state)


def test_refused_order_token_stops_and_reconnect_fetches_a_new_token(build):
    """A drop reconnects with a fresh token; a not-Ok answer to the login is auth_failed."""

    async def scenario():
        async with FakeJainamSocket(BEARER, USER) as fake:
            services = build(**jainam_env(fake))
            async with running(JainamConnector, services):
                first = await fake.wait_sessions(1)
                await wait_state(services, "jainam", "connected", lambda s: s.get("connected"))
                fake.refuse_login = True
                fake.drop()
                second = await fake.wait_sessions(2)
                state = await wait_state(services, "jainam", "auth_failed", lambda s: s.get("state") == "auth_failed")
                await asyncio.sleep(0.3)
                return fake, first, second, state

    fake, first, second, state = asyncio.run(scenario())
    assert fake.token_requests == 2 and first.first != second.first and fake.issued[1] in second.first
    assert fake.handshakes == 2 and state["reconnects"] == 1 and "Not_Ok" in state["last_error"]
    assert fake.issued[1] not in json.dumps(state)
