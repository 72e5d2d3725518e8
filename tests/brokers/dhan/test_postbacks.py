"""Dhan: token gate, the invalid documented sample, three key spellings, status map, dedup across sources."""

from __future__ import annotations

import json
import re

import pytest

from app.brokers.dhan.adapter import DhanAdapter
from app.config import load_config
from app.events import OrderStatus
from app.redis_keys import STREAM
from tests.support.env import POSTBACK_TOKEN
from tests.support.helpers import body, content, fixture_bytes, load_fixture
from tests.support.postback_cases import TokenSecurityCases

#: Dhan's own documented sample (seed 002), byte for byte: `"legName": ,` makes it invalid JSON.
DOC_SAMPLE = fixture_bytes("dhan_postback_doc_sample.txt")
#: A TRADED postback shaped like the 2024 capture of docs/brokers.md §4.1 (snake_case filled_qty, sentinels),
#: describing the same update as web-feed frame 2.
TRADED = load_fixture("dhan_postback_traded.json")
#: The four web order feed frames of seed 003 (pan_no and client_id sanitized).
WEB_FRAMES = load_fixture("dhan_web_feed_frames.json")
#: An official order-update WS frame with the camelCase keys the wire sends (§4.2), numbers as strings.
ALERT = load_fixture("dhan_ws_order_alert_traded.json")

URL = f"/postbacks/dhan/{POSTBACK_TOKEN}"
RECEIVED = "2026-01-01T00:00:00.000000Z"


@pytest.fixture
def adapter(env) -> DhanAdapter:
    return DhanAdapter(load_config(env))


def postback(adapter: DhanAdapter, payload: dict):
    return adapter.event_from_payload(payload, source="postback", received_at=RECEIVED)


def websocket(adapter: DhanAdapter, data: dict):
    return adapter.event_from_payload(data, source="websocket", received_at=RECEIVED)


class TestDhanSecurity(TokenSecurityCases):
    broker = "dhan"
    sample_body = DOC_SAMPLE


# The documented sample (seed 002) and a TRADED postback


def test_documented_sample_is_invalid_json_but_accepted_over_http(client, redis_client):
    with pytest.raises(json.JSONDecodeError):
        json.loads(DOC_SAMPLE)
    response = client.post(URL, data=DOC_SAMPLE, content_type="application/json")
    assert response.status_code == 202, response.get_data(as_text=True)
    [(_, entry)] = redis_client.xrange(STREAM)
    assert entry[b"b"] == DOC_SAMPLE  # the raw body is kept exactly as sent
    queued = json.loads(entry[b"e"])
    assert (queued["broker"], queued["order_id"], queued["status"]) == ("dhan", "112111182198", "OPEN")
    assert client.post(URL, data=DOC_SAMPLE, content_type="application/json").status_code == 200


def test_documented_sample_normalizes_every_field(adapter):
    event = adapter.receive(DOC_SAMPLE, {}, token=POSTBACK_TOKEN, received_at=RECEIVED)
    data = event.to_dict()
    assert data["broker"] == "dhan" and data["source"] == "postback" and data["received_at"] == RECEIVED
    assert data["order_id"] == "112111182198" and data["exchange_order_id"] is None
    assert data["account_id"] == "1000000003"
    assert data["status"] == OrderStatus.OPEN and data["broker_status"] == "PENDING"
    assert data["side"] == "BUY" and data["exchange"] == "NSE" and data["symbol"] is None  # tradingSymbol ""
    assert data["product"] == "INTRADAY" and data["order_type"] == "MARKET"
    # No filled figure in the sample: a PENDING order has filled nothing (§4.4, inferred).
    assert (data["quantity"], data["filled_quantity"], data["pending_quantity"]) == (5, 0, 5)
    assert data["price"] == 0 and data["trigger_price"] == 0 and data["average_price"] is None
    assert data["reason"] is None and data["tag"] == "123abc678"
    assert data["exchange_time"] == "2021-11-24T08:03:03.000000Z"  # updateTime 13:33:03 IST
    assert data["modified"] is False and data["id"].startswith("evt_")
    assert data["raw"]["legName"] is None  # the repaired value; everything else as sent
    assert data["raw"]["dhanClientId"] == "1000000003" and data["raw"]["afterMarketOrder"] is False


