"""Angel One postbacks: the token gate, the published rows and frames, status words and codes, the modify quirk."""

from __future__ import annotations

import json

import pytest

from app.brokers.angel.adapter import AngelAdapter
from app.brokers.registry import BY_NAME, is_known_status
from app.config import load_config
from app.events import OrderStatus
from app.redis_keys import STREAM
from tests.support.env import POSTBACK_TOKEN
from tests.support.helpers import body, load_fixture, run_pipeline
from tests.support.postback_cases import TokenSecurityCases

URL = f"/postbacks/angel/{POSTBACK_TOKEN}"
RECEIVED = "2026-01-01T00:00:00.000000Z"
COMPLETE = load_fixture("angel_details_complete.json")["data"]
REJECTED = load_fixture("angel_details_rejected.json")["data"]
OPEN_FRAME = load_fixture("angel_ws_open.json")
ACK = load_fixture("angel_ws_ack.json")


@pytest.fixture
def adapter(env) -> AngelAdapter:
    return AngelAdapter(load_config(env))


def normalized(adapter: AngelAdapter, payload: dict, source: str = "postback"):
    return adapter.event_from_payload(payload, source=source, received_at=RECEIVED)


def frame(code: str, **row) -> dict:
    """The AB01 frame with another code and row fields changed."""
    changed = json.loads(json.dumps(OPEN_FRAME))
    changed["order-status"] = code
    changed["orderData"].update(row)
    return changed


class TestAngelSecurity(TokenSecurityCases):
    """Angel signs nothing (docs/brokers.md §9.1): the secret POSTBACK_TOKEN in the path is the gate."""

    broker = "angel"


def _queued(redis_client) -> list[dict]:
    return [json.loads(fields[b"e"]) for _, fields in redis_client.xrange(STREAM)]


def test_the_published_complete_row_is_every_field(adapter):
    event = normalized(adapter, COMPLETE)
    assert (event.broker, event.order_id, event.status, event.broker_status) == (
        "angel",
        "240216000318017",
        OrderStatus.FILLED,
        "COMPLETE",
    )
    assert (event.side, event.exchange, event.symbol, event.product, event.order_type) == (
        "BUY",
        "NSE",
        "IDEA-EQ",
        "MIS",
        "LIMIT",
    )
    assert (event.quantity, event.filled_quantity, event.pending_quantity) == (2, 2, 0)
    assert (event.price, event.trigger_price, event.average_price) == (16.45, None, 16.45)
    assert event.exchange_time == "2024-02-16T05:58:49.000000Z"  # 11:28:49 IST
    assert event.modified is False and event.tag is None


def test_the_sdks_rejected_row(adapter):
    event = normalized(adapter, REJECTED)
    assert (event.status, event.reason, event.tag, event.filled_quantity) == (
        OrderStatus.REJECTED,
        "Invalid User Id",
        ".test",
        0,
    )
    assert event.product == "CNC" and event.price == 15.0
    assert event.exchange_time == "2023-10-09T12:09:28.000000Z"  # updatetime; exchtime is blank


def test_the_socket_frame_is_unwrapped_and_names_its_account(adapter):
    event = normalized(adapter, OPEN_FRAME, source="websocket")
    assert (event.order_id, event.status, event.broker_status, event.account_id) == (
        "231219000044295",
        OrderStatus.OPEN,
        "OPEN",
        "R52269012",
    )
    assert (event.quantity, event.filled_quantity, event.pending_quantity, event.side) == (1120, 0, 1120, "SELL")
    assert event.product == "NRML" and event.order_type == "MARKET" and event.exchange == "NFO"


def test_the_same_row_by_postback_and_inside_a_frame_is_one_event(adapter):
    flat = dict(OPEN_FRAME["orderData"], clientcode="R52269012")
    assert normalized(adapter, flat).id == normalized(adapter, OPEN_FRAME, source="websocket").id


