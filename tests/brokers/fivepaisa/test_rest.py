"""5paisa: the adapter's words and fields, and V3/OrderBook against a fake REST server (auth, errors)."""

from __future__ import annotations

import pytest

from app.brokers import rest as client_base
from app.brokers.fivepaisa.adapter import FivepaisaAdapter, net_date
from app.config import load_config
from app.events import OrderStatus
from app.reconcile.clients import AuthExpired, BadResponse, client_for
from tests.support.env import make_env
from tests.support.fakes.polled import FakeFivepaisaRest, fivepaisa_order


@pytest.fixture
def fake():
    server = FakeFivepaisaRest("55501234", "app-key-5p", "access-token-5p").start()
    yield server
    server.close()


@pytest.fixture
def config(tmp_path, monkeypatch, fake):
    monkeypatch.setattr(client_base, "BACKOFF_FACTOR", 0.0)
    env = make_env(
        "redis://127.0.0.1:6379/15",
        "sqlite:///:memory:",
        tmp_path,
        FIVEPAISA_API_URL=fake.url,
        FIVEPAISA_CLIENT_CODE="55501234",
        FIVEPAISA_APP_KEY="app-key-5p",
        FIVEPAISA_ACCESS_TOKEN="access-token-5p",
    )
    return load_config(env)


def normalize(config, row):
    adapter = FivepaisaAdapter(config)
    return adapter.event_from_payload(row, source="reconcile", received_at="2026-01-01T00:00:00.000000Z")


@pytest.mark.parametrize(
    ("word", "filled", "expected", "modified"),
    [
        ("Placed", 0, OrderStatus.PENDING, False),
        ("Xmitted", 0, OrderStatus.PENDING, False),
        ("AH Placed", 0, OrderStatus.PENDING, False),
        ("AH Modified", 0, OrderStatus.PENDING, True),
        ("Pending", 0, OrderStatus.OPEN, False),
        ("Pending", 4, OrderStatus.PARTIALLY_FILLED, False),
        ("Modified", 0, OrderStatus.OPEN, True),
        ("SL Triggered", 0, OrderStatus.OPEN, False),
        ("Fully Executed", 10, OrderStatus.FILLED, False),
        ("Cancelled", 2, OrderStatus.CANCELLED, False),
        ("AH Cancelled", 0, OrderStatus.CANCELLED, False),
        ("Rejected by 5P", 0, OrderStatus.REJECTED, False),
        ("Rejected By Exch", 0, OrderStatus.REJECTED, False),
    ],
)
def test_status_words(config, word, filled, expected, modified):
    event = normalize(config, fivepaisa_order(1, word, filled=filled))
    assert (event.status, event.modified) == (expected, modified)


def test_row_fields_and_net_dates(config):
    event = normalize(config, fivepaisa_order(211000777, "Fully Executed", filled=10)).to_dict()
    assert event["order_id"] == "211000777" and event["exchange_order_id"] == "1100000012345678"
    assert event["side"] == "BUY" and event["exchange"] == "NSE" and event["product"] == "CNC"
    assert event["order_type"] == "LIMIT" and event["price"] == 1500.5 and event["average_price"] == 1500.5
    assert event["exchange_time"] == "2026-05-08T06:25:01.000000Z" and event["tag"] == "ORDERHOOK1"
    placed = normalize(config, fivepaisa_order(5, "Placed", Exch="N", ExchType="D", SLTriggerRate=10, AtMarket="Y"))
    assert placed.exchange_order_id is None and placed.exchange == "NFO" and placed.order_type == "SL-M"
    assert net_date("/Date(0+0530)/") is None and net_date("yesterday") is None


def test_order_book_body_and_errors(config, fake):
    fake.add("211000777", [fivepaisa_order(211000777, "Pending")])
    client = client_for(config, "fivepaisa")
    assert [client.order_id(r) for r in client.orders()] == ["211000777"]
    assert fake.requests[0]["headers"]["Authorization"] == "Bearer access-token-5p"
    fake.app_key = "another-key"
    with pytest.raises(BadResponse, match="Invalid head key"):
        client.orders()
    fake.expired = True
    with pytest.raises(AuthExpired, match="paste a new one"):
        client.orders()