def test_traded_postback_normalizes_every_field(adapter):
    event = adapter.receive(body(TRADED), {}, token=POSTBACK_TOKEN, received_at=RECEIVED)
    data = event.to_dict()
    assert data["broker"] == "dhan" and data["source"] == "postback"
    assert data["order_id"] == "34125112418233" and data["exchange_order_id"] is None
    assert data["account_id"] == "1100000001"
    assert data["status"] == OrderStatus.FILLED and data["broker_status"] == "TRADED"
    assert data["side"] == "BUY" and data["exchange"] == "NSE" and data["symbol"] == "IDEA"
    assert data["product"] == "INTRADAY" and data["order_type"] == "MARKET"
    assert (data["quantity"], data["filled_quantity"], data["pending_quantity"]) == (1, 1, 0)
    assert data["price"] == 0 and data["trigger_price"] == 0 and data["average_price"] == 10.09
    assert data["reason"] is None and data["tag"] == "ohk-idea-001"  # omsErrorDescription ""
    assert data["exchange_time"] == "2025-11-24T06:12:24.000000Z"  # updateTime; exchangeTime is all zeros
    assert data["raw"] == TRADED


# WebSocket order_alert Data: the web feed (seed 003) and the official feed (§4.2)

WEB_EXPECTED = [
    # order_id, exchange_order_id, side, status, broker_status, filled, pending, average, reason, time (UTC)
    ("34125112418233", "1100000032471839", "BUY", "OPEN", "PENDING", 0, 1, None, "CONFIRMED", "06:12:24"),
    ("34125112418233", "1100000032471839", "BUY", "FILLED", "TRADED", 1, 0, 10.09, "TRADE CONFIRMED", "06:12:24"),
    ("4125112418813", "1100000032484707", "SELL", "OPEN", "PENDING", 0, 1, None, "CONFIRMED", "06:12:30"),
    ("4125112418813", "1100000032484707", "SELL", "FILLED", "TRADED", 1, 0, 10.08, "TRADE CONFIRMED", "06:12:30"),
]


@pytest.mark.parametrize(("frame", "expected"), list(zip(WEB_FRAMES, WEB_EXPECTED, strict=True)))
def test_web_feed_frames_normalize_every_field(adapter, frame, expected):
    order_id, exchange_order_id, side, status, broker_status, filled, pending, average, reason, at = expected
    event = websocket(adapter, frame["Data"])
    data = event.to_dict()
    assert data["broker"] == "dhan" and data["source"] == "websocket"
    assert (data["order_id"], data["exchange_order_id"]) == (order_id, exchange_order_id)
    assert data["account_id"] == "1100000001"
    assert (data["status"], data["broker_status"]) == (status, broker_status)
    assert data["side"] == side and data["exchange"] == "NSE" and data["symbol"] == "IDEA"
    assert data["product"] == "INTRADAY" and data["order_type"] == "MARKET"
    assert (data["quantity"], data["filled_quantity"], data["pending_quantity"]) == (1, filled, pending)
    assert data["price"] == 0 and data["trigger_price"] == 0 and data["average_price"] == average
    assert data["reason"] == reason and data["tag"] is None
    assert data["exchange_time"] == f"2025-11-24T{at}.000000Z"  # last_updated_time, IST -> UTC
    assert data["raw"] == frame["Data"]


