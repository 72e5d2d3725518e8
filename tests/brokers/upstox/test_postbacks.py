"""Upstox webhooks: POST /postbacks/upstox/<token> takes the documented payloads (docs/brokers.md §10.1, §10.3)."""

from __future__ import annotations

import json

import pytest

from app.brokers.registry import is_known_status
from app.brokers.upstox.adapter import UpstoxAdapter
from app.config import load_config
from app.events import OrderStatus
from app.redis_keys import STREAM
from tests.brokers.upstox.samples import (
    BOOK_COMPLETE,
    BOOK_REJECTED,
    HISTORY_FIRST,
    WEBHOOK_CANCELLED_AMO,
    WEBHOOK_PUT_ORDER,
    order_update,
)
from tests.support.env import POSTBACK_TOKEN
from tests.support.helpers import body
from tests.support.postback_cases import TokenSecurityCases, one_char_changed

URL = f"/postbacks/upstox/{POSTBACK_TOKEN}"
RECEIVED = "2026-01-01T00:00:00.000000Z"


class TestUpstoxSecurity(TokenSecurityCases):
    """Documented unsigned ("should not require authentication"): the secret POSTBACK_TOKEN in the path is the gate."""

    broker = "upstox"


def adapter() -> UpstoxAdapter:
    return UpstoxAdapter(load_config({"APP_ENV": "development"}))


def normalize(payload: dict, source: str = "websocket"):
    return adapter().event_from_payload(payload, source=source, received_at=RECEIVED)


def _queued(redis_client) -> list[dict]:
    return [json.loads(fields[b"e"]) for _, fields in redis_client.xrange(STREAM)]


def post(client, payload: dict, url: str = URL):
    return client.post(url, data=body(payload), content_type="application/json")


def test_the_documented_webhook_is_stored_with_every_field(client, redis_client):
    answer = post(client, WEBHOOK_PUT_ORDER)
    assert answer.status_code == 202, answer.get_json()
    [event] = _queued(redis_client)
    assert (event["broker"], event["source"], event["order_id"]) == ("upstox", "postback", "240221025997024")
    assert (event["status"], event["broker_status"]) == (OrderStatus.PENDING, "put order req received")
    assert (event["side"], event["exchange"], event["symbol"]) == ("BUY", "NSE", "NHPC-EQ")
    assert (event["product"], event["order_type"], event["account_id"]) == ("D", "MARKET", "******")
    assert (event["quantity"], event["filled_quantity"], event["pending_quantity"]) == (1, 0, 1)
    assert event["exchange_order_id"] is None and event["exchange_time"] is None  # "" and null: none yet
    assert event["raw"] == WEBHOOK_PUT_ORDER and event["id"] == answer.get_json()["id"]


def test_the_earlier_sample_without_update_type_is_an_order_update(client, redis_client):
    assert post(client, WEBHOOK_CANCELLED_AMO).status_code == 202
    [event] = _queued(redis_client)
    assert event["status"] == OrderStatus.CANCELLED and event["broker_status"] == "cancelled after market order"
    assert event["price"] == 16.78 and event["average_price"] is None and event["account_id"] == "******"


def test_a_redelivery_and_the_feed_copy_of_one_update_are_one_event(client, services, redis_client):
    assert post(client, WEBHOOK_PUT_ORDER).status_code == 202
    feed_copy = services.adapters["upstox"].event_from_payload(
        json.loads(body(WEBHOOK_PUT_ORDER)), source="websocket", received_at=RECEIVED
    )
    assert services.ingestor.submit(feed_copy, body(WEBHOOK_PUT_ORDER)) is False
    assert post(client, WEBHOOK_PUT_ORDER).status_code == 200
    assert redis_client.xlen(STREAM) == 1


def test_each_step_of_an_order_is_its_own_event(client, redis_client):
    """put order req received -> validation pending -> open: three words, one normalized status twice."""
    steps = [order_update(status=word) for word in ("put order req received", "validation pending", "open")]
    assert [post(client, step).status_code for step in steps] == [202, 202, 202]
    assert [e["status"] for e in _queued(redis_client)] == [OrderStatus.PENDING, OrderStatus.PENDING, OrderStatus.OPEN]


