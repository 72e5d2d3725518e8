"""Fyers webhooks: POST /postbacks/fyers/<token> takes the documented postback, an order-book row or the SDK's
socket message (docs/brokers.md §11.1); the shared security suite, the numeric codes, quantities, per-account URLs."""

from __future__ import annotations

import json

import pytest

from app.brokers.registry import is_known_status
from app.events import OrderStatus
from app.redis_keys import STREAM
from tests.brokers.fyers.samples import (
    ORDER_BOOK,
    POSTBACK_TRADED,
    SOCKET_PARSED_TRADED,
    SOCKET_PARSED_TRANSIT,
    SOCKET_RAW_NEW_ACK,
    order,
)
from tests.support.env import POSTBACK_TOKEN
from tests.support.postback_cases import TokenSecurityCases

URL = f"/postbacks/fyers/{POSTBACK_TOKEN}"
RECEIVED = "2026-01-01T00:00:00.000000Z"


class TestFyersSecurity(TokenSecurityCases):
    """Unsigned as far as any page says (the dashboard's webhook secret has no documented use): the path token gates."""

    broker = "fyers"


def _post(client, payload) -> object:
    return client.post(URL, data=json.dumps(payload), content_type="application/json")


def _queued(redis_client) -> list[dict]:
    return [json.loads(fields[b"e"]) for _, fields in redis_client.xrange(STREAM)]


def _event(services, payload, source="websocket"):
    return services.adapters["fyers"].event_from_payload(payload, source=source, received_at=RECEIVED)


def test_the_documented_postback_normalizes_every_field(client, redis_client):
    answer = _post(client, POSTBACK_TRADED)
    assert answer.status_code == 202, answer.get_json()
    [event] = _queued(redis_client)
    assert (event["broker"], event["source"], event["order_id"]) == ("fyers", "postback", "23071800238607")
    assert (event["status"], event["broker_status"]) == (OrderStatus.FILLED, "2")
    assert event["account_id"] == "xxxx" and event["exchange_order_id"] == "2500000061319029"
    assert (event["side"], event["exchange"], event["symbol"]) == ("SELL", "NSE", "NSE:ABCAPITAL23JUL190CE")
    assert (event["product"], event["order_type"]) == ("MARGIN", "MARKET")
    assert (event["quantity"], event["filled_quantity"], event["pending_quantity"]) == (5400, 5400, 0)
    assert (event["price"], event["trigger_price"], event["average_price"]) == (2.15, 0, 2.15)
    assert event["reason"] == "Completed"
    assert event["exchange_time"] == "2023-07-18T06:14:29.000000Z"  # 11:44:29 IST
    assert event["raw"] == POSTBACK_TRADED
    assert _post(client, POSTBACK_TRADED).status_code == 200  # a redelivery is a duplicate


def test_an_order_book_row_and_the_sdks_socket_messages_are_taken(client, redis_client):
    for payload in (ORDER_BOOK["orderBook"][0], SOCKET_PARSED_TRADED, SOCKET_PARSED_TRANSIT):
        assert _post(client, payload).status_code == 202
    book, parsed, transit = _queued(redis_client)
    assert (book["order_id"], book["status"], book["side"], book["tag"]) == (
        "23030900015105",
        OrderStatus.FILLED,
        "SELL",
        "1:Ordertag",
    )
    # The parsed socket message says status 90; orderNumStatus keeps the documented code 2.
    assert (parsed["order_id"], parsed["broker_status"], parsed["status"]) == ("23080400089344", "2", "FILLED")
    assert (transit["broker_status"], transit["status"], transit["filled_quantity"]) == ("4", OrderStatus.PENDING, 0)
    assert transit["account_id"] == "XP03754"


def test_the_raw_socket_frame_reads_its_short_keys(services):
    event = _event(services, SOCKET_RAW_NEW_ACK)
    assert (event.order_id, event.account_id, event.broker_status, event.status) == (
        "23121800292158",
        "XP0001",
        "4",
        OrderStatus.PENDING,
    )
    assert (event.side, event.order_type, event.product, event.exchange) == ("BUY", "MARKET", "CNC", "NSE")
    assert (event.quantity, event.filled_quantity, event.pending_quantity) == (1, 0, 1)
    assert event.exchange_time == "2023-12-18T08:21:30.000000Z" and event.reason == "New Ack"
    assert event.tag == "2:Untagged" and event.modified is False