def test_official_ws_alert_normalizes_every_field(adapter):
    event = websocket(adapter, ALERT["Data"])
    data = event.to_dict()
    assert data["broker"] == "dhan" and data["source"] == "websocket"
    assert data["order_id"] == "52250312123456" and data["exchange_order_id"] == "2000000012345678"
    assert data["account_id"] == "1100000001"
    assert data["status"] == OrderStatus.FILLED and data["broker_status"] == "TRADED"
    assert data["side"] == "SELL" and data["exchange"] == "NFO" and data["symbol"] == "NIFTY-Mar2025-22500-PE"
    assert data["product"] == "MARGIN" and data["order_type"] == "SL"
    assert (data["quantity"], data["filled_quantity"], data["pending_quantity"]) == (75, 75, 0)
    assert (data["price"], data["trigger_price"], data["average_price"]) == (101.5, 102.0, 101.45)
    assert data["reason"] == "TRADE CONFIRMED" and data["tag"] == "strat-7"
    assert data["exchange_time"] == "2025-03-12T04:51:07.000000Z"  # lastUpdatedTime 10:21:07 IST
    assert data["raw"] == ALERT["Data"]


def test_a_whole_order_alert_frame_reads_as_its_data(adapter):
    assert content(websocket(adapter, ALERT)) == content(websocket(adapter, ALERT["Data"]))


def snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def pascal(key: str) -> str:
    return key[0].upper() + key[1:]


def test_camel_snake_and_pascal_case_give_the_same_event(adapter):
    camel = ALERT["Data"]
    expected = content(websocket(adapter, camel))
    assert content(websocket(adapter, {snake(k): v for k, v in camel.items()})) == expected
    assert content(websocket(adapter, {pascal(k): v for k, v in camel.items()})) == expected  # the docs' spelling


@pytest.mark.parametrize("key", ["filled_qty", "filledQty", "FilledQty", "tradedQty", "traded_qty"])
def test_every_spelling_of_the_filled_quantity(adapter, key):
    payload = {k: v for k, v in TRADED.items() if k != "filled_qty"}
    event = postback(adapter, dict(payload, quantity=10, **{key: 4}))
    assert (event.status, event.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, 4)


# Dedup across sources


def test_postback_and_websocket_of_one_fill_are_one_event(adapter):
    assert postback(adapter, TRADED).id == websocket(adapter, WEB_FRAMES[1]["Data"]).id


def test_postback_without_fill_fields_and_websocket_of_one_pending_update_are_one_event(adapter):
    # Shaped like the documented sample: no filledQty, averageTradedPrice or remainingQuantity at all.
    pending = {k: v for k, v in TRADED.items() if k not in ("filled_qty", "averageTradedPrice", "remainingQuantity")}
    pending["orderStatus"] = "PENDING"
    assert postback(adapter, pending).id == websocket(adapter, WEB_FRAMES[0]["Data"]).id


def test_different_updates_of_one_order_are_different_events(adapter):
    ids = {websocket(adapter, frame["Data"]).id for frame in WEB_FRAMES}
    assert len(ids) == 4


def test_websocket_copy_of_a_posted_update_is_a_duplicate(client, services, redis_client):
    assert client.post(URL, data=body(TRADED), content_type="application/json").status_code == 202
    adapter = services.adapters["dhan"]
    ws_data = WEB_FRAMES[1]["Data"]
    event = adapter.event_from_payload(ws_data, source="websocket", received_at=RECEIVED)
    assert services.ingestor.submit(event, json.dumps(ws_data).encode()) is False
    assert redis_client.xlen(STREAM) == 1


# Status map (docs/brokers.md §4.4)


