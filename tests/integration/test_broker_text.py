"""A broker's text never costs its update: long text and NUL or control characters are taken, stored,
forwarded and shown, on SQLite and PostgreSQL (docs/ingest.md, Text from brokers)."""

from __future__ import annotations

import json

import pytest
import responses
import sqlalchemy as sa

from app.brokers.base import CUT_MARKER, MAX_TEXT_LENGTH
from app.db import events, raw_postbacks
from app.services import set_services
from app.text import one_line
from tests.support.env import ADMIN_TOKEN, POSTBACK_TOKEN
from tests.support.helpers import forwarding_services, load_fixture, run_pipeline

URL = f"/postbacks/dhan/{POSTBACK_TOKEN}"
CONSUMER = "http://consumer.test/hook"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: A rejection as Dhan sends one (docs/brokers.md §4.1), its reason to be filled in by each test.
REJECTION = dict(load_fixture("dhan_postback_traded.json"), orderStatus="REJECTED", filled_qty=0)
LONG_REASON = ("RMS:Margin Exceeds, Required:10.09, Available:0.00 " + "x" * 4950)[:5000]
CONTROL_REASON = "RMS:Margin\x00 short \x1b[31mRED\x1b[0m\nFILLED kite 1 \u202eDESREVER"


@pytest.fixture
def forwarding(redis_client, redis_url, database_url, tmp_path):
    """Services forwarding to CONSUMER over `database_url` (SQLite and PostgreSQL), and a client over them."""
    built, client = forwarding_services(
        redis_url, database_url, tmp_path, FORWARD_URLS=CONSUMER, FORWARD_RETRY_SCHEDULE="0"
    )
    yield built, client
    set_services(None)
    built.engine.dispose()


def _post(client, order_id: str, reason: str) -> str:
    """A Dhan rejection with `reason` as omsErrorDescription, which must be taken (202); its event id."""
    payload = dict(REJECTION, orderId=order_id, omsErrorDescription=reason)
    answer = client.post(URL, data=json.dumps(payload), content_type="application/json")
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["id"]


def _forwarded(event_id: str) -> dict:
    """The event the consumer received for `event_id`."""
    bodies = [json.loads(call.request.body) for call in responses.calls]
    (event,) = [body for body in bodies if body["id"] == event_id]
    return event


@responses.activate
def test_a_5000_character_rejection_reason_is_kept_cut_and_whole_in_raw(forwarding):
    services, client = forwarding
    responses.post(CONSUMER, status=200)
    assert len(LONG_REASON) == 5000
    event_id = _post(client, "51000000000001", LONG_REASON)
    run_pipeline(services)
    cut = LONG_REASON[: MAX_TEXT_LENGTH - len(CUT_MARKER)] + CUT_MARKER
    sent = _forwarded(event_id)
    assert (sent["status"], sent["reason"]) == ("REJECTED", cut)
    assert sent["raw"]["omsErrorDescription"] == LONG_REASON
    shown = client.get("/api/orders/dhan/51000000000001", headers=AUTH).get_json()
    assert shown["status"] == "REJECTED" and shown["reason"] == cut
    assert shown["events"][0]["raw"]["omsErrorDescription"] == LONG_REASON
    with services.engine.connect() as conn:
        body = conn.execute(sa.select(raw_postbacks.c.body).where(raw_postbacks.c.event_id == event_id)).scalar_one()
    assert LONG_REASON.encode() in bytes(body)  # the bytes as received


@responses.activate
def test_nul_and_control_characters_in_a_reason_are_stored_and_shown_neutralized(forwarding):
    services, client = forwarding
    responses.post(CONSUMER, status=200)
    event_id = _post(client, "51000000000002", CONTROL_REASON)
    run_pipeline(services)
    stored_reason = CONTROL_REASON.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold U+0000
    with services.engine.connect() as conn:
        data = conn.execute(sa.select(events.c.data).where(events.c.id == event_id)).scalar_one()
    data = json.loads(data) if isinstance(data, str) else data
    assert data["reason"] == stored_reason
    sent = _forwarded(event_id)
    assert sent["reason"] == stored_reason and sent["raw"]["omsErrorDescription"] == CONTROL_REASON
    shown = client.get("/api/orders/dhan/51000000000002", headers=AUTH).get_json()
    assert shown["status"] == "REJECTED" and shown["reason"] == stored_reason
    line = one_line(shown["reason"])  # what the alert and log layers print (app/text.py)
    assert "\n" not in line and "\x1b" not in line and "\u202e" not in line and "\\u001B[31m" in line


@pytest.mark.parametrize(
    ("order_id", "words"),
    [
        ("5100\x00001", "order_id contains a NUL character (U+0000)"),
        ("5" * 129, "order_id is longer than 128 characters (129)"),
    ],
)
def test_an_order_id_that_cannot_be_stored_as_sent_is_refused_naming_the_cause(forwarding, order_id, words):
    _, client = forwarding
    payload = dict(REJECTION, orderId=order_id)
    answer = client.post(URL, data=json.dumps(payload), content_type="application/json")
    assert answer.status_code == 400 and words in answer.get_json()["error"], answer.get_json()
