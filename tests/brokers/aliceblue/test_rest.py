"""AliceBlue's open-api order book against `responses`: its bearer, its shapes, its errors, a reconciliation."""

from __future__ import annotations

import copy
import json

import pytest
import responses

from app.brokers import rest as client_base
from app.brokers.rest import BadOrderId
from app.config import load_config
from app.reconcile.clients import CLIENTS, AuthExpired, BadResponse, OrderNotFound, client_for
from app.reconcile.engine import reconcile_broker
from tests.brokers.aliceblue.samples import BOOK_ROW
from tests.support.env import make_env
from tests.support.fakes.harness import ServiceBuilder, api_client
from tests.support.helpers import run_pipeline
from tests.support.rest_clients import TRAVERSAL

BASE = "https://a3.aliceblueonline.com/open-api/od/v1"
SESSION = "alice-user-session-for-rest-0001"
CLIENT = "912444"
CREDENTIALS = {"ALICEBLUE_USER_ID": CLIENT, "ALICEBLUE_SESSION": SESSION}


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setattr(client_base, "BACKOFF_FACTOR", 0.0)
    monkeypatch.setattr(client_base, "BACKOFF_JITTER", 0.0)
    return load_config(make_env("redis://127.0.0.1:6379/15", "sqlite:///:memory:", tmp_path, **CREDENTIALS))


def ok(rows: list[dict]) -> dict:
    return {"status": "Ok", "message": "Success", "result": rows}


def row(status: str, at: str, **fields) -> dict:
    """A history row from the documented book row, at a time as the open-api writes times."""
    return dict(copy.deepcopy(BOOK_ROW), orderStatus=status, exchangeUpdateTime=at, rejectionReason="", **fields)


@responses.activate
def test_book_and_history_with_the_bearer_and_rows_renamed_onto_noren_keys(config):
    history = [
        row("open", "14-Jul-2025 10:00:01"),
        row("open", "14-Jul-2025 10:00:05", filledQuantity=10, averageTradedPrice=1120.1),
        row("complete", "14-Jul-2025 10:00:09", filledQuantity=30, averageTradedPrice=1120.12),
    ]
    responses.get(f"{BASE}/orders/book", json=ok([BOOK_ROW]))
    responses.post(f"{BASE}/orders/history", json=ok(list(reversed(history))))
    client = client_for(config, "aliceblue")
    assert [client.order_id(r) for r in client.orders()] == ["25071400112229"]
    rows = client.history("25071400112229")
    assert [r["orderStatus"] for r in rows] == ["open", "open", "complete"]
    payload = client.to_payload(rows[-1])
    assert (payload["norenordno"], payload["status"], payload["fillshares"], payload["avgprc"]) == (
        "25071400112229",
        "complete",
        30,
        1120.12,
    )
    assert payload["exch_tm"] == "14-07-2025 10:00:09" and payload["prctyp"] == "LIMIT"
    assert all(call.request.headers["Authorization"] == f"Bearer {SESSION}" for call in responses.calls)
    assert json.loads(responses.calls[1].request.body) == {"brokerOrderId": "25071400112229"}


@responses.activate
def test_the_documented_book_row_normalizes(build):
    services = build(**CREDENTIALS)
    client = client_for(services.config, "aliceblue")
    event = services.adapters["aliceblue"].event_from_payload(
        client.to_payload(BOOK_ROW), source="reconcile", received_at="2026-01-01T00:00:00.000000Z"
    )
    assert (event.order_id, event.status, event.side, event.symbol) == ("25071400112229", "REJECTED", "BUY", "ACC-EQ")
    assert (event.quantity, event.price, event.order_type, event.product) == (30, 1120.15, "LIMIT", "LONGTERM")
    assert event.reason.startswith("ORA:Price") and event.account_id == CLIENT


@responses.activate
def test_errors_are_typed(config):
    client = client_for(config, "aliceblue")
    responses.get(f"{BASE}/orders/book", status=401, json={"status": "Not_Ok", "message": "Unauthorized"})
    with pytest.raises(AuthExpired, match="log in again"):
        client.orders()
    responses.replace(responses.GET, f"{BASE}/orders/book", json={"status": "Not_Ok", "message": "Session Expired"})
    with pytest.raises(AuthExpired):
        client.orders()
    responses.replace(responses.GET, f"{BASE}/orders/book", json={"status": "Not_Ok", "message": "No Data"})
    assert client.orders() == []
    responses.replace(responses.GET, f"{BASE}/orders/book", body="<!DOCTYPE html><html></html>")
    with pytest.raises(BadResponse):
        client.orders()
    responses.post(f"{BASE}/orders/history", json=ok([]))
    with pytest.raises(OrderNotFound):
        client.history("25071400000000")


@responses.activate
@pytest.mark.parametrize("order_id", TRAVERSAL)
def test_traversal_shaped_ids_are_refused_before_any_request(config, order_id):
    with pytest.raises(BadOrderId, match="refused"):
        client_for(config, "aliceblue").history(order_id)
    assert len(responses.calls) == 0


def test_the_rate_stays_within_1800_per_15_minutes():
    """2 a second at most is 1800 in 15 minutes (docs/brokers.md §12)."""
    limit = client_base.parse_rate(CLIENTS["aliceblue"].rate)
    assert limit.amount / limit.get_expiry() * 900 <= 1800


@responses.activate
def test_a_reconciliation_finds_a_missed_order_with_its_history(build, admin_headers):
    oid = "25071400112300"
    history = [
        row("open", "14-Jul-2025 10:00:01", brokerOrderId=oid),
        row("complete", "14-Jul-2025 10:00:09", brokerOrderId=oid, filledQuantity=30, averageTradedPrice=1120.12),
    ]
    responses.get(f"{BASE}/orders/book", json=ok([history[-1]]))
    responses.post(f"{BASE}/orders/history", json=ok(history))
    services = build(**CREDENTIALS)
    result = reconcile_broker(services, "aliceblue", reason="test")
    run_pipeline(services)
    stored = api_client(services).get(f"/api/orders/aliceblue/{oid}", headers=admin_headers).get_json()
    assert result.error is None and result.orders_seen == 1
    assert stored["status"] == "FILLED" and stored["filled_quantity"] == 30
    assert [e["source"] for e in stored["events"]] == ["reconcile"] * len(stored["events"])