def test_the_short_and_the_long_copy_of_one_update_are_one_event(services):
    """The socket's frame and the postback (or the SDK's parsed message) of one update have one id."""
    long_form = order(status=6, filledQty=4, remainingQuantity=6, tradedPrice=801.4)
    short_form = {
        "orders": {
            "id": long_form["id"],
            "client_id": "XP0001",
            "org_ord_status": 6,
            "ord_status": 20,
            "qty": 10,
            "qty_filled": 4,
            "qty_remaining": 6,
            "price_limit": 801.5,
            "price_stop": 0,
            "price_traded": 801.4,
            "ord_type": 1,
            "tran_side": 1,
            "time_oms": "04-Dec-2025 10:15:02",
            "report_type": "Trade Conf",
        },
        "s": "ok",
    }
    posted, pushed = _event(services, long_form, "postback"), _event(services, short_form)
    assert posted.id == pushed.id
    assert posted.status == pushed.status == OrderStatus.PARTIALLY_FILLED


@pytest.mark.parametrize(
    ("status", "filled", "expected"),
    [
        (4, 0, OrderStatus.PENDING),
        (6, 0, OrderStatus.OPEN),
        (6, 3, OrderStatus.PARTIALLY_FILLED),
        (2, 10, OrderStatus.FILLED),
        (2, 7, OrderStatus.PARTIALLY_FILLED),  # "traded" is checked against the quantities (docs/brokers.md §2)
        (1, 0, OrderStatus.CANCELLED),
        (1, 4, OrderStatus.CANCELLED),
        (5, 0, OrderStatus.REJECTED),
        (7, 0, OrderStatus.EXPIRED),
    ],
)
def test_status_codes_and_quantities(services, status, filled, expected):
    event = _event(services, order(status=status, filledQty=filled, remainingQuantity=10 - filled))
    assert event.status == expected and event.filled_quantity == filled


def test_sides_and_exchanges_by_code_and_by_word(services):
    assert _event(services, order(side=-1, exchange=12)).side == "SELL"
    assert _event(services, order(side="sell", exchange=12)).side == "SELL"
    assert _event(services, order(exchange=12)).exchange == "BSE"
    assert _event(services, order(exchange=11, symbol="MCX:GOLDPETAL26FEBFUT")).exchange == "MCX"
    assert _event(services, order(exchange=None, symbol="BSE:SBIN-A")).exchange == "BSE"


def test_a_pending_stop_order_waits_for_its_trigger(services):
    event = _event(services, order(status=6, type=4, stopPrice=790.0))
    assert (event.status, event.order_type, event.trigger_price) == (OrderStatus.TRIGGER_PENDING, "SL", 790.0)


def test_unknown_codes_are_stored_and_counted_never_guessed(services):
    assert not is_known_status("fyers", "3") and is_known_status("fyers", 2) and is_known_status("fyers", "6")
    event = _event(services, order(status=3, orderNumStatus=None))
    assert (event.broker_status, event.status) == ("3", OrderStatus.PENDING)


def test_a_modification_from_the_socket_is_flagged_and_a_new_event(services):
    placed = {"orders": dict(SOCKET_RAW_NEW_ACK["orders"], org_ord_status=6, report_type="New")}
    modified = {"orders": dict(placed["orders"], price_limit=12.5, report_type="Modified")}
    first, second = _event(services, placed), _event(services, modified)
    assert first.modified is False and second.modified is True
    assert second.status == OrderStatus.OPEN and second.price == 12.5 and first.id != second.id


@pytest.mark.parametrize(
    ("payload", "mentions"),
    [
        ({"s": "ok", "code": 1605, "message": "Successfully subscribed"}, "id"),
        ({"id": "25120400011111"}, "status"),
        (order(qty="lots"), "qty"),
        (order(filledQty=-1), "filledQty"),
        ({"orders": "not an object"}, "id"),
        (order(id=""), "id"),
    ],
)
def test_invalid_bodies_are_400_naming_the_field(client, redis_client, payload, mentions):
    answer = _post(client, payload)
    assert answer.status_code == 400 and mentions in answer.get_json()["error"], answer.get_json()
    assert redis_client.xlen(STREAM) == 0


def test_an_accounts_own_url_takes_its_updates_and_refuses_another_accounts(services, client, redis_client):
    account = services.accounts.create("fyers", "XP0001", credentials={"app_id": "APP1-100", "app_secret": "s" * 12})
    token = services.accounts.new_postback_token(account.id)
    url = f"/postbacks/fyers/{token}"
    ok = client.post(url, data=json.dumps(order(clientId="xp0001")), content_type="application/json")
    assert ok.status_code == 202, ok.get_json()
    other = client.post(url, data=json.dumps(order(clientId="XP0002", id="2")), content_type="application/json")
    assert other.status_code == 403 and "another account" in other.get_json()["error"]
    unnamed = client.post(url, data=json.dumps(order(clientId="", id="3")), content_type="application/json")
    assert unnamed.status_code == 202
    assert [e["account_id"] for e in _queued(redis_client)] == ["XP0001", "XP0001"]
