"""Kite postbacks: checksum security, normalization, status map, several apps."""

from __future__ import annotations

import json

import pytest

from app.brokers.kite.adapter import KiteAdapter, kite_checksum
from app.config import load_config
from app.events import OrderStatus
from app.exceptions import PostbackVerificationError
from tests.support.env import KITE_SECRET, POSTBACK_TOKEN
from tests.support.helpers import load_fixture, sign_kite
from tests.support.postback_cases import PostbackSecurityCases

SEED = load_fixture("kite_postback_complete.json")


def body(payload: dict) -> bytes:
    return json.dumps(payload).encode()


class TestKiteSecurity(PostbackSecurityCases):
    forged_status = 403
    missing_status = 401

    def valid_request(self):
        return "/postbacks/kite", body(sign_kite(SEED, KITE_SECRET))

    def forged_request(self):
        return "/postbacks/kite", body(sign_kite(SEED, "not-the-secret"))

    def missing_request(self):
        payload = dict(SEED)
        payload.pop("checksum")
        return "/postbacks/kite", body(payload)

    def tampered_request(self):
        payload = sign_kite(SEED, KITE_SECRET)
        payload["order_id"] = "220303000308933"
        return "/postbacks/kite", body(payload)

    def wrong_token_request(self):
        return f"/postbacks/kite/{POSTBACK_TOKEN}", body(sign_kite(SEED, KITE_SECRET))


def test_checksum_matches_the_documented_formula():
    expected = __import__("hashlib").sha256(b"220303000308932" + b"2022-03-03 09:24:25" + b"s3cret").hexdigest()
    assert kite_checksum("220303000308932", "2022-03-03 09:24:25", "s3cret") == expected


def test_seed_normalizes_every_field(env):
    adapter = KiteAdapter(load_config(env))
    payload = sign_kite(SEED, KITE_SECRET)
    event = adapter.receive(body(payload), {}, token=None, received_at="2026-01-01T00:00:00.000000Z")
    data = event.to_dict()
    assert data["broker"] == "kite" and data["source"] == "postback"
    assert data["order_id"] == "220303000308932"
    assert data["exchange_order_id"] == "1000000001482421"
    assert data["account_id"] == "AB1234"
    assert data["status"] == OrderStatus.FILLED and data["broker_status"] == "COMPLETE"
    assert data["side"] == "BUY" and data["exchange"] == "NSE" and data["symbol"] == "SBIN"
    assert data["product"] == "CNC" and data["order_type"] == "MARKET"
    assert (data["quantity"], data["filled_quantity"], data["pending_quantity"]) == (1, 1, 0)
    assert data["average_price"] == 470 and data["price"] == 0 and data["trigger_price"] == 0
    assert data["exchange_time"] == "2022-03-03T03:54:25.000000Z"  # 09:24:25 IST
    assert data["raw"] == dict(payload, checksum="")  # the checksum never leaves the service
    assert data["id"].startswith("evt_")