def test_a_details_answer_and_a_number_order_id_are_taken(adapter):
    wrapped = normalized(adapter, load_fixture("angel_details_complete.json"))
    numeric = normalized(adapter, dict(COMPLETE, orderid=240216000318017))
    assert wrapped.order_id == numeric.order_id == "240216000318017"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AB01", OrderStatus.OPEN),
        ("AB02", OrderStatus.CANCELLED),
        ("AB03", OrderStatus.REJECTED),
        ("AB05", OrderStatus.FILLED),
        ("AB06", OrderStatus.PENDING),
        ("AB07", OrderStatus.CANCELLED),
        ("AB09", OrderStatus.PENDING),
        ("AB10", OrderStatus.TRIGGER_PENDING),
    ],
)
def test_a_code_decides_when_the_row_has_no_word(adapter, code, status):
    event = normalized(adapter, frame(code, orderstatus="", status="", filledshares=""), source="websocket")
    assert (event.status, event.broker_status) == (status, code)


def test_quantities_decide_partially_filled(adapter):
    partly = normalized(adapter, frame("AB01", filledshares="400", unfilledshares="720", averageprice=101.5))
    assert (partly.status, partly.filled_quantity, partly.pending_quantity) == (OrderStatus.PARTIALLY_FILLED, 400, 720)
    complete_short = normalized(adapter, frame("AB05", orderstatus="complete", status="complete", filledshares="40"))
    assert complete_short.status == OrderStatus.PARTIALLY_FILLED


@pytest.mark.parametrize(
    ("code", "word"), [("AB04", "modified"), ("AB11", "modify pending"), ("AB11", "open"), ("AB08", "")]
)
def test_a_modification_keeps_no_stale_figures(adapter, code, word):
    """docs/brokers.md §9.4: the row shows the values from before the change; none of them is taken."""
    event = normalized(adapter, frame(code, orderstatus=word, status=word, price=250.0, quantity="80"))
    assert event.modified is True
    assert (event.price, event.quantity, event.trigger_price, event.pending_quantity) == (None, None, None, None)
    assert event.status in (OrderStatus.OPEN, OrderStatus.PENDING)


def test_every_mapped_word_and_code_is_known():
    for raw in (*BY_NAME["angel"].status_map, "open", "trigger pending", "ab05"):
        assert is_known_status("angel", raw), raw
    assert not is_known_status("angel", "AB00") and not is_known_status("angel", "EXECUTED")


def test_postbacks_are_stored_and_a_redelivery_is_a_duplicate(client, redis_client):
    first = client.post(URL, data=body(COMPLETE), content_type="application/json")
    assert first.status_code == 202, first.get_json()
    again = client.post(URL, data=body(COMPLETE), content_type="application/json")
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    [event] = _queued(redis_client)
    assert (event["broker"], event["source"], event["status"]) == ("angel", "postback", OrderStatus.FILLED)


@pytest.mark.parametrize(
    ("sent", "mentions"),
    [
        (body(ACK), "orderid"),
        (b'[{"orderid": "1"}]', "JSON object"),
        (body(dict(COMPLETE, orderstatus="", status="")), "orderstatus"),
        (body(dict(COMPLETE, quantity="many")), "quantity"),
        (body(dict(COMPLETE, orderstatus={"x": 1})), "orderstatus"),
    ],
)
def test_wrong_shapes_are_a_400_with_a_json_error(client, redis_client, sent, mentions):
    answer = client.post(URL, data=sent, content_type="application/json")
    assert answer.status_code == 400 and mentions in answer.get_json()["error"], answer.get_json()
    assert redis_client.xlen(STREAM) == 0


def test_an_accounts_own_token_takes_its_rows(db_services, db_client, admin_headers):
    """A per-account path token (docs/accounts.md): a row naming another client code is refused with 403."""
    account = db_services.accounts.create("angel", "R52269012", label="angel main")
    token = db_services.accounts.new_postback_token(account.id)
    url = BY_NAME["angel"].postback_path(token)
    assert db_client.post(url, data=body(OPEN_FRAME), content_type="application/json").status_code == 202
    other = frame("AB01", orderid="231219000044296")
    other["user-id"] = "S1234567"
    refusal = db_client.post(url, data=body(other), content_type="application/json")
    assert refusal.status_code == 403 and "another account" in refusal.get_json()["error"]
    assert db_client.post(url, data=body(COMPLETE), content_type="application/json").status_code == 202
    run_pipeline(db_services)
    listed = db_client.get("/api/orders?broker=angel", headers=admin_headers).get_json()["orders"]
    orders = {order["order_id"]: order for order in listed}
    assert orders["240216000318017"]["account_id"] == "R52269012"  # a row naming none is the URL's account
