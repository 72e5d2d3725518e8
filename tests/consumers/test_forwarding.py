"""Consumers in the pipeline: filters, switched off, removed, per-consumer secrets and rotation, rq jobs run by a
real RQ SimpleWorker, redis_stream entries read with XREADGROUP, test deliveries and replay."""

from __future__ import annotations

import json
import textwrap

import pytest
import responses
import sqlalchemy as sa
from rq import Queue, SimpleWorker
from standardwebhooks.webhooks import Webhook

from app.consumers.store import ConsumerStore
from app.db import deliveries, events, orders
from app.redis_keys import CONSUMER_TESTS_KEY
from app.services import set_services
from app.store import QueuedEvent, persist_batch
from tests.support.env import ADMIN_TOKEN
from tests.support.helpers import forwarding_services, load_fixture, post_kite, run_pipeline

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SEED = load_fixture("kite_postback_complete.json")
URL_A = "http://a.test/hook"
URL_B = "http://b.test/hook"


@pytest.fixture
def fwd(redis_client, redis_url, sqlite_url, tmp_path):
    services, client = forwarding_services(redis_url, sqlite_url, tmp_path, FORWARD_RETRY_SCHEDULE="0,0")
    yield services, client
    set_services(None)
    services.ingestor.close()
    services.engine.dispose()


def add(client, **body) -> dict:
    answer = client.post("/api/consumers", data=json.dumps(body), headers=AUTH, content_type="application/json")
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def patch(client, cid: str, **body) -> dict:
    answer = client.patch(f"/api/consumers/{cid}", data=json.dumps(body), headers=AUTH, content_type="application/json")
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def deliveries_of(services, cid: str) -> list:
    with services.engine.connect() as conn:
        return conn.execute(sa.select(deliveries).where(deliveries.c.consumer_id == cid)).all()


def order(client, n: int, account: str = "A1", status: str = "COMPLETE") -> str:
    return post_kite(client, SEED, order_id=f"2403{n:08d}", user_id=account, status=status)


# Routing (SQLite and PostgreSQL)


def _event(n: int, account: str, status: str = "OPEN") -> QueuedEvent:
    event = {
        "id": f"evt_{n:032x}",
        "broker": "kite",
        "source": "postback",
        "account_id": account,
        "order_id": f"o{n}",
        "status": status,
        "broker_status": status,
        "received_at": "2026-12-04T09:00:00.000000Z",
        "raw": {},
    }
    return QueuedEvent(event, b"{}")


def test_each_account_routed_to_its_own_consumer_only(db_services):
    store = ConsumerStore(db_services.config, db_services.engine)
    filters_a = {"accounts": ["A1"]}
    from app.consumers.input import filters

    a, _ = store.create("http", url=URL_A, filters=filters(filters_a))
    b, _ = store.create("http", url=URL_B, filters=filters({"accounts": ["B2"], "statuses": ["FILLED"]}))
    every, _ = store.create("redis_stream", stream="all-orders")
    off, _ = store.create("redis_stream", stream="off", enabled=False)
    stored = persist_batch(
        db_services.engine, [_event(1, "A1"), _event(2, "B2"), _event(3, "B2", "FILLED"), _event(4, "C3")]
    )
    routed = sorted((d.consumer_id, d.event_id[-1]) for d in stored.deliveries)
    assert routed == sorted(
        [(a.id, "1"), (b.id, "3"), (every.id, "1"), (every.id, "2"), (every.id, "3"), (every.id, "4")]
    )
    assert not deliveries_of(db_services, off.id)
    assert {d.url for d in stored.deliveries if d.consumer_id == every.id} == {"redis-stream://all-orders"}


# HTTP: each consumer's own secret, rotation, switched off, removed


