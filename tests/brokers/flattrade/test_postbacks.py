"""Flattrade (Noren) postbacks: token gate, Noren and Tiqs camelCase keys, COMPLETE as a partial fill, status map."""

from __future__ import annotations

import pytest

from app.brokers.flattrade.adapter import FlattradeAdapter
from app.config import load_config
from app.events import OrderStatus
from app.redis_keys import STREAM
from tests.support.env import POSTBACK_TOKEN
from tests.support.helpers import body, content, load_fixture
from tests.support.postback_cases import TokenSecurityCases

SAMPLES = ("pending", "canceled", "open", "rejected", "complete", "trigger_pending")
#: The six Tiqs camelCase samples of seed 001, verbatim.
TIQS = {name: load_fixture(f"flattrade_tiqs_{name}.json") for name in SAMPLES}
#: The same six updates with Noren `om` keys (docs/brokers.md §5.1; the gopocket postback is `om` without `t`).
NOREN = {name: load_fixture(f"flattrade_noren_{name}.json") for name in SAMPLES}

URL = f"/postbacks/flattrade/{POSTBACK_TOKEN}"
RECEIVED = "2026-01-01T00:00:00.000000Z"


@pytest.fixture
def adapter(env) -> FlattradeAdapter:
    return FlattradeAdapter(load_config(env))


def postback(adapter: FlattradeAdapter, payload: dict):
    return adapter.event_from_payload(payload, source="postback", received_at=RECEIVED)


class TestFlattradeSecurity(TokenSecurityCases):
    broker = "flattrade"
    sample_body = body(TIQS["complete"])


# The six seed samples: every normalized field

COMMON = {
    "broker": "flattrade",
    "account_id": "AJ0101",
    "exchange": "NFO",
    "product": "MIS",  # "I"
    "tag": None,  # remarks ""
    "modified": False,
}
EXPECTED = {
    "pending": dict(
        order_id="24031200000023",
        exchange_order_id=None,
        status=OrderStatus.PENDING,
        broker_status="PENDING",
        side="BUY",
        symbol="BANKNIFTY13MAR24C47300",
        order_type="LIMIT",
        quantity=15,
        filled_quantity=0,
        pending_quantity=15,
        price=334.95,
        trigger_price=None,
        average_price=None,
        reason=None,  # " "
        exchange_time="2024-03-12T08:16:23.000000Z",  # exchangeTime "": the epoch timestamp 1710231383
    ),
    "canceled": dict(
        order_id="24031200000036",
        exchange_order_id="1000000000245043",
        status=OrderStatus.CANCELLED,
        broker_status="CANCELED",
        side="BUY",
        symbol="NIFTY28MAR24F",
        order_type="LIMIT",
        quantity=50,
        filled_quantity=0,
        pending_quantity=0,
        price=22300.0,
        trigger_price=None,
        average_price=None,
        reason=None,
        exchange_time="2024-03-12T08:25:55.000000Z",  # 13:55:55 IST
    ),
    "open": dict(
        order_id="24031200000035",
        exchange_order_id="1000000000244618",
        status=OrderStatus.OPEN,
        broker_status="OPEN",
        side="BUY",
        symbol="NIFTY28MAR24F",
        order_type="LIMIT",
        quantity=1500,
        filled_quantity=0,
        pending_quantity=1500,
        price=22484.2,
        trigger_price=None,
        average_price=None,
        reason=None,
        exchange_time="2024-03-12T08:23:04.000000Z",
    ),
    "rejected": dict(
        order_id="24031200000024",
        exchange_order_id="1100000000026651",
        status=OrderStatus.REJECTED,
        broker_status="REJECTED",
        side="BUY",
        symbol="BANKNIFTY27MAR24C47500",
        order_type="LIMIT",
        quantity=15,
        filled_quantity=0,
        pending_quantity=0,
        price=730.95,
        trigger_price=None,
        average_price=None,
        reason="16273 Record does not exist",
        exchange_time="2024-03-12T08:19:24.000000Z",  # exchangeTime is the 01-01-1980 sentinel: timestamp
    ),
    "complete": dict(
        order_id="24031200000025",
        exchange_order_id="1000000000244480",
        status=OrderStatus.FILLED,
        broker_status="COMPLETE",
        side="BUY",
        symbol="NIFTY28MAR24F",
        order_type="LIMIT",
        quantity=50,
        filled_quantity=50,
        pending_quantity=0,
        price=22484.2,
        trigger_price=None,
        average_price=22476.3,
        reason=None,
        exchange_time="2024-03-12T08:21:24.000000Z",
    ),
    "trigger_pending": dict(
        order_id="24031200000038",
        exchange_order_id="1000000000245566",
        status=OrderStatus.TRIGGER_PENDING,
        broker_status="TRIGGER_PENDING",
        side="SELL",
        symbol="NIFTY28MAR24F",
        order_type="SL",  # SL-LMT
        quantity=1000,
        filled_quantity=0,
        pending_quantity=1000,
        price=22450.0,
        trigger_price=22450.0,
        average_price=None,
        reason=None,
        exchange_time="2024-03-12T08:27:18.000000Z",
    ),
}