@pytest.mark.parametrize(
    ("raw", "order_type", "quantity", "filled", "expected"),
    [
        ("TRANSIT", "LIMIT", 10, None, OrderStatus.PENDING),
        ("Transit", "MARKET", 10, 0, OrderStatus.PENDING),
        ("PENDING", "LIMIT", 10, 0, OrderStatus.OPEN),
        ("Pending", "LMT", 10, None, OrderStatus.OPEN),
        ("PENDING", "LIMIT", 10, 4, OrderStatus.PARTIALLY_FILLED),
        ("PENDING", "STOP_LOSS", 10, 0, OrderStatus.TRIGGER_PENDING),
        ("PENDING", "STOP_LOSS_MARKET", 10, None, OrderStatus.TRIGGER_PENDING),
        ("Pending", "SLM", 10, 0, OrderStatus.TRIGGER_PENDING),
        ("PENDING", "STOP_LOSS", 10, 3, OrderStatus.PARTIALLY_FILLED),
        ("PART_TRADED", "LIMIT", 10, 4, OrderStatus.PARTIALLY_FILLED),
        ("Part_Traded", "LIMIT", 10, 6, OrderStatus.PARTIALLY_FILLED),
        ("TRADED", "LIMIT", 10, 10, OrderStatus.FILLED),
        ("Traded", "MKT", 10, 10, OrderStatus.FILLED),
        ("TRADED", "LIMIT", 10, 4, OrderStatus.PARTIALLY_FILLED),
        ("TRADED", "LIMIT", 10, None, OrderStatus.FILLED),
        ("CANCELLED", "LIMIT", 10, 4, OrderStatus.CANCELLED),
        ("Cancelled", "LIMIT", 10, 0, OrderStatus.CANCELLED),
        ("REJECTED", "LIMIT", 10, None, OrderStatus.REJECTED),
        ("EXPIRED", "LIMIT", 10, 0, OrderStatus.EXPIRED),
    ],
)
def test_status_map(adapter, raw, order_type, quantity, filled, expected):
    payload = {k: v for k, v in TRADED.items() if k != "filled_qty"}
    payload.update(orderStatus=raw, orderType=order_type, quantity=quantity)
    if filled is not None:
        payload["filledQty"] = filled
    event = postback(adapter, payload)
    assert event.status == expected
    assert event.broker_status == raw.upper()


def test_traded_without_any_filled_figure_is_the_whole_quantity(adapter):
    payload = {k: v for k, v in TRADED.items() if k not in ("filled_qty", "remainingQuantity")}
    event = postback(adapter, dict(payload, quantity=25))
    assert (event.status, event.filled_quantity, event.pending_quantity) == (OrderStatus.FILLED, 25, 0)


def test_cancelled_without_a_filled_figure_leaves_it_unknown(adapter):
    payload = {k: v for k, v in TRADED.items() if k not in ("filled_qty", "remainingQuantity")}
    event = postback(adapter, dict(payload, orderStatus="CANCELLED", quantity=25))
    assert (event.status, event.filled_quantity, event.pending_quantity) == (OrderStatus.CANCELLED, None, 0)


def test_unknown_status_is_stored_without_moving_the_state(adapter, client, redis_client, caplog):
    event = postback(adapter, dict(TRADED, orderStatus="TELEPORTED", filled_qty=0))
    assert (event.status, event.broker_status) == (OrderStatus.PENDING, "TELEPORTED")
    assert "unknown order status 'TELEPORTED'" in caplog.text
    response = client.post(URL, data=body(dict(TRADED, orderStatus="TELEPORTED")), content_type="application/json")
    assert response.status_code == 202 and redis_client.xlen(STREAM) == 1


# Field maps


@pytest.mark.parametrize(
    ("segment", "exchange"),
    [
        ("NSE_EQ", "NSE"),
        ("NSE_FNO", "NFO"),
        ("BSE_EQ", "BSE"),
        ("BSE_FNO", "BFO"),
        ("MCX_COMM", "MCX"),
        ("NSE_CURRENCY", "CDS"),
        ("BSE_CURRENCY", "BCD"),
    ],
)
def test_postback_exchange_segment(adapter, segment, exchange):
    assert postback(adapter, dict(TRADED, exchangeSegment=segment)).exchange == exchange