@responses.activate
def test_http_consumers_sign_with_their_own_secret_and_both_during_a_rotation(fwd):
    services, client = fwd
    responses.post(URL_A, status=200)
    responses.post(URL_B, status=200)
    a = add(client, type="http", url=URL_A, filters={"accounts": ["A1"]})
    b = add(client, type="http", url=URL_B, filters={"accounts": ["B2"]})
    first = order(client, 1, "A1")
    order(client, 2, "B2")
    run_pipeline(services)
    by_url = {call.request.url: call.request for call in responses.calls}
    assert set(by_url) == {URL_A, URL_B}
    sent_a = by_url[URL_A]
    assert sent_a.headers["webhook-id"] == first
    Webhook(a["secret"]).verify(sent_a.body, dict(sent_a.headers))
    Webhook(b["secret"]).verify(by_url[URL_B].body, dict(by_url[URL_B].headers))
    with pytest.raises(Exception):  # noqa: B017 - the library raises WebhookVerificationError
        Webhook(b["secret"]).verify(sent_a.body, dict(sent_a.headers))

    rotated = client.post(f"/api/consumers/{a['id']}/secret", headers=AUTH).get_json()["secret"]
    responses.calls.reset()
    order(client, 3, "A1")
    run_pipeline(services)
    (call,) = responses.calls
    assert len(call.request.headers["webhook-signature"].split(" ")) == 2
    for key in (a["secret"], rotated):
        Webhook(key).verify(call.request.body, dict(call.request.headers))
    shown = client.get(f"/api/consumers/{a['id']}", headers=AUTH).get_json()
    assert shown["counts"] == {"delivered": 2, "pending": 0, "failed": 0}
    assert shown["latency_ms"]["p50"] is not None and shown["latency_ms"]["p99"] >= shown["latency_ms"]["p50"]


@responses.activate
def test_switched_off_gets_nothing_new_and_keeps_its_pending_until_switched_on(fwd, redis_client):
    services, client = fwd
    responses.post(URL_A, status=500)
    a = add(client, type="http", url=URL_A)
    order(client, 1)
    loop_services = services
    from workers.pipeline import Pipeline, ensure_group

    loop = Pipeline(loop_services, consumer="test-run", claim_idle_ms=0)
    ensure_group(redis_client)
    try:
        loop.step(None)
        loop.forwarder.wait_idle(10)
        assert [d.status for d in deliveries_of(services, a["id"])] == ["pending"]  # retried: schedule 0,0
        patch(client, a["id"], enabled=False)
        loop.forwarder.directory.forget()
        order(client, 2)
        loop.step(None)
        for _ in range(5):
            loop.forwarder.scan()
            loop.forwarder.wait_idle(10)
        assert len(responses.calls) == 1  # nothing sent while off
        rows = deliveries_of(services, a["id"])
        assert [(d.event_id is not None, d.status) for d in rows] == [(True, "pending")]  # none made for event 2
        responses.replace(responses.POST, URL_A, status=200)
        patch(client, a["id"], enabled=True)
        loop.forwarder.directory.forget()
        loop.forwarder.scan()
        loop.forwarder.wait_idle(10)
    finally:
        loop.close()
    assert [d.status for d in deliveries_of(services, a["id"])] == ["delivered"]


@responses.activate
def test_removed_consumer_gets_nothing_more(fwd):
    services, client = fwd
    responses.post(URL_A, status=200)
    a = add(client, type="http", url=URL_A)
    order(client, 1)
    run_pipeline(services)
    assert client.delete(f"/api/consumers/{a['id']}", headers=AUTH).status_code == 204
    order(client, 2)
    run_pipeline(services)
    assert len(responses.calls) == 1
    assert [d.status for d in deliveries_of(services, a["id"])] == ["delivered"]


@responses.activate
def test_a_changed_url_takes_the_next_deliveries(fwd):
    services, client = fwd
    responses.post(URL_A, status=200)
    responses.post(URL_B, status=200)
    a = add(client, type="http", url=URL_A)
    order(client, 1)
    run_pipeline(services)
    patch(client, a["id"], url=URL_B)
    order(client, 2)
    run_pipeline(services)
    assert [c.request.url for c in responses.calls] == [URL_A, URL_B]


