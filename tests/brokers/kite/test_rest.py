"""Kite's REST order book (GET /orders, /orders/{id}) against `responses`: headers, history order, errors."""

from __future__ import annotations

import pytest
import responses

from app.brokers import rest as client_base
from app.brokers.rest import BadOrderId
from app.reconcile.clients import AuthExpired, OrderNotFound, client_for
from tests.support.fakes.rest import kite_lifecycle, kite_order
from tests.support.rest_clients import TRAVERSAL


@responses.activate
def test_kite_sends_its_headers_and_sorts_history_by_time(rest_config):
    client = client_for(rest_config, "kite")
    rows = kite_lifecycle("251128000000001")
    scrambled = [rows[4], rows[0], rows[3], rows[1], rows[2]]  # position says nothing; times and ties do
    responses.get("https://api.kite.trade/orders", json={"status": "success", "data": [rows[-1]]})
    responses.get("https://api.kite.trade/orders/251128000000001", json={"status": "success", "data": scrambled})
    assert client.orders() == [rows[-1]]
    history = client.history("251128000000001")
    assert history[-1]["status"] == "COMPLETE" and history[0]["status"] in ("PUT ORDER REQ RECEIVED", "OPEN PENDING")
    assert [r["status"] for r in client.history("251128000000001")][-1] == "COMPLETE"
    for call in responses.calls:
        assert call.request.headers["X-Kite-Version"] == "3"
        assert call.request.headers["Authorization"] == "token kitekey:kitetoken"


def test_kite_history_in_documented_order_keeps_same_second_rows_in_order(rest_config):
    rows = kite_lifecycle("251128000000002")
    ordered = client_base.sort_by_time(
        rows, lambda r: client_base.parse_time(r["order_timestamp"], ("%Y-%m-%d %H:%M:%S",)), newest_first=False
    )
    assert [r["status"] for r in ordered] == [r["status"] for r in rows]


def test_kite_rows_with_account_id_become_payloads_with_user_id(rest_config):
    payload = client_for(rest_config, "kite").to_payload(kite_order("1", "OPEN", account="ZX9999"))
    assert payload["user_id"] == "ZX9999"


@responses.activate
def test_kite_expired_token_is_said_plainly(rest_config):
    responses.get(
        "https://api.kite.trade/orders",
        status=403,
        json={"status": "error", "message": "Incorrect `api_key` or `access_token`.", "error_type": "TokenException"},
    )
    with pytest.raises(AuthExpired) as caught:
        client_for(rest_config, "kite").orders()
    assert caught.value.message == "Kite access token expired or invalid: refresh KITE_ACCESS_TOKEN"
    assert "kitetoken" not in caught.value.message


@responses.activate
def test_kite_unknown_order_is_not_found(rest_config):
    responses.get(
        "https://api.kite.trade/orders/9",
        status=400,
        json={"status": "error", "message": "Couldn't find that order.", "error_type": "InputException"},
    )
    with pytest.raises(OrderNotFound):
        client_for(rest_config, "kite").history("9")


@responses.activate
@pytest.mark.parametrize("order_id", TRAVERSAL)
def test_kite_refuses_traversal_shaped_ids_before_any_request(rest_config, order_id):
    """`../../user/margins` once made the client GET /user/margins with the access token."""
    with pytest.raises(BadOrderId, match="refused"):
        client_for(rest_config, "kite").history(order_id)
    assert len(responses.calls) == 0


@responses.activate
def test_kite_escapes_an_order_id_as_one_path_segment(rest_config):
    responses.get("https://api.kite.trade/orders/%252e%252e", json={"status": "success", "data": []})
    responses.get("https://api.kite.trade/orders/a%3Fb%23c", json={"status": "success", "data": []})
    client = client_for(rest_config, "kite")
    assert client.history("%2e%2e") == [] and client.history("a?b#c") == []
    assert [call.request.path_url for call in responses.calls] == ["/orders/%252e%252e", "/orders/a%3Fb%23c"]