@pytest.mark.parametrize(
    ("ws_exchange", "segment", "exchange"),
    [
        ("NSE", "E", "NSE"),
        ("NSE", "D", "NFO"),
        ("BSE", "E", "BSE"),
        ("BSE", "D", "BFO"),
        ("NSE", "C", "CDS"),
        ("MCX", "M", "MCX"),
    ],
)
def test_websocket_exchange_and_segment(adapter, ws_exchange, segment, exchange):
    data = dict(WEB_FRAMES[0]["Data"], exchange=ws_exchange, segment=segment)
    assert websocket(adapter, data).exchange == exchange


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("LIMIT", "LIMIT"),
        ("MARKET", "MARKET"),
        ("STOP_LOSS", "SL"),
        ("STOP_LOSS_MARKET", "SL-M"),
        ("LMT", "LIMIT"),
        ("MKT", "MARKET"),
        ("SL", "SL"),
        ("SLM", "SL-M"),
    ],
)
def test_order_types(adapter, raw, expected):
    assert postback(adapter, dict(TRADED, orderType=raw)).order_type == expected


@pytest.mark.parametrize(
    ("letter", "product"),
    [("C", "CNC"), ("I", "INTRADAY"), ("M", "MARGIN"), ("F", "MTF"), ("V", "CO"), ("B", "BO")],
)
def test_websocket_product_letters_match_the_postback_words(adapter, letter, product):
    assert websocket(adapter, dict(ALERT["Data"], product=letter)).product == product


@pytest.mark.parametrize(("raw", "side"), [("BUY", "BUY"), ("SELL", "SELL"), ("B", "BUY"), ("S", "SELL")])
def test_sides(adapter, raw, side):
    assert postback(adapter, dict(TRADED, transactionType=raw)).side == side


# Times, sentinels, strings and blanks


def test_update_time_is_the_exchange_time_and_zero_dates_fall_back(adapter):
    times = {"createTime": "2025-11-24 11:40:00", "exchangeTime": "2025-11-24 11:41:00"}
    assert postback(adapter, dict(TRADED, **times)).exchange_time == "2025-11-24T06:12:24.000000Z"
    sentinel = dict(TRADED, updateTime="0000-00-00 00:00:00", **times)
    assert postback(adapter, sentinel).exchange_time == "2025-11-24T06:11:00.000000Z"
    absent = {k: v for k, v in TRADED.items() if k != "updateTime"}
    assert postback(adapter, dict(absent, exchangeTime="0000-00-00 00:00:00")).exchange_time is None


def test_websocket_falls_back_to_the_exchange_order_time(adapter):
    data = {k: v for k, v in ALERT["Data"].items() if k != "lastUpdatedTime"}
    assert websocket(adapter, data).exchange_time == "2025-03-12T04:45:00.000000Z"  # exchOrderTime 10:15 IST


def test_numbers_as_strings_read_as_numbers(adapter):
    as_strings = dict(TRADED, quantity="1", filled_qty="1", price="0.0", averageTradedPrice="10.09")
    event = postback(adapter, as_strings)
    assert (event.quantity, event.filled_quantity, event.price, event.average_price) == (1, 1, 0, 10.09)
    assert event.id == postback(adapter, TRADED).id


def test_numeric_ids_read_as_text(adapter):
    data = dict(WEB_FRAMES[1]["Data"], order_no=34125112418233, client_id=1100000001)
    event = websocket(adapter, data)
    assert (event.order_id, event.account_id) == ("34125112418233", "1100000001")
    assert event.id == websocket(adapter, WEB_FRAMES[1]["Data"]).id


def test_empty_strings_are_null(adapter):
    blanks = dict(TRADED, tradingSymbol="", correlationId=" ", omsErrorDescription="", averageTradedPrice="")
    event = postback(adapter, blanks)
    assert (event.symbol, event.tag, event.reason, event.average_price) == (None, None, None, None)