@pytest.mark.parametrize(
    ("raw", "quantity", "filled", "order_type", "expected", "modified"),
    [
        ("PUT ORDER REQ RECEIVED", 10, 0, "LIMIT", OrderStatus.PENDING, False),
        ("VALIDATION PENDING", 10, 0, "LIMIT", OrderStatus.PENDING, False),
        ("OPEN PENDING", 10, 0, "LIMIT", OrderStatus.PENDING, False),
        ("AMO REQ RECEIVED", 10, 0, "LIMIT", OrderStatus.PENDING, False),
        ("OPEN", 10, 0, "LIMIT", OrderStatus.OPEN, False),
        ("OPEN", 10, 4, "LIMIT", OrderStatus.PARTIALLY_FILLED, False),
        ("TRIGGER PENDING", 10, 0, "SL", OrderStatus.TRIGGER_PENDING, False),
        ("UPDATE", 10, 3, "LIMIT", OrderStatus.PARTIALLY_FILLED, False),
        ("UPDATE", 10, 0, "LIMIT", OrderStatus.OPEN, True),
        ("UPDATE", 10, 0, "SL", OrderStatus.TRIGGER_PENDING, True),
        ("MODIFY PENDING", 10, 0, "LIMIT", OrderStatus.OPEN, True),
        ("CANCEL PENDING", 10, 0, "LIMIT", OrderStatus.OPEN, True),
        ("COMPLETE", 10, 10, "LIMIT", OrderStatus.FILLED, False),
        ("CANCELLED", 10, 4, "LIMIT", OrderStatus.CANCELLED, False),
        ("CANCELLED", 10, 0, "LIMIT", OrderStatus.CANCELLED, False),
        ("REJECTED", 10, 0, "LIMIT", OrderStatus.REJECTED, False),
    ],
)
def test_status_map(env, raw, quantity, filled, order_type, expected, modified):
    adapter = KiteAdapter(load_config(env))
    payload = dict(SEED, status=raw, quantity=quantity, filled_quantity=filled, order_type=order_type)
    event = adapter.event_from_payload(payload, source="postback", received_at="2026-01-01T00:00:00Z")
    assert (event.status, event.modified) == (expected, modified)


def test_unknown_status_is_stored_without_moving_the_state(env, caplog):
    adapter = KiteAdapter(load_config(env))
    event = adapter.event_from_payload(dict(SEED, status="TELEPORTED"), source="postback", received_at="x")
    assert (event.status, event.broker_status) == (OrderStatus.FILLED, "TELEPORTED")  # 1 of 1 filled
    fresh = dict(SEED, status="TELEPORTED", filled_quantity=0)
    assert adapter.event_from_payload(fresh, source="postback", received_at="x").status == OrderStatus.PENDING
    assert "unknown order status 'TELEPORTED'" in caplog.text


def test_several_apps_use_their_own_secret(env):
    config = load_config(dict(env, KITE_APPS="1234:first-secret-xxxx,5678:second-secret-yyyy"))
    adapter = KiteAdapter(config)
    for app_id, secret in (("1234", "first-secret-xxxx"), ("5678", "second-secret-yyyy")):
        payload = sign_kite(dict(SEED, app_id=int(app_id)), secret)
        adapter.verify(body(payload), payload, {})
    wrong = sign_kite(dict(SEED, app_id=5678), "first-secret-xxxx")
    with pytest.raises(PostbackVerificationError, match="incorrect checksum"):
        adapter.verify(body(wrong), wrong, {})


def test_unknown_app_falls_back_to_kite_api_secret(env):
    adapter = KiteAdapter(load_config(dict(env, KITE_APPS="1234:first-secret-xxxx")))
    payload = sign_kite(dict(SEED, app_id=9999), KITE_SECRET)
    adapter.verify(body(payload), payload, {})


def test_checksum_uses_order_id_as_received(client, redis_client):
    payload = sign_kite(dict(SEED, order_id=220303000308932), KITE_SECRET)  # a number, not a string
    assert payload["checksum"] == kite_checksum("220303000308932", SEED["order_timestamp"], KITE_SECRET)
    assert client.post("/postbacks/kite", data=body(payload)).status_code == 202


def test_checksum_case_and_whitespace_do_not_matter_but_content_does(client, redis_client):
    payload = sign_kite(SEED, KITE_SECRET)
    payload["checksum"] = payload["checksum"].upper()
    assert client.post("/postbacks/kite", data=body(payload)).status_code == 202
    payload["checksum"] = payload["checksum"][:-1] + ("0" if payload["checksum"][-1] != "0" else "1")
    payload["status"] = "REJECTED"
    assert client.post("/postbacks/kite", data=body(payload)).status_code == 403


