"""HTTP edges: size limit, malformed bodies, unknown URLs, methods, health and the admin API's gate."""

from __future__ import annotations

import json

import pytest

from tests.support.env import KITE_SECRET, POSTBACK_TOKEN
from tests.support.helpers import load_fixture, sign_kite

SEED = load_fixture("kite_postback_complete.json")


def assert_json_error(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    for word in words:
        assert word in error


def test_body_over_64_kib_is_413(client, redis_client):
    payload = sign_kite(dict(SEED, tag="x" * (65 * 1024)), KITE_SECRET)
    assert_json_error(client.post("/postbacks/kite", data=json.dumps(payload)), 413, "64 KiB")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", ("empty",)),
        (b"{", ("not valid JSON",)),
        (b"[1, 2]", ("JSON object",)),
        (b"\xff\xfe\x00", ("UTF-8",)),
        (b'{"order_id": NaN}', ("NaN",)),
        (b"[" * 5000 + b"]" * 5000, ("nested too deeply",)),
        (b"order_id=1&status=COMPLETE", ("not valid JSON",)),
    ],
)
def test_malformed_bodies_are_400(client, redis_client, body, words):
    assert_json_error(client.post("/postbacks/kite", data=body), 400, *words)
    assert_json_error(client.post(f"/postbacks/dhan/{POSTBACK_TOKEN}", data=body), 400)


def test_kite_fields_of_the_wrong_type_are_400_after_a_valid_checksum(client, redis_client):
    payload = sign_kite(dict(SEED, quantity="ten"), KITE_SECRET)
    assert_json_error(client.post("/postbacks/kite", data=json.dumps(payload)), 400, "quantity")
    payload = sign_kite(dict(SEED, filled_quantity=10**30), KITE_SECRET)
    assert_json_error(client.post("/postbacks/kite", data=json.dumps(payload)), 400, "filled_quantity")


def test_unknown_broker_and_wrong_method_are_json(client):
    assert_json_error(client.post("/postbacks/nosuchbroker/abc"), 404, "nosuchbroker")
    assert_json_error(client.get("/postbacks/kite"), 405)
    assert_json_error(client.get("/nowhere"), 404)


def test_health_and_readiness(client):
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    # /readyz also checks the ingest backlog and a stalled pipeline
    assert ready.status_code == 200 and ready.get_json()["checks"] == dict.fromkeys(
        ("database", "redis", "ingest", "pipeline"), "ok"
    )


def test_readyz_is_503_when_the_database_is_gone(app, services):
    import sqlalchemy as sa

    services.engine = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    app.extensions["orderhook"] = services
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503 and answer.get_json()["checks"]["database"].startswith("unavailable")


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc", "Bearer"])
def test_admin_api_needs_the_bearer_token(client, header):
    headers = {"Authorization": header} if header else {}
    for url in ("/api/orders", "/api/orders/kite/1", "/api/deliveries"):
        assert_json_error(client.get(url, headers=headers), 401, "Bearer")


def test_orders_filters_are_checked(client, admin_headers):
    assert_json_error(client.get("/api/orders?limit=0", headers=admin_headers), 400, "limit")
    assert_json_error(client.get("/api/orders?status=DONE", headers=admin_headers), 400, "status")
    assert_json_error(client.get("/api/orders?broker=nosuchbroker", headers=admin_headers), 400, "broker")
    assert_json_error(client.get("/api/orders/kite/nope", headers=admin_headers), 404, "nope")
    assert client.get("/api/orders?limit=5&status=filled", headers=admin_headers).get_json() == {
        "orders": [],
        "count": 0,
        "next_cursor": None,
    }


def test_jainam_webhooks_need_the_path_token(client):
    # Jainam takes webhooks at /postbacks/jainam/<token> (tests/brokers/jainam/test_postbacks.py).
    assert_json_error(client.post("/postbacks/jainam", data=b"{}"), 404, "jainam")


@pytest.mark.parametrize(
    "url",
    [
        "/api/orders?limit=²",
        "/api/deliveries/99999999999999999999",
        "/api/orders?account_id=a%00b",
        "/api/orders/kite/a%00",
    ],
)
def test_odd_admin_queries_are_4xx(client, admin_headers, url):
    answer = client.get(url, headers=admin_headers)
    assert 400 <= answer.status_code < 500 and answer.is_json
    assert client.post("/api/deliveries/99999999999999999999/retry", headers=admin_headers).status_code == 404


def test_an_internal_error_does_not_log_the_postback_token(client, redis_client, caplog, monkeypatch):
    from app.brokers.dhan.adapter import DhanAdapter

    def boom(*_args, **_kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(DhanAdapter, "normalize", boom)
    answer = client.post(f"/postbacks/dhan/{POSTBACK_TOKEN}", data=b'{"orderId": "1", "orderStatus": "PENDING"}')
    assert answer.status_code == 500 and answer.is_json
    assert "/postbacks/<broker>/<token>" in caplog.text and POSTBACK_TOKEN not in caplog.text


def test_limit_over_the_maximum_is_served_as_the_maximum(client, admin_headers):
    assert client.get("/api/orders?limit=100000", headers=admin_headers).status_code == 200


def test_negative_quantities_are_400(client, redis_client):
    payload = sign_kite(dict(SEED, quantity=-5), KITE_SECRET)
    assert_json_error(client.post("/postbacks/kite", data=json.dumps(payload)), 400, "quantity")
