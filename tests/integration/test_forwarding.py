"""Forwarding: Standard Webhooks signatures, retry decisions, Retry-After, 410, dead letter and redrive."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import responses
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from app import create_app
from app.config import load_config
from app.db import consumers, deliveries
from app.delivery import next_delay, parse_retry_after, resync_pending
from app.services import set_services
from tests.support.env import ADMIN_TOKEN, flush_test_db, make_env
from tests.support.helpers import forwarding_services, load_fixture, post_kite, run_pipeline
from workers import signing

CONSUMER = "http://consumer.test/hook"
OTHER = "http://other.test/hook"
SEED = load_fixture("kite_postback_complete.json")
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
KEY_A = "whsec_" + base64.b64encode(b"a" * 32).decode()
KEY_B = "whsec_" + base64.b64encode(b"b" * 32).decode()


# Signing


def test_signature_is_hmac_of_id_timestamp_body_under_the_decoded_secret():
    body = b'{"id":"evt_1","status":"FILLED"}'
    header = signing.sign(signing.signing_keys(KEY_A), "evt_1", 1700000000, body)
    expected = base64.b64encode(hmac.new(b"a" * 32, b"evt_1.1700000000." + body, hashlib.sha256).digest()).decode()
    assert header == "v1," + expected


def test_reference_library_verifies_our_headers():
    body = signing.event_body({"id": "evt_2", "symbol": "NIFTY₹"})
    headers = signing.webhook_headers(signing.signing_keys(KEY_A), "evt_2", body)
    assert Webhook(KEY_A).verify(body, headers)["id"] == "evt_2"


def test_rotation_signs_with_every_key():
    body = b"{}"
    headers = signing.webhook_headers(signing.signing_keys(f"{KEY_A} {KEY_B}"), "evt_3", body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for key in (KEY_A, KEY_B):
        Webhook(key).verify(body, headers)


# Retry decisions


def test_schedule_is_followed_with_small_jitter_and_then_spent():
    schedule = (5.0, 300.0)
    assert 4.5 <= next_delay(schedule, 1, None) <= 5.5
    assert 270 <= next_delay(schedule, 2, None) <= 330
    assert next_delay(schedule, 3, None) is None


def test_retry_after_is_honoured():
    assert next_delay((1.0,), 1, 120.0) == 120.0
    assert parse_retry_after("30") == 30.0
    soon = (datetime.now(UTC) + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 80 <= parse_retry_after(soon) <= 91
    assert parse_retry_after("whenever") is None


def test_default_schedule_is_svix_like():
    config = load_config(make_env("redis://127.0.0.1:6379/9", "sqlite://", __import__("pathlib").Path("/tmp")))
    assert config.forward_retry_schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert config.forward_timeout == 5.0


# Through the pipeline (real Redis, real RQ, SQLite; outbound HTTP mocked with responses)


@pytest.fixture
def fwd(redis_client, redis_url, sqlite_url, tmp_path):
    def build(urls=(CONSUMER,), schedule="0,0"):
        return forwarding_services(
            redis_url, sqlite_url, tmp_path, FORWARD_URLS=",".join(urls), FORWARD_RETRY_SCHEDULE=schedule
        )

    yield build
    set_services(None)


def post(client, **changes) -> str:
    return post_kite(client, SEED, **changes)


def deliveries_of(services, **where):
    with services.engine.connect() as conn:
        query = sa.select(deliveries)
        for key, value in where.items():
            query = query.where(getattr(deliveries.c, key) == value)
        return conn.execute(query.order_by(deliveries.c.id)).all()


@responses.activate
def test_500_twice_then_200_is_delivered_on_the_third_attempt_with_one_webhook_id(fwd):
    services, client = fwd()
    for status in (500, 500, 200):
        responses.post(CONSUMER, status=status)
    event_id = post(client)
    run_pipeline(services)
    calls = responses.calls
    assert len(calls) == 3
    assert {c.request.headers["webhook-id"] for c in calls} == {event_id}
    for call in calls:
        Webhook(services.config.forward_secret).verify(call.request.body, dict(call.request.headers))
    assert json.loads(calls[0].request.body)["sequence"] == 1
    (row,) = deliveries_of(services)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 3, 200)
    log = client.get(f"/api/deliveries/{row.id}", headers=AUTH).get_json()["attempt_log"]
    assert [a["status_code"] for a in log] == [500, 500, 200]
    assert all(a["latency_ms"] is not None and a["attempted_at"] for a in log)


@responses.activate
def test_always_failing_consumer_is_dead_lettered_after_the_schedule_and_can_be_redriven(fwd):
    services, client = fwd()
    responses.post(CONSUMER, status=500)
    post(client)
    run_pipeline(services)
    assert len(responses.calls) == 3  # first attempt + one per schedule entry
    failed = client.get("/api/deliveries?status=failed", headers=AUTH).get_json()["deliveries"]
    assert len(failed) == 1 and failed[0]["last_error"] == "answered 500"
    responses.replace(responses.POST, CONSUMER, status=204)
    answer = client.post(f"/api/deliveries/{failed[0]['id']}/retry", headers=AUTH)
    assert answer.status_code == 202
    run_pipeline(services)
    assert len(responses.calls) == 4
    delivered = client.get("/api/deliveries?status=delivered", headers=AUTH).get_json()["deliveries"]
    assert len(delivered) == 1 and delivered[0]["attempts"] == 4  # attempts keep counting across a redrive
    assert [a["status_code"] for a in delivered[0]["attempt_log"]] == [500, 500, 500, 204]
    again = client.post(f"/api/deliveries/{failed[0]['id']}/retry", headers=AUTH)
    assert again.status_code == 409 and "delivered" in again.get_json()["error"]


@responses.activate
def test_timeouts_and_connection_errors_are_retried(fwd):
    import requests

    services, client = fwd()
    responses.post(CONSUMER, body=requests.ConnectTimeout("slow"))
    responses.post(CONSUMER, body=requests.ConnectionError("refused"))
    responses.post(CONSUMER, status=200)
    post(client)
    run_pipeline(services)
    (row,) = deliveries_of(services)
    assert (row.status, row.attempts) == ("delivered", 3)


@responses.activate
def test_retry_after_on_429_pushes_the_next_attempt_out(fwd):
    services, client = fwd(schedule="0")
    responses.post(CONSUMER, status=429, headers={"Retry-After": "120"})
    post(client)
    run_pipeline(services)
    (row,) = deliveries_of(services)
    assert row.status == "pending" and row.attempts == 1
    due_in = row.next_attempt_at.replace(tzinfo=UTC).timestamp() - time.time()
    assert 100 < due_in <= 121


@responses.activate
def test_410_gone_disables_that_consumer_only(fwd, caplog):
    services, client = fwd(urls=(CONSUMER, OTHER))
    responses.post(CONSUMER, status=410)
    responses.post(OTHER, status=200)
    post(client)
    run_pipeline(services)
    assert "410 Gone" in caplog.text and "DISABLED" in caplog.text
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(consumers.c.url).where(consumers.c.disabled_at.is_not(None))).scalar() == CONSUMER
    later = post(client, status="REJECTED", filled_quantity=0)
    run_pipeline(services)
    assert [c.request.url for c in responses.calls].count(CONSUMER) == 1
    assert [c.request.url for c in responses.calls].count(OTHER) == 2
    # Not silently dropped: the later event waits in the dead letter for a redrive after re-enabling.
    (skipped,) = deliveries_of(services, event_id=later, url=CONSUMER)
    assert skipped.status == "failed" and "consumer disabled" in skipped.last_error


@responses.activate
def test_cli_redrives_failed_deliveries_of_a_consumer(fwd):
    services, client = fwd()
    responses.post(CONSUMER, status=503)
    post(client)
    post(client, status="REJECTED", filled_quantity=0)
    run_pipeline(services)
    assert len(deliveries_of(services, status="failed")) == 2
    responses.replace(responses.POST, CONSUMER, status=200)
    runner = create_app(services.config, services).test_cli_runner()
    assert (
        "2 failed deliveries would be redriven"
        in runner.invoke(args=["redrive", "--consumer", CONSUMER, "--dry-run"]).output
    )
    assert "redrove 2" in runner.invoke(args=["redrive", "--consumer", CONSUMER]).output
    run_pipeline(services)
    assert len(deliveries_of(services, status="delivered")) == 2


def test_deliveries_api_needs_the_bearer_token_and_valid_filters(client):
    assert client.get("/api/deliveries").status_code == 401
    assert client.post("/api/deliveries/1/retry").status_code == 401
    assert client.get("/api/deliveries?status=lost", headers=AUTH).status_code == 400
    assert client.post("/api/deliveries/999/retry", headers=AUTH).status_code == 404


@responses.activate
def test_pending_deliveries_come_back_after_redis_loses_them(fwd):
    from workers.pipeline import Pipeline, ensure_group

    services, client = fwd(schedule="0")
    responses.post(CONSUMER, status=200)
    post(client)
    post(client, status="REJECTED", filled_quantity=0)
    loop = Pipeline(services, consumer="test-store-only")
    ensure_group(services.redis)
    entries = services.redis.xreadgroup("persist", "test-store-only", {"oh:ingest": ">"}, count=10)[0][1]
    loop.forwarder.plan = lambda batch: ([], {})  # store both events and their deliveries, forward nothing...
    assert loop.store_and_forward(entries) == 2
    loop.close()
    flush_test_db(services.redis)  # ...then Redis loses its copy of what is due (this run keeps its claim)
    assert len(deliveries_of(services, status="pending")) == 2
    assert resync_pending(services.redis, services.engine, page=1) == 2
    run_pipeline(services)
    assert len(deliveries_of(services, status="delivered")) == 2 and len(responses.calls) == 2