def test_a_second_spelling_of_a_signed_field_cannot_slip_past_the_checksum(client, redis_client):
    genuine = sign_kite(SEED, KITE_SECRET)
    forged = {"orderId": "999999999999999", "Status": "CANCELLED", **genuine}
    answer = client.post("/postbacks/kite", data=body(forged))
    assert answer.status_code == 400 and "given twice" in answer.get_json()["error"]
    repeated = body(genuine)[:-1] + b', "order_id": "999999999999999"}'
    answer = client.post("/postbacks/kite", data=repeated)
    assert answer.status_code == 400 and "given twice" in answer.get_json()["error"]
    assert redis_client.xlen("oh:ingest") == 0


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"order_id": ""}, "order_id"),
        ({"status": "  "}, "status is blank"),
        ({"user_id": "u" * 129}, "account_id is longer"),
        ({"order_id": "2512\u000001"}, "order_id contains a NUL character (U+0000)"),
    ],
)
def test_what_could_not_be_stored_is_refused_up_front(client, redis_client, changes, words):
    answer = client.post("/postbacks/kite", data=body(sign_kite(dict(SEED, **changes), KITE_SECRET)))
    assert answer.status_code == 400 and words in answer.get_json()["error"], answer.get_json()


def test_text_with_a_nul_or_of_any_length_is_taken_not_refused(client, redis_client):
    """A broker does not resend a refused update: its text never costs one (docs/ingest.md, Text from brokers)."""
    changes = {"tradingsymbol": "SB\u0000IN", "status_message": "RMS: " + "x" * 5000}
    answer = client.post("/postbacks/kite", data=body(sign_kite(dict(SEED, **changes), KITE_SECRET)))
    assert answer.status_code == 202, answer.get_json()
    [(_, entry)] = redis_client.xrange("oh:ingest")
    queued = json.loads(entry[b"e"])
    assert queued["symbol"] == "SB\ufffdIN" and len(queued["reason"]) == 2048 and queued["reason"].endswith("\u2026")


# Real traffic: distinct broker updates stay distinct, copies of one update stay one.

#: One order's trail as Kite's WebSocket and order history show it (docs/brokers.md §3.3): the first three
#: words are all PENDING to us, the two MODIFY words keep OPEN, yet each is an update of its own.
LIFECYCLE = (
    "PUT ORDER REQ RECEIVED",
    "VALIDATION PENDING",
    "OPEN PENDING",
    "OPEN",
    "MODIFY VALIDATION PENDING",
    "MODIFY PENDING",
    "MODIFIED",
)


def _working(status: str) -> dict:
    """The seed as a 10-share LIMIT order still working, with Kite's status word."""
    return dict(
        SEED,
        status=status,
        order_type="LIMIT",
        price=470.5,
        quantity=10,
        filled_quantity=0,
        pending_quantity=10,
        average_price=0,
        exchange_update_timestamp=None,
    )


def test_every_status_word_of_a_lifecycle_is_its_own_event(client, redis_client):
    for word in LIFECYCLE:
        answer = client.post("/postbacks/kite", data=body(sign_kite(_working(word), KITE_SECRET)))
        assert answer.status_code == 202, (word, answer.get_json())
    assert redis_client.xlen("oh:ingest") == len(LIFECYCLE)
    again = client.post("/postbacks/kite", data=body(sign_kite(_working("MODIFY PENDING"), KITE_SECRET)))
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    assert redis_client.xlen("oh:ingest") == len(LIFECYCLE)


def test_modification_words_flag_a_live_order_and_never_change_its_status(env):
    adapter = KiteAdapter(load_config(env))
    for word in ("MODIFY VALIDATION PENDING", "MODIFY PENDING", "MODIFIED"):
        event = adapter.event_from_payload(_working(word), source="websocket", received_at="x")
        assert (event.status, event.modified, event.broker_status) == (OrderStatus.OPEN, True, word)
        assert adapter.is_known_status(word)


def test_the_postback_and_websocket_copies_of_one_update_are_one_event(env):
    adapter = KiteAdapter(load_config(env))
    postback = adapter.receive(
        body(sign_kite(SEED, KITE_SECRET)), {}, token=None, received_at="2026-01-01T00:00:00.000000Z"
    )
    # The WebSocket's `data` carries the postback fields with a blank checksum (docs/brokers.md §3.2),
    # and a status spelled differently is the same word.
    for spelled in ("COMPLETE", "complete", " Complete "):
        ws = adapter.event_from_payload(
            dict(SEED, checksum="", status=spelled), source="websocket", received_at="2026-01-01T00:00:01.000000Z"
        )
        assert ws.id == postback.id and ws.dedup_key == postback.dedup_key


