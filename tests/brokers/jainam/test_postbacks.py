"""Jainam webhooks: POST /postbacks/jainam/<token> takes the order status feed's JSON (seed 000)."""

from __future__ import annotations

import json

import pytest

from app.brokers.jainam.adapter import JainamAdapter
from app.brokers.registry import is_known_status
from app.config import load_config
from app.events import OrderStatus
from app.redis_keys import STREAM
from tests.support.env import POSTBACK_TOKEN
from tests.support.fakes.samples import JAINAM_ORD_NRML_SEED, jainam_order
from tests.support.helpers import body
from tests.support.postback_cases import TokenSecurityCases

URL = f"/postbacks/jainam/{POSTBACK_TOKEN}"
RECEIVED = "2026-01-01T00:00:00.000000Z"


class TestJainamSecurity(TokenSecurityCases):
    """Unsigned like Dhan: the secret POSTBACK_TOKEN in the path is the gate."""

    broker = "jainam"
    sample_body = body(JAINAM_ORD_NRML_SEED)


def _queued(redis_client) -> list[dict]:
    return [json.loads(fields[b"e"]) for _, fields in redis_client.xrange(STREAM)]


def test_the_seed_webhook_is_stored_through_the_adapter(client, redis_client):
    answer = client.post(URL, data=body(JAINAM_ORD_NRML_SEED), content_type="application/json")
    assert answer.status_code == 202, answer.get_json()
    [event] = _queued(redis_client)
    assert (event["broker"], event["source"], event["order_id"]) == ("jainam", "postback", "OKUAU0000112")
    assert (event["status"], event["broker_status"], event["report_type"]) == (OrderStatus.REJECTED, "15", "ORD_NRML")
    assert event["price"] == 2270.0 and event["reason"].startswith("Order failed surveillance")
    assert event["id"] == answer.get_json()["id"]


def test_the_webhook_and_the_feed_copy_of_one_update_are_one_event(client, services, redis_client):
    assert client.post(URL, data=body(JAINAM_ORD_NRML_SEED), content_type="application/json").status_code == 202
    feed_copy = services.adapters["jainam"].event_from_payload(
        json.loads(body(JAINAM_ORD_NRML_SEED)), source="websocket", received_at=RECEIVED
    )
    assert services.ingestor.submit(feed_copy, body(JAINAM_ORD_NRML_SEED)) is False
    assert client.post(URL, data=body(JAINAM_ORD_NRML_SEED), content_type="application/json").status_code == 200
    assert redis_client.xlen(STREAM) == 1


def test_an_order_and_its_trade_are_two_events(client, redis_client):
    """ORD_NRML (open, nothing traded) then TRD_MSG (the fill): each is stored."""
    order = jainam_order(OrderStatus=5, OrderNumber="1100000000123", OrderOriginalQty=10, PendingQty=10)
    trade = {
        "MessageType": "TRD_MSG",
        "UniqueCode": "OKUAU0000112",
        "OrderNumber": "1100000000123",
        "Exchange": "1",
        "Buy_Sell": "1",
        "Symbol": "ADANIENT",
        "OrderOriginalQty": "10",
        "TradeQty": "10",
        "QuantityTradedToday": "10",
        "TradedPrice": "227000",
        "TradeTime": "2025-02-01 16:27:00",
    }
    for message in (order, trade):
        assert client.post(URL, data=body(message), content_type="application/json").status_code == 202
    assert [e["status"] for e in _queued(redis_client)] == [OrderStatus.OPEN, OrderStatus.FILLED]


@pytest.mark.parametrize(
    ("sent", "mentions"),
    [
        (b'{"MessageType": "MKT_STAT", "Exchange": "1"}', "UniqueCode"),
        (b'[{"MessageType": "ORD_NRML"}]', "JSON object"),
        (b'{"MessageType": "ORD_NRML", "UniqueCode": "X1", "OrderStatus": 5, "OrderPrice": "lots"}', "OrderPrice"),
    ],
)
def test_wrong_shapes_are_a_400_with_a_json_error(client, redis_client, sent, mentions):
    answer = client.post(URL, data=sent, content_type="application/json")
    assert answer.status_code == 400 and mentions in answer.get_json()["error"], answer.get_json()
    assert redis_client.xlen(STREAM) == 0


def test_known_codes_follow_the_deployment_table(env):
    deployment = JainamAdapter(load_config(dict(env, JAINAM_STATUS_MAP="21:CANCELLED")))
    assert deployment.is_known_status("21") and deployment.is_known_status(21.0)
    assert not is_known_status("jainam", "21")  # the default table leaves 21 STOPPED unmapped
    for raw in (5, "7", "16", "EXECUTED", "a.rejected", "ORDER ERROR"):
        assert deployment.is_known_status(raw) and is_known_status("jainam", raw), raw
    assert not deployment.is_known_status("8") and not deployment.is_known_status("STOPPED")