@pytest.mark.parametrize("name", SAMPLES)
def test_tiqs_sample_normalizes_every_field(adapter, name):
    payload = TIQS[name]
    event = adapter.receive(body(payload), {}, token=POSTBACK_TOKEN, received_at=RECEIVED)
    data = event.to_dict()
    assert data.pop("id").startswith("evt_")
    assert data.pop("source") == "postback" and data.pop("received_at") == RECEIVED
    assert data.pop("raw") == payload
    assert data.pop("report_type") == payload["reportType"]  # keyed on: New, Fill, Canceled... (§7)
    assert data == dict(COMMON, **EXPECTED[name])


@pytest.mark.parametrize("name", SAMPLES)
def test_noren_keys_give_the_same_event_as_tiqs_keys(adapter, name):
    noren, tiqs = postback(adapter, NOREN[name]), postback(adapter, TIQS[name])
    assert content(noren) == content(tiqs)
    assert noren.raw == NOREN[name]


@pytest.mark.parametrize("name", SAMPLES)
def test_samples_are_accepted_over_http(client, redis_client, name):
    response = client.post(URL, data=body(TIQS[name]), content_type="application/json")
    assert response.status_code == 202, response.get_data(as_text=True)
    # The Noren-key copy of the same update is the same event: a duplicate.
    response = client.post(URL, data=body(NOREN[name]), content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert redis_client.xlen(STREAM) == 1


def test_websocket_om_message_ignores_t(adapter):
    om = dict(NOREN["complete"], t="om")
    event = adapter.event_from_payload(om, source="websocket", received_at=RECEIVED)
    assert event.source == "websocket" and event.raw == om
    assert content(event) == content(postback(adapter, NOREN["complete"]))


def test_flattrade_pcode_is_the_product(adapter):
    payload = {k: v for k, v in NOREN["open"].items() if k != "prd"}
    assert postback(adapter, dict(payload, pcode="C")).product == "CNC"


def test_actid_is_the_account_else_uid(adapter):
    assert postback(adapter, dict(NOREN["open"], actid="FT001", uid="DEALER1")).account_id == "FT001"
    without_actid = {k: v for k, v in NOREN["open"].items() if k != "actid"}
    assert postback(adapter, dict(without_actid, uid="FT002")).account_id == "FT002"


# Status map (docs/brokers.md §5.3)


@pytest.mark.parametrize(
    ("raw", "quantity", "filled", "expected", "modified"),
    [
        ("ORDER ACK", "10", "", OrderStatus.PENDING, False),
        ("ORDER PENDING", "10", "", OrderStatus.PENDING, False),
        ("PENDING", "10", "", OrderStatus.PENDING, False),
        ("AMO OPEN", "10", "", OrderStatus.PENDING, False),
        ("OPEN", "10", "", OrderStatus.OPEN, False),
        ("OPEN", "10", "0", OrderStatus.OPEN, False),
        ("OPEN", "10", "4", OrderStatus.PARTIALLY_FILLED, False),
        ("TRIGGER_PENDING", "10", "", OrderStatus.TRIGGER_PENDING, False),
        ("TRIGGER PENDING", "10", "", OrderStatus.TRIGGER_PENDING, False),
        ("AMO MODIFIED", "10", "", OrderStatus.PENDING, True),
        ("COMPLETE", "10", "10", OrderStatus.FILLED, False),
        ("COMPLETE", "10", "4", OrderStatus.PARTIALLY_FILLED, False),
        ("COMPLETE", "10", "", OrderStatus.FILLED, False),
        ("CANCELED", "10", "", OrderStatus.CANCELLED, False),
        ("CANCELED", "10", "4", OrderStatus.CANCELLED, False),
        ("CANCELLED", "10", "", OrderStatus.CANCELLED, False),
        ("AMO CANCELED", "10", "", OrderStatus.CANCELLED, False),
        ("REJECTED", "10", "", OrderStatus.REJECTED, False),
        ("REJECT", "10", "", OrderStatus.REJECTED, False),  # an order-book word (docs/brokers.md §5.3)
        ("complete", "10", "10", OrderStatus.FILLED, False),
        ("Open", "10", "", OrderStatus.OPEN, False),  # title case, as the Shoonya and Flattrade READMEs show
        ("New", "10", "", OrderStatus.OPEN, False),
        ("Replaced", "10", "", OrderStatus.OPEN, True),
        ("AMO CANCELLED", "10", "", OrderStatus.CANCELLED, False),
    ],
)
def test_status_map(adapter, raw, quantity, filled, expected, modified):
    payload = dict(NOREN["complete"], status=raw, qty=quantity, fillshares=filled)
    event = postback(adapter, payload)
    assert (event.status, event.modified) == (expected, modified)
    assert event.broker_status == raw.upper()


def test_complete_with_fewer_shares_than_ordered_is_a_partial_fill(adapter):
    # Tiqs: COMPLETE "can be a partial fill as well" (seed 001).
    event = postback(adapter, dict(TIQS["complete"], qty="75", fillShares="50"))
    assert (event.status, event.filled_quantity, event.pending_quantity) == (OrderStatus.PARTIALLY_FILLED, 50, 25)


def test_complete_without_fillshares_means_the_whole_quantity(adapter):
    payload = {k: v for k, v in TIQS["complete"].items() if k != "fillShares"}
    event = postback(adapter, payload)
    assert (event.status, event.filled_quantity, event.pending_quantity) == (OrderStatus.FILLED, 50, 0)


def test_fill_of_this_trade_is_not_the_cumulative_fill(adapter):
    # flqty is this fill; fillshares is the order's total (docs/brokers.md §5.1).
    event = postback(adapter, dict(NOREN["complete"], status="OPEN", qty="100", fillshares="60", flqty="10"))
    assert (event.status, event.filled_quantity, event.pending_quantity) == (OrderStatus.PARTIALLY_FILLED, 60, 40)


def test_replaced_report_flags_a_modification(adapter):
    event = postback(adapter, dict(NOREN["open"], reporttype="Replaced", prc="22480.00"))
    assert (event.status, event.modified, event.price) == (OrderStatus.OPEN, True, 22480.0)


def test_unknown_status_is_stored_without_moving_the_state(adapter, client, redis_client, caplog):
    event = postback(adapter, dict(NOREN["open"], status="TELEPORTED"))
    assert (event.status, event.broker_status) == (OrderStatus.PENDING, "TELEPORTED")
    assert "unknown order status 'TELEPORTED'" in caplog.text
    response = client.post(URL, data=body(dict(TIQS["open"], status="TELEPORTED")), content_type="application/json")
    assert response.status_code == 202 and redis_client.xlen(STREAM) == 1


# Field maps


@pytest.mark.parametrize(
    ("prctyp", "order_type"), [("LMT", "LIMIT"), ("MKT", "MARKET"), ("SL-LMT", "SL"), ("SL-MKT", "SL-M")]
)
def test_order_types(adapter, prctyp, order_type):
    assert postback(adapter, dict(NOREN["open"], prctyp=prctyp)).order_type == order_type


@pytest.mark.parametrize(
    ("prd", "product"), [("C", "CNC"), ("I", "MIS"), ("M", "NRML"), ("H", "CO"), ("B", "BO"), ("MTF", "MTF")]
)
def test_products(adapter, prd, product):
    assert postback(adapter, dict(NOREN["open"], prd=prd)).product == product


@pytest.mark.parametrize(("trantype", "side"), [("B", "BUY"), ("S", "SELL")])
def test_sides(adapter, trantype, side):
    assert postback(adapter, dict(TIQS["open"], transactionType=trantype)).side == side


# Times, strings and blanks


def test_exchange_time_sentinel_and_blank_fall_back_to_tm(adapter):
    assert postback(adapter, NOREN["rejected"]).exchange_time == "2024-03-12T08:19:24.000000Z"
    neither = dict(NOREN["rejected"], exch_tm="01-01-1980 00:00:00", tm="")
    assert postback(adapter, neither).exchange_time is None


def test_every_value_as_a_string(adapter):
    event = postback(adapter, TIQS["complete"])
    assert isinstance(event.quantity, int) and isinstance(event.filled_quantity, int)
    assert isinstance(event.price, float) and isinstance(event.average_price, float)
    as_numbers = dict(TIQS["complete"], qty=50, fillShares=50, price=22484.2, avgPrice=22476.3)
    assert postback(adapter, as_numbers).id == event.id


def test_empty_strings_and_spaces_are_null(adapter):
    blanks = dict(TIQS["rejected"], reason=" ", exchangeOrderId="", avgPrice="", triggerPrice=" ", remarks="")
    event = postback(adapter, blanks)
    assert (event.reason, event.exchange_order_id, event.average_price, event.trigger_price, event.tag) == (
        None,
        None,
        None,
        None,
        None,
    )


def test_remarks_are_the_tag(adapter):
    assert postback(adapter, dict(TIQS["open"], remarks="strategy-9")).tag == "strategy-9"


# Wrong shapes


@pytest.mark.parametrize(
    ("sent", "mentions"),
    [
        (b'{"hello": "world"}', "norenordno"),
        (b'{"id": "24031200000023", "status": "OPEN"}', "orderUpdate"),  # camelCase without type
        (b'{"id": "24031200000023", "type": "trade", "status": "OPEN"}', "orderUpdate"),
        (b'{"id": " ", "type": "orderUpdate", "status": "OPEN"}', "norenordno"),
        (b'{"norenordno": "1"}', "status"),
        (b'{"norenordno": "1", "status": "OPEN", "qty": "ten"}', "qty"),
        (b'["norenordno"]', "JSON object"),
        (b"norenordno=1&status=OPEN", "not valid JSON"),
    ],
)
def test_wrong_shape_is_a_400_with_a_json_error(client, redis_client, sent, mentions):
    response = client.post(URL, data=sent, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert mentions in response.get_json()["error"]
    assert redis_client.xlen(STREAM) == 0


# Real traffic: the broker's own words and report types key the event


def test_ack_then_pending_are_two_events(client, redis_client):
    """ORDER ACK (reporttype NewAck) then ORDER PENDING (PendingNew): both PENDING to us, two updates."""
    for status, report in (("ORDER ACK", "NewAck"), ("ORDER PENDING", "PendingNew")):
        update = dict(NOREN["pending"], status=status, reporttype=report)
        assert client.post(URL, data=body(update), content_type="application/json").status_code == 202
    assert redis_client.xlen(STREAM) == 2


def test_report_types_alone_tell_updates_apart(adapter):
    """NewAck and PendingNew with the same status word are still two updates; a redelivery is one."""
    ack = postback(adapter, dict(NOREN["pending"], reporttype="NewAck"))
    pending = postback(adapter, dict(NOREN["pending"], reporttype="PendingNew"))
    assert ack.status == pending.status == OrderStatus.PENDING
    assert ack.id != pending.id
    assert postback(adapter, dict(NOREN["pending"], reporttype="NewAck")).id == ack.id


def test_status_spelling_does_not_split_one_update(adapter):
    """TRIGGER_PENDING and "trigger pending" are one word once folded (docs/brokers.md §7)."""
    spaced = postback(adapter, dict(NOREN["trigger_pending"], status="trigger pending"))
    assert spaced.id == postback(adapter, NOREN["trigger_pending"]).id


def test_a_history_row_keys_like_the_push(adapter):
    """A SingleOrdHist row spells reporttype `rpt` and adds norentm; it is the same update as the push."""
    row = {k: v for k, v in NOREN["complete"].items() if k != "reporttype"}
    row.update(rpt=NOREN["complete"]["reporttype"], norentm="12-03-2024 13:51:24", stat="Ok")
    assert (
        adapter.event_from_payload(row, source="reconcile", received_at=RECEIVED).id
        == postback(adapter, NOREN["complete"]).id
    )


def test_known_words(adapter):
    from app.brokers.registry import is_known_status

    for word in ("ORDER ACK", "ORDER PENDING", "REJECT", "New", "Replaced", "Open", "AMO MODIFIED", "TRIGGER_PENDING"):
        assert adapter.is_known_status(word) and is_known_status("flattrade", word), word
    assert not adapter.is_known_status("TELEPORTED") and not is_known_status("flattrade", "TELEPORTED")