# rq: a real RQ SimpleWorker runs the user's function


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """The user's own module (as their rq worker imports it), appending each event it gets to a file."""
    seen = tmp_path / "seen.jsonl"
    (tmp_path / "user_strategy.py").write_text(
        textwrap.dedent(
            f"""
            import json

            def on_order(event):
                with open({str(seen)!r}, "a") as handle:
                    handle.write(json.dumps(event) + "\\n")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return seen


def test_rq_consumer_runs_the_users_function_once_per_event(fwd, redis_client, user_module):
    services, client = fwd
    made = add(client, type="rq", queue="strategy", function="user_strategy.on_order", filters={"accounts": ["A1"]})
    first = order(client, 1, "A1")
    order(client, 2, "B2")
    second = order(client, 3, "A1")
    run_pipeline(services)
    queue = Queue("strategy", connection=redis_client)
    assert sorted(queue.job_ids) == sorted([f"{first}-{made['id']}", f"{second}-{made['id']}"])
    # A retried enqueue (its outcome lost) makes no second job.
    from workers.forwarder import Forwarder

    forwarder = Forwarder(services)
    lane = forwarder.lane(made["id"])
    row = deliveries_of(services, made["id"])[0]
    from app.delivery import load_tries
    from workers.signing import event_body

    with services.engine.begin() as conn:
        conn.execute(deliveries.update().where(deliveries.c.id == row.id).values(status="pending"))
    (item,), _, _ = load_tries(services.engine, [row.id], event_body)
    assert lane.sender.attempt(item).ok
    forwarder.close()
    assert len(queue.job_ids) == 2
    SimpleWorker([queue], connection=redis_client).work(burst=True)
    got = [json.loads(line) for line in user_module.read_text().splitlines()]
    assert sorted(e["id"] for e in got) == sorted([first, second])
    assert all(e["account_id"] == "A1" and "raw" in e and e["sequence"] == 1 for e in got)
    assert queue.job_ids == []  # finished jobs are not kept (result_ttl=0): a replay enqueues again


# redis_stream: XREADGROUP reads each event


def test_redis_stream_consumer_is_read_with_xreadgroup(fwd, redis_client):
    services, client = fwd
    add(client, type="redis_stream", stream="orders", filters={"statuses": ["FILLED"]})
    redis_client.xgroup_create("orders", "strategy", id="0", mkstream=True)
    filled = order(client, 1, status="COMPLETE")
    order(client, 2, status="REJECTED")
    run_pipeline(services)
    reply = redis_client.xreadgroup("strategy", "me", {"orders": ">"}, count=10)
    ((name, entries),) = reply
    assert [fields[b"id"].decode() for _, fields in entries] == [filled]
    event = json.loads(entries[0][1][b"event"])
    assert event["id"] == filled and event["status"] == "FILLED"


def test_the_stream_is_capped(fwd, redis_client):
    services, client = fwd
    from workers.sending import StreamSender

    sender = StreamSender(redis_client, "capped", 100, 1)
    from app.delivery import DeliveryTry

    for n in range(1000):
        assert sender.attempt(DeliveryTry(n, f"evt_{n}", "con_x", "redis-stream://capped", 0, 0, b"{}")).ok
    sender.close()
    assert 100 <= redis_client.xlen("capped") < 1000


def test_redis_refusal_is_a_failed_attempt_that_is_retried(fwd, redis_client):
    services, client = fwd
    redis_client.set("not-a-stream", "x")
    made = add(client, type="redis_stream", stream="not-a-stream")
    order(client, 1)
    run_pipeline(services)
    (row,) = deliveries_of(services, made["id"])
    assert row.status == "failed" and row.attempts == 3  # schedule 0,0: three attempts
    assert "WRONGTYPE" in row.last_error
    shown = client.get(f"/api/consumers/{made['id']}", headers=AUTH).get_json()
    assert "WRONGTYPE" in shown["last_error"] and shown["last_error_at"]


# Test deliveries and replay


@responses.activate
def test_a_test_delivery_is_signed_marked_and_never_stored(fwd, redis_client):
    services, client = fwd
    responses.post(URL_A, status=204)
    a = add(client, type="http", url=URL_A)
    answer = client.post(f"/api/consumers/{a['id']}/test", headers=AUTH)
    assert answer.status_code == 202
    run_pipeline(services)
    (call,) = responses.calls
    sent = Webhook(a["secret"]).verify(call.request.body, dict(call.request.headers))
    assert sent["test"] is True and sent["id"] == answer.get_json()["event_id"]
    assert redis_client.llen(CONSUMER_TESTS_KEY) == 0
    with services.engine.connect() as conn:
        for table in (events, orders, deliveries):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0
    result = client.get(f"/api/consumers/{a['id']}/test", headers=AUTH).get_json()
    assert result["ok"] is True and result["status_code"] == 204


@responses.activate
def test_replay_redelivers_with_the_original_webhook_id_and_reaches_a_later_consumer(fwd):
    services, client = fwd
    responses.post(URL_A, status=200)
    responses.post(URL_B, status=200)
    a = add(client, type="http", url=URL_A, filters={"accounts": ["A1"]})
    first = order(client, 1, "A1")
    order(client, 2, "B2")
    run_pipeline(services)
    b = add(client, type="http", url=URL_B)  # added later: nothing before it, until replayed
    assert not deliveries_of(services, b["id"])
    for cid, count in ((a["id"], 1), (b["id"], 2)):
        answer = client.post(
            f"/api/consumers/{cid}/replay",
            data=json.dumps({"since": "2000-01-01T00:00:00Z"}),
            headers=AUTH,
            content_type="application/json",
        )
        assert answer.status_code == 202 and answer.get_json() == {"events": count}
    run_pipeline(services)
    ids_a = [c.request.headers["webhook-id"] for c in responses.calls if c.request.url == URL_A]
    assert ids_a == [first, first]
    assert len([c for c in responses.calls if c.request.url == URL_B]) == 2
    assert [d.status for d in deliveries_of(services, a["id"])] == ["delivered"]


@responses.activate
def test_410_disables_a_consumer_added_as_data_until_it_is_switched_on(fwd):
    services, client = fwd
    responses.post(URL_A, status=410)
    a = add(client, type="http", url=URL_A)
    order(client, 1)
    run_pipeline(services)
    shown = client.get(f"/api/consumers/{a['id']}", headers=AUTH).get_json()
    assert shown["enabled"] is False and "410" in shown["disabled_reason"]
    assert shown["counts"]["failed"] == 1
    order(client, 2)  # stored while disabled: dead-lettered at once, to be redriven
    run_pipeline(services)
    assert len(responses.calls) == 1
    responses.replace(responses.POST, URL_A, status=200)
    shown = patch(client, a["id"], enabled=True)
    assert shown["enabled"] is True and shown["disabled_reason"] is None
    redriven = client.post(
        "/api/deliveries/redrive", data=json.dumps({"consumer": a["id"]}), headers=AUTH, content_type="application/json"
    )
    assert redriven.status_code == 202 and redriven.get_json()["count"] == 2
    run_pipeline(services)
    assert [d.status for d in deliveries_of(services, a["id"])] == ["delivered", "delivered"]


def test_the_rq_facts_the_rq_destination_relies_on(redis_client):
    """RQ 2.12 (docs/delivery.md §5): a second enqueue of an id runs it twice unless `unique`; no `.` in ids."""
    from rq.exceptions import DuplicateJobError
    from rq.job import Job

    queue = Queue("facts", connection=redis_client)
    queue.enqueue_call("user_strategy.on_order", job_id="evt_1-con_1")
    queue.enqueue_call("user_strategy.on_order", job_id="evt_1-con_1")
    assert queue.job_ids == ["evt_1-con_1", "evt_1-con_1"]
    with pytest.raises(DuplicateJobError):
        queue.enqueue_call("user_strategy.on_order", job_id="evt_1-con_1", unique=True)
    with pytest.raises(ValueError, match="letters, numbers, underscores and dashes"):
        Job("evt_1.con_1", connection=redis_client)


def test_replay_makes_deliveries_once_per_event_on_both_databases(db_services, redis_client):
    from datetime import timedelta

    from app.consumers.input import filters
    from app.consumers.replay import replay
    from app.db import utcnow
    from app.redis_keys import due_key

    persist_batch(db_services.engine, [_event(1, "A1"), _event(2, "B2"), _event(3, "A1", "FILLED")])
    store = ConsumerStore(db_services.config, db_services.engine)
    made, _ = store.create("redis_stream", stream="s", filters=filters({"accounts": ["A1"]}))
    since = utcnow() - timedelta(minutes=5)
    assert replay(db_services.engine, redis_client, made, since) == 2
    rows = deliveries_of(db_services, made.id)
    assert sorted(r.event_id[-1] for r in rows) == ["1", "3"] and {r.status for r in rows} == {"pending"}
    with db_services.engine.begin() as conn:
        conn.execute(deliveries.update().where(deliveries.c.consumer_id == made.id).values(status="delivered"))
    assert replay(db_services.engine, redis_client, made, since, utcnow() + timedelta(minutes=1)) == 2
    again = deliveries_of(db_services, made.id)
    assert sorted(r.id for r in again) == sorted(r.id for r in rows) and {r.status for r in again} == {"pending"}
    assert redis_client.zcard(due_key(made.id)) == 2
    assert replay(db_services.engine, redis_client, made, utcnow() + timedelta(minutes=1)) == 0
