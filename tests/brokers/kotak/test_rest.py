"""Kotak Neo's order book against `responses`: the session's baseUrl and headers, shapes, errors, a reconciliation."""

from __future__ import annotations

import copy
import json
from urllib.parse import parse_qs

import pytest
import responses

from app.brokers import rest as client_base
from app.brokers.rest import BadOrderId
from app.config import load_config
from app.reconcile.clients import AuthExpired, OrderNotFound, client_for
from app.reconcile.engine import reconcile_broker
from tests.brokers.kotak.samples import BOOK, HISTORY
from tests.support.env import make_env
from tests.support.fakes.harness import ServiceBuilder, api_client
from tests.support.helpers import run_pipeline
from tests.support.rest_clients import TRAVERSAL

BASE = "https://e21.kotaksecurities.com"
TOKEN, SID = "eyJtrade.kotak.rest", "sid-for-the-rest-tests-01"
CREDENTIALS = {"KOTAK_UCC": "XP6M4", "KOTAK_SESSION": f"{TOKEN}|{SID}|{BASE}"}


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


@responses.activate
def test_book_and_history_at_the_sessions_base_url_with_its_headers(config):
    responses.get(f"{BASE}/quick/user/orders", json=BOOK)
    responses.post(f"{BASE}/quick/order/history", json=HISTORY)
    client = client_for(config, "kotak")
    assert [client.order_id(r) for r in client.orders()] == ["250720000007242", "250720000007588"]
    history = client.history("250720000007242")
    assert [r["ordSt"] for r in history] == [
        "open pending",
        "rejected",
    ]  # the same second: the published order reversed
    for call in responses.calls:
        assert (call.request.headers["Auth"], call.request.headers["Sid"]) == (TOKEN, SID)
        assert call.request.headers["neo-fin-key"] == "neotradeapi"
    form = parse_qs(responses.calls[1].request.body)
    assert json.loads(form["jData"][0]) == {"nOrdNo": "250720000007242"}


@responses.activate
def test_a_session_without_a_base_url_uses_kotak_api_url(tmp_path):
    config = load_config(
        make_env(
            "redis://127.0.0.1:6379/15",
            "sqlite:///:memory:",
            tmp_path,
            KOTAK_UCC="XP6M4",
            KOTAK_SESSION=f"{TOKEN}|{SID}",
        )
    )
    responses.get("https://cis.kotaksecurities.com/quick/user/orders", json=BOOK)
    assert len(client_for(config, "kotak").orders()) == 2


def test_the_documented_book_rows_normalize(build):
    services = build(**CREDENTIALS)
    adapter = services.adapters["kotak"]
    rejected, amo = (adapter.event_from_payload(r, source="reconcile", received_at="x") for r in BOOK["data"])
    assert (rejected.status, rejected.symbol, rejected.order_type, rejected.side) == (
        "REJECTED",
        "ITBEES-EQ",
        "LIMIT",
        "BUY",
    )
    assert (amo.status, amo.broker_status) == ("PENDING", "AFTER MARKET ORDER REQ RECEIVED")
    history = [adapter.event_from_payload(r, source="reconcile", received_at="x") for r in HISTORY["data"]]
    assert history[0].reason == "ADAPTER is down" and history[0].exchange_time == "2025-07-20T14:51:42.000000Z"


@responses.activate
def test_errors_are_typed(config):
    client = client_for(config, "kotak")
    responses.get(f"{BASE}/quick/user/orders", status=401, json={"stat": "Not_Ok", "emsg": "Unauthorized"})
    with pytest.raises(AuthExpired, match="log in again"):
        client.orders()
    responses.replace(
        responses.GET, f"{BASE}/quick/user/orders", json={"stat": "Not_Ok", "stCode": 401, "emsg": "Invalid Sid"}
    )
    with pytest.raises(AuthExpired):
        client.orders()
    responses.replace(responses.GET, f"{BASE}/quick/user/orders", json={"stat": "Not_Ok", "emsg": "No Data"})
    assert client.orders() == []
    responses.post(f"{BASE}/quick/order/history", json={"stat": "Not_Ok", "emsg": "No Data"})
    with pytest.raises(OrderNotFound):
        client.history("1")


@responses.activate
@pytest.mark.parametrize("order_id", TRAVERSAL)
def test_traversal_shaped_ids_are_refused_before_any_request(config, order_id):
    with pytest.raises(BadOrderId, match="refused"):
        client_for(config, "kotak").history(order_id)
    assert len(responses.calls) == 0


@responses.activate
def test_a_reconciliation_finds_a_missed_order_with_its_history(build, admin_headers):
    oid = "250720000009001"
    rows = [
        {"nOrdNo": oid, "flDtTm": "20-Jul-2025 10:00:01", "ordSt": "open pending", "qty": 5, "fldQty": 0},
        {"nOrdNo": oid, "flDtTm": "20-Jul-2025 10:00:02", "ordSt": "open", "qty": 5, "fldQty": 0, "prc": "101.00"},
        {
            "nOrdNo": oid,
            "flDtTm": "20-Jul-2025 10:00:09",
            "ordSt": "complete",
            "qty": 5,
            "fldQty": 5,
            "avgPrc": "101.00",
        },
    ]
    responses.get(f"{BASE}/quick/user/orders", json={"stat": "Ok", "stCode": 200, "data": [copy.deepcopy(rows[-1])]})
    responses.post(f"{BASE}/quick/order/history", json={"stat": "Ok", "stCode": 200, "data": list(reversed(rows))})
    services = build(**CREDENTIALS)
    result = reconcile_broker(services, "kotak", reason="test")
    run_pipeline(services)
    stored = api_client(services).get(f"/api/orders/kotak/{oid}", headers=admin_headers).get_json()
    assert result.error is None and result.orders_seen == 1
    assert stored["status"] == "FILLED" and stored["filled_quantity"] == 5
    assert [e["broker_status"] for e in stored["events"]] == ["OPEN PENDING", "OPEN", "COMPLETE"]