@pytest.mark.parametrize(
    ("word", "order_type", "filled", "expected", "modified"),
    [
        ("put order req received", "LIMIT", 0, OrderStatus.PENDING, False),
        ("validation pending", "LIMIT", 0, OrderStatus.PENDING, False),
        ("open pending", "LIMIT", 0, OrderStatus.PENDING, False),
        ("after market order req received", "LIMIT", 0, OrderStatus.PENDING, False),
        ("amo req received", "LIMIT", 0, OrderStatus.PENDING, False),
        ("modify after market order req received", "LIMIT", 0, OrderStatus.PENDING, True),
        ("open", "LIMIT", 0, OrderStatus.OPEN, False),
        ("open", "LIMIT", 4, OrderStatus.PARTIALLY_FILLED, False),
        ("trigger pending", "SL", 0, OrderStatus.TRIGGER_PENDING, False),
        ("modify pending", "LIMIT", 0, OrderStatus.OPEN, True),
        ("modify validation pending", "LIMIT", 0, OrderStatus.OPEN, True),
        ("modified", "LIMIT", 0, OrderStatus.OPEN, True),
        ("modified", "SL-M", 0, OrderStatus.TRIGGER_PENDING, True),
        ("modified", "LIMIT", 4, OrderStatus.PARTIALLY_FILLED, True),
        ("not modified", "LIMIT", 0, OrderStatus.OPEN, False),
        ("not modified", "SL", 0, OrderStatus.TRIGGER_PENDING, False),
        ("open", "SL", 0, OrderStatus.OPEN, False),  # a triggered stop order is live at the exchange
        ("cancel pending", "LIMIT", 0, OrderStatus.OPEN, True),
        ("not cancelled", "LIMIT", 4, OrderStatus.PARTIALLY_FILLED, False),
        ("complete", "LIMIT", 10, OrderStatus.FILLED, False),
        ("complete", "LIMIT", 6, OrderStatus.PARTIALLY_FILLED, False),
        ("cancelled", "LIMIT", 3, OrderStatus.CANCELLED, False),
        ("cancelled after market order", "LIMIT", 0, OrderStatus.CANCELLED, False),
        ("rejected", "LIMIT", 0, OrderStatus.REJECTED, False),
        ("COMPLETE", "LIMIT", 10, OrderStatus.FILLED, False),  # any case: the words are compared folded
    ],
)
def test_status_words_and_quantities(word, order_type, filled, expected, modified):
    """The appendix's words (docs/brokers.md §10.3); quantities, not words, make PARTIALLY_FILLED."""
    event = normalize(order_update(status=word, order_type=order_type, filled_quantity=filled, pending_quantity=None))
    assert (event.status, event.modified) == (expected, modified)
    assert event.broker_status == word and is_known_status("upstox", word)
    if expected not in OrderStatus.TERMINAL:
        assert event.pending_quantity == 10 - filled


def test_an_unknown_word_is_stored_but_never_moves_the_order(caplog):
    event = normalize(order_update(status="some new word", filled_quantity=0))
    assert event.status == OrderStatus.PENDING and event.broker_status == "some new word"
    assert not is_known_status("upstox", "some new word") and "unknown order status" in caplog.text


def test_order_book_and_history_rows_read_like_the_webhook():
    """The get-order-book and get-order-history samples carry the webhook's keys (no user id: the account's)."""
    filled = normalize(BOOK_COMPLETE, source="reconcile")
    assert (filled.status, filled.filled_quantity, filled.average_price) == (OrderStatus.FILLED, 1, 0.8)
    assert filled.exchange_time == "2023-10-19T03:53:23.000000Z" and filled.account_id is None  # 09:23:23 IST
    rejected = normalize(dict(BOOK_REJECTED, order_id="231019025057850"), source="reconcile")  # the id is cut off
    assert rejected.status == OrderStatus.REJECTED and rejected.reason.startswith("You need to add Rs.")
    assert (rejected.side, rejected.order_type, rejected.trigger_price) == ("SELL", "SL-M", 570)
    first = normalize(HISTORY_FIRST, source="reconcile")
    assert first.status == OrderStatus.PENDING and first.pending_quantity == 1 and first.exchange_order_id is None


def test_a_blank_spelling_never_hides_the_filled_twin():
    """`user_id` and `userId` (and the two symbol keys) fold to one field: the filled one is read."""
    event = normalize(order_update(user_id="", userId="UP7777", trading_symbol=None, tradingsymbol="NHPC-EQ"))
    assert event.account_id == "UP7777" and event.symbol == "NHPC-EQ"


@pytest.mark.parametrize(
    ("payload", "mentions"),
    [
        (dict(WEBHOOK_PUT_ORDER, update_type="gtt_order"), "update_type"),
        (dict(WEBHOOK_PUT_ORDER, order_id=""), "order"),
        (dict(WEBHOOK_PUT_ORDER, quantity="lots"), "quantity"),
        ({"update_type": "order", "status": "open"}, "order"),
    ],
)
def test_what_is_not_an_order_update_is_a_400_naming_why(client, redis_client, payload, mentions):
    answer = post(client, payload)
    assert answer.status_code == 400 and mentions in answer.get_json()["error"], answer.get_json()
    assert redis_client.xlen(STREAM) == 0


def test_an_accounts_own_url_takes_its_updates_and_refuses_anothers(db_services, db_client, redis_client):
    """Per-account path tokens (docs/accounts.md "Postbacks"): 403 when the body names another user."""
    account = db_services.accounts.create(
        "upstox", "UP1234", label="main", credentials={"api_key": "upkey", "api_secret": "upsecret"}
    )
    token = db_services.accounts.new_postback_token(account.id)
    own = f"/postbacks/upstox/{token}"
    assert post(db_client, order_update(user_id="up1234"), own).status_code == 202
    refused = post(db_client, order_update("250512000999999", user_id="UP9999"), own)
    assert refused.status_code == 403 and "another account" in refused.get_json()["error"]
    assert [e["account_id"] for e in _queued(redis_client)] == ["UP1234"]
    assert post(db_client, order_update(), f"/postbacks/upstox/{one_char_changed(token)}").status_code == 404
