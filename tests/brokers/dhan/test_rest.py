"""Dhan's REST order book against `responses`: headers, rows and typed errors."""

from __future__ import annotations

import pytest
import responses

from app.brokers.rest import BadOrderId
from app.reconcile.clients import AuthExpired, BadResponse, client_for
from tests.support.fakes.rest import dhan_order
from tests.support.rest_clients import TRAVERSAL


@responses.activate
def test_dhan_headers_rows_and_auth_error(rest_config):
    row = dhan_order("112111182198", "PART_TRADED", filled=2, average=3401.5)
    responses.get("https://api.dhan.co/v2/orders", json=[row])
    responses.get("https://api.dhan.co/v2/orders/112111182198", json=row)
    client = client_for(rest_config, "dhan")
    assert client.orders() == [row] and client.history("112111182198") == [row]
    for call in responses.calls:
        assert call.request.headers["access-token"] == "dhan.jwt.token"
        assert call.request.headers["client-id"] == "1000000003"
    responses.get(
        "https://api.dhan.co/v2/orders",
        status=401,
        json={
            "errorType": "Invalid_Authentication",
            "errorCode": "DH-901",
            "errorMessage": "Client ID or access token invalid",
        },
    )
    responses.replace(responses.GET, "https://api.dhan.co/v2/orders", status=401, json={"errorCode": "DH-901"})
    with pytest.raises(AuthExpired, match="refresh DHAN_ACCESS_TOKEN"):
        client.orders()


@responses.activate
def test_dhan_answer_that_is_not_a_list_is_a_bad_response(rest_config):
    responses.get("https://api.dhan.co/v2/orders", json={"data": "surprise"})
    with pytest.raises(BadResponse):
        client_for(rest_config, "dhan").orders()


@responses.activate
@pytest.mark.parametrize("order_id", TRAVERSAL)
def test_dhan_refuses_traversal_shaped_ids_before_any_request(rest_config, order_id):
    with pytest.raises(BadOrderId, match="refused"):
        client_for(rest_config, "dhan").history(order_id)
    assert len(responses.calls) == 0


@responses.activate
def test_dhan_escapes_an_order_id_as_one_path_segment(rest_config):
    row = dhan_order("%2e%2e", "PENDING")
    responses.get("https://api.dhan.co/v2/orders/%252e%252e", json=row)
    assert client_for(rest_config, "dhan").history("%2e%2e") == [row]
    assert responses.calls[0].request.path_url == "/v2/orders/%252e%252e"
