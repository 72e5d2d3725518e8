"""The REST order-book clients against `responses`: auth headers and form bodies, shapes, typed errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest
import requests
import responses

from app.brokers import rest as client_base
from app.config import load_config
from app.reconcile.clients import AuthExpired, BadResponse, OrderNotFound, Unavailable, client_for, configured_brokers
from tests.support.env import make_env
from tests.support.fakes.rest import dhan_order, kite_lifecycle, kite_order, noren_order

CREDENTIALS = {
    "KITE_API_KEY": "kitekey",
    "KITE_ACCESS_TOKEN": "kitetoken",
    "DHAN_CLIENT_ID": "1000000003",
    "DHAN_ACCESS_TOKEN": "dhan.jwt.token",
    "NOREN_USER_ID": "FT0001",
    "NOREN_TOKEN": "noren-session-token",
}


@pytest.fixture
def config(tmp_path):
    return load_config(make_env("redis://127.0.0.1:6379/15", "sqlite:///:memory:", tmp_path, **CREDENTIALS))


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch):
    """Retries back off for real in production; here urllib3's sleeps are skipped."""
    monkeypatch.setattr(client_base, "BACKOFF_FACTOR", 0.0)
    monkeypatch.setattr(client_base, "BACKOFF_JITTER", 0.0)


def test_brokers_with_all_credentials_are_the_reconciled_ones(tmp_path, config):
    assert configured_brokers(config) == ("kite", "dhan", "flattrade")
    partial = load_config(make_env("redis://x", "sqlite://", tmp_path, KITE_API_KEY="k"))
    assert configured_brokers(partial) == () and client_for(partial, "kite") is None
    assert client_for(config, "jainam") is None


@responses.activate
def test_kite_sends_its_headers_and_sorts_history_by_time(config):
    client = client_for(config, "kite")
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


def test_kite_history_in_documented_order_keeps_same_second_rows_in_order(config):
    rows = kite_lifecycle("251128000000002")
    ordered = client_base.sort_by_time(
        rows, lambda r: client_base.parse_time(r["order_timestamp"], ("%Y-%m-%d %H:%M:%S",)), newest_first=False
    )
    assert [r["status"] for r in ordered] == [r["status"] for r in rows]


def test_kite_rows_with_account_id_become_payloads_with_user_id(config):
    payload = client_for(config, "kite").to_payload(kite_order("1", "OPEN", account="ZX9999"))
    assert payload["user_id"] == "ZX9999"


@responses.activate
def test_kite_expired_token_is_said_plainly(config):
    responses.get(
        "https://api.kite.trade/orders",
        status=403,
        json={"status": "error", "message": "Incorrect `api_key` or `access_token`.", "error_type": "TokenException"},
    )
    with pytest.raises(AuthExpired) as caught:
        client_for(config, "kite").orders()
    assert caught.value.message == "Kite access token expired or invalid: refresh KITE_ACCESS_TOKEN"
    assert "kitetoken" not in caught.value.message


@responses.activate
def test_kite_unknown_order_is_not_found(config):
    responses.get(
        "https://api.kite.trade/orders/9",
        status=400,
        json={"status": "error", "message": "Couldn't find that order.", "error_type": "InputException"},
    )
    with pytest.raises(OrderNotFound):
        client_for(config, "kite").history("9")


@responses.activate
def test_5xx_and_429_are_retried_then_served(config):
    responses.get("https://api.kite.trade/orders", status=503, json={})
    responses.get("https://api.kite.trade/orders", status=429, json={}, headers={"Retry-After": "0"})
    responses.get("https://api.kite.trade/orders", json={"status": "success", "data": []})
    assert client_for(config, "kite").orders() == []
    assert len(responses.calls) == 3


@responses.activate
def test_a_broker_that_keeps_failing_is_unavailable(config):
    for _ in range(10):
        responses.get("https://api.dhan.co/v2/orders", status=502, json={})
    with pytest.raises(Unavailable):
        client_for(config, "dhan").orders()
    assert len(responses.calls) == client_base.RETRIES + 1


@responses.activate
def test_timeouts_are_unavailable(config):
    responses.get("https://api.dhan.co/v2/orders", body=requests.exceptions.ConnectTimeout("slow"))
    with pytest.raises(Unavailable):
        client_for(config, "dhan").orders()


@responses.activate
def test_dhan_headers_rows_and_auth_error(config):
    row = dhan_order("112111182198", "PART_TRADED", filled=2, average=3401.5)
    responses.get("https://api.dhan.co/v2/orders", json=[row])
    responses.get("https://api.dhan.co/v2/orders/112111182198", json=row)
    client = client_for(config, "dhan")
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
def test_dhan_answer_that_is_not_a_list_is_a_bad_response(config):
    responses.get("https://api.dhan.co/v2/orders", json={"data": "surprise"})
    with pytest.raises(BadResponse):
        client_for(config, "dhan").orders()


@responses.activate
def test_noren_form_body_and_history_newest_first(config):
    base = "https://piconnect.flattrade.in/PiConnectAPI"
    rows = [
        noren_order("24112800001", "PENDING", at="10:30:00 28-11-2026", report="NewAck"),
        noren_order("24112800001", "OPEN", at="10:30:01 28-11-2026", report="New"),
        noren_order("24112800001", "COMPLETE", filled=50, average="1400.00", at="10:31:00 28-11-2026", report="Fill"),
    ]
    responses.post(f"{base}/OrderBook", json=[dict(rows[-1], stat="Ok")])
    responses.post(f"{base}/SingleOrdHist", json=[dict(r, stat="Ok") for r in reversed(rows)])
    client = client_for(config, "flattrade")
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
def test_noren_errors(config):
    base = "https://piconnect.flattrade.in/PiConnectAPI"
    client = client_for(config, "flattrade")
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


def test_urls_come_from_the_environment(tmp_path):
    config = load_config(
        make_env("redis://x", "sqlite://", tmp_path, KITE_API_URL="http://127.0.0.1:9/kite/", **CREDENTIALS)
    )
    assert client_for(config, "kite").base_url == "http://127.0.0.1:9/kite"
    assert client_for(config, "flattrade").base_url == "https://piconnect.flattrade.in/PiConnectAPI"


def test_rate_limit_waits_for_the_window(config):
    client = client_for(config, "kite")
    client._limiter.clear(client._rate, "kite")  # the window is shared across runs: start from an empty one
    waits = []
    client._sleep = lambda seconds: (waits.append(seconds), client._limiter.clear(client._rate, "kite"))
    for _ in range(11):
        client.wait_turn()
    assert len(waits) == 1 and 0 < waits[0] <= 1.0