def test_an_order_book_row_of_the_same_update_has_the_same_key(env):
    """A /orders row (kiteconnect-mocks orders.json shape: no checksum, `account_id`, `modified`) keys alike."""
    adapter = KiteAdapter(load_config(env))
    postback = adapter.event_from_payload(sign_kite(SEED, KITE_SECRET), source="postback", received_at="x")
    row = {k: v for k, v in SEED.items() if k not in ("checksum", "user_id", "app_id", "unfilled_quantity")}
    row.update(account_id="AB1234", modified=False, validity_ttl=0, tags=[])
    rest = adapter.event_from_payload(row, source="reconcile", received_at="y")
    assert rest.id == postback.id
    assert rest.account_id == "AB1234"


def test_account_id_is_kept_when_user_id_is_absent(env):
    adapter = KiteAdapter(load_config(env))
    payload = {k: v for k, v in SEED.items() if k != "user_id"}
    event = adapter.event_from_payload(dict(payload, account_id="ZX9876"), source="websocket", received_at="x")
    assert event.account_id == "ZX9876"


def test_a_repeated_unsigned_key_is_read_as_json_parsers_read_it(client, redis_client):
    """Kite's documentation sample repeats status_message: the body is taken, the last copy wins."""
    genuine = sign_kite(dict(SEED, status="REJECTED", filled_quantity=0), KITE_SECRET)
    text = body(genuine)[:-1] + b', "status_message": "RMS: margin exceeds"}'
    answer = client.post("/postbacks/kite", data=text)
    assert answer.status_code == 202, answer.get_json()
    _, fields = redis_client.xrange("oh:ingest")[0]
    assert json.loads(fields[b"e"])["reason"] == "RMS: margin exceeds"


def test_a_signed_field_repeated_with_the_same_value_is_accepted(client, redis_client):
    genuine = sign_kite(SEED, KITE_SECRET)
    text = body(genuine)[:-1] + b', "order_id": 220303000308932, "Order-Timestamp": "2022-03-03 09:24:25"}'
    assert client.post("/postbacks/kite", data=text).status_code == 202


@pytest.mark.parametrize(
    "extra",
    [
        b', "order_timestamp": "2022-03-03 09:24:26"',
        b', "OrderTimestamp": "2022-03-03 09:24:26"',
        b', "order\\u005fid": "220303000308933"',
    ],
)
def test_a_signed_field_repeated_with_another_value_is_refused(client, redis_client, extra):
    text = body(sign_kite(SEED, KITE_SECRET))[:-1] + extra + b"}"
    answer = client.post("/postbacks/kite", data=text)
    assert answer.status_code == 400 and "given twice" in answer.get_json()["error"], answer.get_json()
    assert redis_client.xlen("oh:ingest") == 0


def test_the_checksum_never_leaves_in_what_is_queued(client, redis_client):
    payload = sign_kite(SEED, KITE_SECRET)
    assert client.post("/postbacks/kite", data=body(payload)).status_code == 202
    _, fields = redis_client.xrange("oh:ingest")[0]
    assert payload["checksum"] not in fields[b"e"].decode()
    assert json.loads(fields[b"e"])["raw"]["checksum"] == ""


def test_unknown_words_are_marked_unknown(env):
    from app.brokers.registry import is_known_status

    adapter = KiteAdapter(load_config(env))
    assert not adapter.is_known_status("TELEPORTED") and not is_known_status("kite", "TELEPORTED")
    for word in (*LIFECYCLE, "COMPLETE", "CANCELLED", "REJECTED", "UPDATE", "TRIGGER PENDING", "AMO REQ RECEIVED"):
        assert adapter.is_known_status(word) and is_known_status("kite", word.lower()), word
