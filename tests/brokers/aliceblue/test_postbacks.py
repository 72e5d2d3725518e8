"""AliceBlue webhooks: POST /postbacks/aliceblue/<token> takes Noren-keyed order updates (docs/brokers.md §12)."""

from __future__ import annotations

import json

import pytest

from app.brokers.aliceblue.adapter import AliceBlueAdapter
from app.config import load_config
from app.events import OrderStatus
from app.redis_keys import STREAM
from tests.brokers.aliceblue.samples import FEED_ORDER, WEBHOOK_TEMPLATE, order, postbacks
from tests.support.env import POSTBACK_TOKEN
from tests.support.helpers import body
from tests.support.postback_cases import TokenSecurityCases

URL = f"/postbacks/aliceblue/{POSTBACK_TOKEN}"
RECEIVED = "2026-01-01T00:00:00.000000Z"


class TestAliceBlueSecurity(TokenSecurityCases):
    """Unsigned like Flattrade's: the secret POSTBACK_TOKEN in the path is the gate."""

    broker = "aliceblue"


def _queued(redis_client) -> list[dict]:
    return [json.loads(fields[b"e"]) for _, fields in redis_client.xrange(STREAM)]


def normalize(payload: dict):
    adapter = AliceBlueAdapter(load_config({"APP_ENV": "development"}))
    return adapter.event_from_payload(payload, source="websocket", received_at=RECEIVED)


def test_the_documented_update_is_stored_with_every_field(client, redis_client):
    answer = client.post(URL, data=body(postbacks()[0]), content_type="application/json")
    assert answer.status_code == 202, answer.get_json()
    [event] = _queued(redis_client)
    assert (event["broker"], event["source"], event["order_id"]) == ("aliceblue", "postback", "24070600000744")
    assert (event["status"], event["broker_status"], event["report_type"]) == ("REJECTED", "REJECTED", "Rejected")
    assert (event["side"], event["exchange"], event["symbol"]) == ("BUY", "NSE", "MRF-EQ")
    assert (event["order_type"], event["product"], event["account_id"]) == ("MARKET", "MIS", "1332014")
    assert event["reason"].startswith("RED:Margin Shortfall") and event["quantity"] == 1


def test_the_published_template_with_blank_status_is_refused_naming_it(client, redis_client):
    """AliceBlue's sample webhook has every status field blank: a 400 that names the field, nothing queued."""
    answer = client.post(URL, data=body(WEBHOOK_TEMPLATE), content_type="application/json")
    assert answer.status_code == 400 and "status" in answer.get_json()["error"]
    assert redis_client.xlen(STREAM) == 0


def test_the_webhook_and_the_feed_copy_of_one_update_are_one_event(client, services, redis_client):
    webhook = postbacks()[0]
    assert client.post(URL, data=body(webhook), content_type="application/json").status_code == 202
    feed_copy = services.adapters["aliceblue"].event_from_payload(
        dict(FEED_ORDER), source="websocket", received_at=RECEIVED
    )
    assert services.ingestor.submit(feed_copy, body(FEED_ORDER)) is False
    assert client.post(URL, data=body(webhook), content_type="application/json").status_code == 200
    assert redis_client.xlen(STREAM) == 1


@pytest.mark.parametrize(
    ("status", "report", "filled", "expected", "modified"),
    [
        ("open", "New", None, OrderStatus.OPEN, False),
        ("new", "New", None, OrderStatus.OPEN, False),
        ("trigger_pending", "New", None, OrderStatus.TRIGGER_PENDING, False),
        ("TRIGGER PENDING", "New", None, OrderStatus.TRIGGER_PENDING, False),
        ("replaced", "Replaced", "0", OrderStatus.OPEN, True),
        ("open", "Fill", "4", OrderStatus.PARTIALLY_FILLED, False),
        ("complete", "Fill", "10", OrderStatus.FILLED, False),
        ("complete", "Fill", "6", OrderStatus.PARTIALLY_FILLED, False),
        ("rejected", "Rejected", None, OrderStatus.REJECTED, False),
        ("cancelled", "Canceled", None, OrderStatus.CANCELLED, False),
        ("canceled", "Canceled", "3", OrderStatus.CANCELLED, False),
    ],
)
def test_status_words_and_quantities(status, report, filled, expected, modified):
    """AliceBlue's words (docs/brokers.md §12) through the Noren mapping; quantities decide partial fills."""
    fields = {"status": status, "reporttype": report, "qty": "10"}
    if filled is not None:
        fields["fillshares"] = filled
    event = normalize(order(**fields))
    assert (event.status, event.modified) == (expected, modified)


@pytest.mark.parametrize(("code", "expected"), [("L", "LIMIT"), ("MKT", "MARKET"), ("SL", "SL"), ("SL-M", "SL-M")])
def test_aliceblue_price_type_codes(code, expected):
    assert normalize(order(prctyp=code)).order_type == expected
