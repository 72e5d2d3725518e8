"""Groww: the adapter's words and fields, and the order list against a fake REST server (paging, auth, rate)."""

from __future__ import annotations

import pytest

from app.brokers import rest as client_base
from app.brokers.groww.adapter import GrowwAdapter
from app.brokers.groww.rest import PAGE_SIZE, GrowwClient
from app.config import load_config
from app.events import OrderStatus
from app.reconcile.clients import AuthExpired, client_for
from tests.support.env import make_env
from tests.support.fakes.polled import FakeGrowwRest, groww_order

TOKEN = "groww-access-token-abc"


@pytest.fixture
def fake():
    server = FakeGrowwRest(TOKEN).start()
    yield server
    server.close()


@pytest.fixture
def config(tmp_path, monkeypatch, fake):
    monkeypatch.setattr(client_base, "BACKOFF_FACTOR", 0.0)
    env = make_env(
        "redis://127.0.0.1:6379/15", "sqlite:///:memory:", tmp_path, GROWW_API_URL=fake.url, GROWW_ACCESS_TOKEN=TOKEN
    )
    return load_config(env)


def normalize(config, row):
    return GrowwAdapter(config).event_from_payload(row, source="reconcile", received_at="2026-01-01T00:00:00.000000Z")


@pytest.mark.parametrize(
    ("word", "filled", "expected"),
    [
        ("NEW", 0, OrderStatus.PENDING),
        ("ACKED", 0, OrderStatus.OPEN),
        ("APPROVED", 0, OrderStatus.OPEN),
        ("TRIGGER_PENDING", 0, OrderStatus.TRIGGER_PENDING),
        ("ACKED", 4, OrderStatus.PARTIALLY_FILLED),
        ("MODIFICATION_REQUESTED", 0, OrderStatus.OPEN),
        ("CANCELLATION_REQUESTED", 0, OrderStatus.OPEN),
        ("EXECUTED", 10, OrderStatus.FILLED),
        ("DELIVERY_AWAITED", 10, OrderStatus.FILLED),
        ("COMPLETED", 10, OrderStatus.FILLED),
        ("CANCELLED", 3, OrderStatus.CANCELLED),
        ("REJECTED", 0, OrderStatus.REJECTED),
        ("FAILED", 0, OrderStatus.REJECTED),
    ],
)
def test_status_words(config, word, filled, expected):
    assert normalize(config, groww_order("G1", word, filled=filled)).status == expected


def test_row_fields(config):
    event = normalize(config, groww_order("GMK39038RDT490CCVRO", "EXECUTED", filled=10)).to_dict()
    assert event["order_id"] == "GMK39038RDT490CCVRO" and event["side"] == "BUY" and event["exchange"] == "NSE"
    assert (event["quantity"], event["filled_quantity"], event["pending_quantity"]) == (10, 10, 0)
    assert event["average_price"] == 2500 and event["symbol"] == "RELIANCE" and event["product"] == "CNC"
    assert event["exchange_time"] == "2026-05-08T06:25:01.000000Z"  # 11:55:01 IST
    assert event["tag"] == "Ab-654321234-1628190"
    feed_spelling = {"growwOrderId": "G2", "orderStatus": "ACKED", "qty": 5, "filledQty": 2, "avgFillPrice": 10}
    assert normalize(config, feed_spelling).status == OrderStatus.PARTIALLY_FILLED


def test_order_list_pages_headers_and_refusal(config, fake):
    for index in range(PAGE_SIZE + 3):
        fake.add(f"G{index:03}", [groww_order(f"G{index:03}", "ACKED")])
    client = client_for(config, "groww")
    assert len(client.orders()) == PAGE_SIZE + 3 and len(fake.requests) == 2  # two pages, the second short
    assert "page=1" in fake.requests[1]["path"] and fake.requests[0]["headers"]["X-API-VERSION"] == "1.0"
    fake.expired = True
    with pytest.raises(AuthExpired, match="paste a new one"):
        client.orders()


def test_reads_wait_their_turn_in_the_rate_window(config, fake, monkeypatch):
    """At most `rate` book reads per second per token, however often a poll asks (app/brokers/rest.py)."""
    monkeypatch.setattr(GrowwClient, "rate", "2/second")
    fake.add("G1", [groww_order("G1", "ACKED")])
    client = client_for(config, "groww")
    client.limit_key += ":rate-test"  # a window of its own, untouched by other tests in this process
    for _ in range(5):
        client.orders()
    times = fake.times
    assert len(times) == 5
    assert all(later - earlier >= 0.95 for earlier, later in zip(times, times[2:], strict=False)), times
