"""The Noren family's postbacks, once per broker: each broker's published sample (tests/brokers/<name>/samples.py)
at its own route, normalized by the one adapter; the same update by postback, socket and REST row is one event."""

from __future__ import annotations

import json

import pytest

from app.brokers.loader import adapter_classes
from app.config import load_config
from app.events import OrderStatus
from app.redis_keys import STREAM
from tests.support.env import POSTBACK_TOKEN
from tests.support.samples import postback_samples

RECEIVED = "2026-01-01T00:00:00.000000Z"

#: What each broker's published sample says, normalized (docs/brokers.md §5.3).
EXPECTED = {
    "flattrade": dict(order_id="24031200000025", status=OrderStatus.FILLED, filled_quantity=50, product="MIS"),
    # ShoonyaApi-py README: COMPLETE with fillshares 180 of 180, rpt Fill, prd M.
    "shoonya": dict(order_id="20121300065716", status=OrderStatus.FILLED, filled_quantity=180, product="NRML"),
    # Zebu's OrderBook sample: title-case Open, nothing filled, an AMO for CNC.
    "zebu": dict(order_id="24033000000002", status=OrderStatus.OPEN, filled_quantity=0, product="CNC"),
    # Firstock's order update feed: ORDER ACK, NewAck, pcode C, no `t`.
    "firstock": dict(order_id="25042400010260", status=OrderStatus.PENDING, filled_quantity=0, product="CNC"),
}
BROKERS = tuple(EXPECTED)


def adapter_for(env, broker: str):
    return adapter_classes()[broker](load_config(env))


@pytest.mark.parametrize("broker", BROKERS)
def test_published_sample_normalizes(env, broker):
    payload = postback_samples(broker)[0]
    event = adapter_for(env, broker).event_from_payload(payload, source="postback", received_at=RECEIVED)
    assert event.broker == broker and event.raw == payload
    assert {k: getattr(event, k) for k in EXPECTED[broker]} == EXPECTED[broker]


@pytest.mark.parametrize("broker", BROKERS)
def test_published_sample_at_its_route_then_its_socket_copy_is_a_duplicate(client, redis_client, broker):
    payload = postback_samples(broker)[0]
    url = f"/postbacks/{broker}/{POSTBACK_TOKEN}"
    first = client.post(url, data=json.dumps(payload), content_type="application/json")
    assert first.status_code == 202, first.get_data(as_text=True)
    again = client.post(url, data=json.dumps(dict(payload, t="om")), content_type="application/json")
    assert again.status_code == 200, again.get_data(as_text=True)
    assert redis_client.xlen(STREAM) == 1


@pytest.mark.parametrize("broker", BROKERS)
def test_a_sample_at_another_brokers_route_is_that_brokers_event(client, redis_client, broker):
    """Each broker's route names its own broker: the same body at two routes is two brokers' orders."""
    payload = postback_samples(broker)[0]
    other = "shoonya" if broker != "shoonya" else "zebu"
    for name in (broker, other):
        answer = client.post(
            f"/postbacks/{name}/{POSTBACK_TOKEN}", data=json.dumps(payload), content_type="application/json"
        )
        assert answer.status_code == 202, answer.get_data(as_text=True)
    assert redis_client.xlen(STREAM) == 2


@pytest.mark.parametrize("broker", BROKERS)
@pytest.mark.parametrize(
    ("word", "filled", "status", "modified"),
    [
        ("OPEN PENDING", "0", OrderStatus.PENDING, False),
        ("AFTER MARKET ORDER REQ RECEIVED", "0", OrderStatus.PENDING, False),
        ("MODIFY PENDING", "0", OrderStatus.OPEN, True),
        ("CANCEL PENDING", "0", OrderStatus.OPEN, False),
        ("EXECUTED", "30", OrderStatus.PARTIALLY_FILLED, False),  # quantities decide (docs/brokers.md §2)
        ("Open", "30", OrderStatus.PARTIALLY_FILLED, False),
        ("TRIGGER_PENDING", "0", OrderStatus.TRIGGER_PENDING, False),
    ],
)
def test_family_status_words(env, broker, word, filled, status, modified):
    payload = dict(postback_samples(broker)[0], status=word, qty="100", fillshares=filled)
    event = adapter_for(env, broker).event_from_payload(payload, source="websocket", received_at=RECEIVED)
    assert (event.status, event.modified) == (status, modified)


@pytest.mark.parametrize("broker", BROKERS)
def test_an_accounts_own_postback_url_takes_its_orders_and_refuses_anothers(db_services, db_client, broker):
    """Per account: the account's own path token lets in its orders (also by its trading account id, the `account`
    credential) and refuses a body naming another account with 403 (docs/interface.md "Accounts")."""
    sample = postback_samples(broker)[0]
    client_id = str(sample.get("uid") or sample.get("userId"))
    account = db_services.accounts.create(broker, client_id, credentials={"account": client_id + "X"})
    token = db_services.accounts.new_postback_token(account.id)
    url = f"/postbacks/{broker}/{token}"
    ours = dict(sample, actid=client_id + "X")
    assert db_client.post(url, data=json.dumps(ours), content_type="application/json").status_code == 202
    theirs = dict(sample, uid="ZZ0001", actid="ZZ0001", norenordno="1" + str(sample.get("norenordno", "")))
    refused = db_client.post(url, data=json.dumps(theirs), content_type="application/json")
    assert refused.status_code == 403 and "another account" in refused.get_json()["error"]