def test_market_order_price_zero_is_kept(adapter):
    event = websocket(adapter, WEB_FRAMES[1]["Data"])
    assert (event.order_type, event.price, event.trigger_price) == ("MARKET", 0, 0)


def test_rejection_reason(adapter):
    rejected = dict(TRADED, orderStatus="REJECTED", omsErrorCode="16283", omsErrorDescription="RMS:Margin Exceeds")
    rejected.pop("filled_qty")
    event = postback(adapter, rejected)
    assert (event.status, event.reason, event.filled_quantity) == (OrderStatus.REJECTED, "RMS:Margin Exceeds", 0)


# Wrong shapes


@pytest.mark.parametrize(
    ("sent", "mentions"),
    [
        (b'{"hello": "world"}', "orderId"),
        (b'{"orderId": "1"}', "orderStatus"),
        (b'{"orderId": " ", "orderStatus": "TRADED"}', "orderId"),
        (b'[{"orderId": "1", "orderStatus": "TRADED"}]', "JSON object"),
        (b'{"orderId": ', "not valid JSON"),
        (b'{"orderId": {"nested": 1}, "orderStatus": "TRADED"}', "orderId"),
        (b'{"orderId": "1", "orderStatus": "TRADED", "quantity": "lots"}', "quantity"),
    ],
)
def test_wrong_shape_is_a_400_with_a_json_error(client, redis_client, sent, mentions):
    response = client.post(URL, data=sent, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert mentions in response.get_json()["error"]
    assert redis_client.xlen(STREAM) == 0


def test_a_repeated_key_is_tolerated_from_an_unsigned_broker(client, redis_client):
    """Dhan's own docs repeat keys (docs/brokers.md §4.2: `Remarks` twice); only signed Kite refuses repeats."""
    repeated = DOC_SAMPLE.rstrip().rstrip(b"}") + b', "omsErrorDescription": null, "omsErrorDescription": null}'
    response = client.post(URL, data=repeated, content_type="application/json")
    assert response.status_code == 202, response.get_json()


# Real traffic: what Dhan said keys the event, wherever it came from


def test_an_order_book_row_of_the_same_update_has_the_same_key(adapter):
    """GET /v2/orders rows carry the postback's camelCase fields plus filledQty (docs/brokers.md §4.5)."""
    row = {k: v for k, v in TRADED.items() if k != "filled_qty"}
    row.update(filledQty=1, algoId="0", omsErrorCode="0")
    assert adapter.event_from_payload(row, source="reconcile", received_at=RECEIVED).id == postback(adapter, TRADED).id


def test_part_traded_spellings_are_one_word_and_distinct_from_traded(adapter):
    part = dict(TRADED, quantity=10, filled_qty=4, remainingQuantity=6, orderStatus="PART_TRADED")
    spaced = dict(part, orderStatus="Part Traded")
    assert postback(adapter, part).id == postback(adapter, spaced).id
    assert postback(adapter, part).status == OrderStatus.PARTIALLY_FILLED
    assert postback(adapter, part).id != postback(adapter, dict(part, orderStatus="TRADED")).id


def test_a_modification_of_a_pending_order_is_a_new_event(adapter):
    """Dhan posts on every modify with the same word (PENDING): the new price makes it another update."""
    pending = dict(TRADED, orderType="LIMIT", price=10.0, orderStatus="PENDING", filled_qty=0)
    modified = dict(pending, price=10.05, updateTime="2025-11-24 11:43:01")
    assert postback(adapter, pending).id != postback(adapter, modified).id


def test_known_words(adapter):
    from app.brokers.registry import is_known_status

    for word in ("TRANSIT", "PENDING", "PART_TRADED", "TRADED", "CANCELLED", "REJECTED", "EXPIRED", "Traded"):
        assert adapter.is_known_status(word) and is_known_status("dhan", word), word
    assert not adapter.is_known_status("TELEPORTED") and not is_known_status("dhan", "TELEPORTED")
