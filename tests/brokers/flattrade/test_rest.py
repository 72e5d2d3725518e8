"""The Noren REST order book (a form body with jData) against `responses`: history order and errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest
import responses

from app.brokers.rest import BadOrderId
from app.reconcile.clients import AuthExpired, OrderNotFound, client_for
from tests.support.fakes.rest import noren_order
from tests.support.rest_clients import TRAVERSAL


@responses.activate
def test_noren_form_body_and_history_newest_first(rest_config):
    base = "https://piconnect.flattrade.in/PiConnectAPI"
    rows = [
        noren_order("24112800001", "PENDING", at="10:30:00 28-11-2026", report="NewAck"),
        noren_order("24112800001", "OPEN", at="10:30:01 28-11-2026", report="New"),
        noren_order("24112800001", "COMPLETE", filled=50, average="1400.00", at="10:31:00 28-11-2026", report="Fill"),
    ]
    responses.post(f"{base}/OrderBook", json=[dict(rows[-1], stat="Ok")])
    responses.post(f"{base}/SingleOrdHist", json=[dict(r, stat="Ok") for r in reversed(rows)])
    client = client_for(rest_config, "flattrade")
    assert [r["norenordno"] for r in client.orders()] == ["24112800001"]
    history = client.history("24112800001")
    assert [r["status"] for r in history] == ["PENDING", "OPEN", "COMPLETE"]
    assert client.to_payload(history[-1])["reporttype"] == "Fill"
    # norentm 10:31:00 IST = 05:01:00 UTC, in the feed's epoch-seconds `tm`
    assert client.to_payload(history[-1])["tm"] == str(int(datetime(2026, 11, 28, 5, 1, tzinfo=UTC).timestamp()))
    book_form = parse_qs(responses.calls[0].request.body)
    assert json.loads(book_form["jData"][0]) == {"uid": "FT0001", "ordersource": "API"}
    assert book_form["jKey"] == ["noren-session-token"]
    hist_form = parse_qs(responses.calls[1].request.body)
    assert json.loads(hist_form["jData"][0]) == {"uid": "FT0001", "ordersource": "API", "norenordno": "24112800001"}


@responses.activate
def test_noren_errors(rest_config):
    base = "https://piconnect.flattrade.in/PiConnectAPI"
    client = client_for(rest_config, "flattrade")
    responses.post(f"{base}/OrderBook", json={"stat": "Not_Ok", "emsg": "no data"})
    assert client.orders() == []
    responses.replace(
        responses.POST, f"{base}/OrderBook", json={"stat": "Not_Ok", "emsg": "Session Expired : Invalid Session Key"}
    )
    with pytest.raises(AuthExpired, match="refresh NOREN_TOKEN"):
        client.orders()
    responses.post(f"{base}/SingleOrdHist", json={"stat": "Not_Ok", "emsg": 'Error Occurred : 5 "no data"'})
    with pytest.raises(OrderNotFound):
        client.history("1")


@responses.activate
@pytest.mark.parametrize("order_id", TRAVERSAL)
def test_noren_refuses_traversal_shaped_ids_before_any_request(rest_config, order_id):
    with pytest.raises(BadOrderId, match="refused"):
        client_for(rest_config, "flattrade").history(order_id)
    assert len(responses.calls) == 0
