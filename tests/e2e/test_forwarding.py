"""Forwarding end to end: real worker processes, real local consumers that fail on purpose."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests.support.env import ADMIN_TOKEN, FORWARD_SECRET, KITE_SECRET, make_env
from tests.support.fakes.consumers import DrippingConsumer
from tests.support.helpers import load_fixture, sign_kite
from tests.support.procs import Consumer, Process, free_port, start_web, wait_until

pytestmark = pytest.mark.e2e
SEED = load_fixture("kite_postback_complete.json")
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def launch(redis_client, redis_url, sqlite_url, tmp_path):
    started: list = []

    def _launch(*consumers: Consumer, schedule: str = "1,1", timeout: str = "5"):
        env = make_env(
            redis_url,
            sqlite_url,
            tmp_path,
            FORWARD_URLS=",".join(c.url for c in consumers),
            FORWARD_RETRY_SCHEDULE=schedule,
            FORWARD_TIMEOUT_SECONDS=timeout,
        )
        port = free_port()
        started.append(start_web(env, tmp_path, port))
        worker = Process("worker", env, tmp_path)
        started.append(worker)
        return f"http://127.0.0.1:{port}", worker

    yield _launch
    for process in started:
        process.stop()


def send(base: str, **changes) -> str:
    answer = requests.post(f"{base}/postbacks/kite", data=json.dumps(sign_kite(dict(SEED, **changes), KITE_SECRET)))
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def verified(consumer: Consumer) -> list[dict]:
    """Every request the consumer got, each checked with the reference Standard Webhooks library."""
    return [Webhook(FORWARD_SECRET).verify(r["body"], r["headers"]) for r in consumer.requests]


def test_500_twice_then_200(launch):
    consumer = Consumer(lambda n, _req: (500 if n <= 2 else 200, {}, 0))
    base, worker = launch(consumer)
    event_id = send(base)
    wait_until(lambda: len(consumer.requests) >= 3, 20, message=worker.log())
    time.sleep(1.5)
    assert len(consumer.requests) == 3
    assert {r["headers"]["webhook-id"] for r in consumer.requests} == {event_id}
    assert [p["id"] for p in verified(consumer)] == [event_id] * 3
    gaps = [b["at"] - a["at"] for a, b in zip(consumer.requests, consumer.requests[1:], strict=False)]
    assert all(0.8 <= gap <= 3 for gap in gaps), gaps
    delivered = requests.get(f"{base}/api/deliveries", params={"status": "delivered"}, headers=AUTH).json()
    assert delivered["count"] == 1 and delivered["deliveries"][0]["attempts"] == 3


def test_always_500_is_dead_lettered_then_redriven(launch):
    state = {"fail": True}
    consumer = Consumer(lambda n, _req: (500 if state["fail"] else 200, {}, 0))
    base, worker = launch(consumer)
    event_id = send(base)

    def dead() -> bool:
        failed = requests.get(f"{base}/api/deliveries", params={"status": "failed"}, headers=AUTH, timeout=2).json()
        return failed["count"] == 1

    wait_until(dead, 20, message=worker.log())
    assert len(consumer.requests) == 3
    failed = requests.get(f"{base}/api/deliveries", params={"status": "failed"}, headers=AUTH).json()["deliveries"][0]
    assert [a["status_code"] for a in failed["attempt_log"]] == [500, 500, 500]
    state["fail"] = False
    assert requests.post(f"{base}/api/deliveries/{failed['id']}/retry", headers=AUTH).status_code == 202
    wait_until(lambda: len(consumer.requests) == 4, 20, message=worker.log())
    assert consumer.requests[-1]["headers"]["webhook-id"] == event_id
    verified(consumer)


def test_a_slow_consumer_does_not_delay_the_others(launch):
    """Holds on a busy machine: the fast consumer must have every event before the slow one has answered
    even once, a bound that does not depend on how fast the machine is."""
    answer_after = 6.0
    slow = Consumer(lambda n, _req: (200, {}, answer_after))
    fast = Consumer()
    base, worker = launch(slow, fast)
    for minute in range(5):
        send(
            base,
            exchange_update_timestamp=f"2022-03-03 09:2{minute}:25",
            filled_quantity=minute,
            quantity=10,
            status="OPEN",
        )
    wait_until(lambda: len(fast.requests) == 5, 30, message=worker.log())
    wait_until(lambda: slow.requests, 30, message=worker.log())
    first_slow_answer = min(r["at"] for r in slow.requests) + answer_after
    assert max(r["at"] for r in fast.requests) < first_slow_answer
    wait_until(lambda: len(slow.requests) == 5, 90, message=worker.log())


def test_a_consumer_that_was_down_receives_everything_when_back(launch):
    state = {"down": True}
    consumer = Consumer(lambda n, _req: (503 if state["down"] else 200, {"Retry-After": "1"}, 0))
    base, worker = launch(consumer, schedule="1,1,1,1,1,1,1,1,1,1")
    ids = {
        send(base, status="OPEN", quantity=10, filled_quantity=n, exchange_update_timestamp=f"2022-03-03 09:24:3{n}")
        for n in range(4)
    }
    wait_until(lambda: len(consumer.requests) >= 8, 20, message=worker.log())
    state["down"] = False

    def all_delivered() -> bool:
        answer = requests.get(f"{base}/api/deliveries", params={"status": "delivered"}, headers=AUTH, timeout=2)
        return answer.json()["count"] == 4

    wait_until(all_delivered, 30, message=worker.log())
    delivered = requests.get(f"{base}/api/deliveries", params={"status": "delivered"}, headers=AUTH).json()
    assert {d["event_id"] for d in delivered["deliveries"]} == ids
    assert {p["id"] for p in verified(consumer) if p} == ids


def test_a_delivery_whose_worker_dies_mid_attempt_is_attempted_again(launch, tmp_path):
    consumer = Consumer(lambda n, _req: (200, {}, 2.0 if n == 1 else 0))
    base, worker = launch(consumer, timeout="3")
    event_id = send(base)
    wait_until(lambda: len(consumer.requests) == 1, 15, message=worker.log())
    worker.kill_group()  # SIGKILL while the attempt is in flight
    (tmp_path / "again").mkdir()
    replacement = Process("worker", worker.env, tmp_path / "again")
    try:
        wait_until(lambda: len(consumer.requests) >= 2, 40, message=replacement.log())
        assert {r["headers"]["webhook-id"] for r in consumer.requests} == {event_id}

        def delivered() -> bool:
            answer = requests.get(f"{base}/api/deliveries", params={"status": "delivered"}, headers=AUTH, timeout=2)
            return answer.json()["count"] == 1

        wait_until(delivered, 15, message=replacement.log())
    finally:
        replacement.stop()


def _send_twenty_until_all_failed(base: str, worker) -> tuple[set[str], list[dict]]:
    """Twenty distinct updates of one order, then wait until each one's delivery is dead-lettered: their
    event ids and the failed deliveries."""
    ids = {
        send(
            base,
            status="OPEN",
            quantity=100,
            filled_quantity=n,
            exchange_update_timestamp=f"2022-03-03 09:21:{n:02}",
        )
        for n in range(20)
    }

    def all_failed() -> bool:
        answer = requests.get(f"{base}/api/deliveries", params={"status": "failed"}, headers=AUTH, timeout=5)
        return answer.json()["count"] == 20

    wait_until(all_failed, 120, message=worker.log())
    failed = requests.get(f"{base}/api/deliveries", params={"status": "failed"}, headers=AUTH).json()["deliveries"]
    return ids, failed


def test_a_consumer_that_times_out_gets_each_delivery_exactly_per_schedule(launch):
    """Holds with both cores busy: the consumer answers long after the timeout (a late answer cannot
    land inside it however slow the machine), and timing is only checked as a lower bound."""
    consumer = Consumer(lambda n, _req: (200, {}, 10.0))  # answers 9 s after the 1 s timeout, every time
    base, worker = launch(consumer, schedule="1,1", timeout="1")
    ids, failed = _send_twenty_until_all_failed(base, worker)
    assert {d["event_id"] for d in failed} == ids
    assert {d["attempts"] for d in failed} == {3}
    assert {len(d["attempt_log"]) for d in failed} == {3}
    assert all(a["error"] == "no complete answer within 1 s" for d in failed for a in d["attempt_log"])
    for delivery in failed:  # each retry waited out its schedule entry (1 s, -10 % jitter) at least
        starts = [datetime.fromisoformat(a["attempted_at"].replace("Z", "+00:00")) for a in delivery["attempt_log"]]
        assert all((b - a).total_seconds() >= 0.9 for a, b in zip(starts, starts[1:], strict=False)), starts
    per_id: dict[str, int] = {}
    for request in consumer.requests:
        per_id[request["headers"]["webhook-id"]] = per_id.get(request["headers"]["webhook-id"], 0) + 1
    assert per_id == dict.fromkeys(ids, 3), per_id  # never once more than recorded


def test_a_dripping_consumer_holds_no_thread_past_the_deadline_and_gets_nothing_twice(launch):
    """A real consumer that answers 200 and then drips its body a byte every 0.5 s (100 s in all): every
    attempt is a failure at the 1 s deadline, recorded, retried by the schedule and dead-lettered when it
    is spent; the consumer got each event exactly as often as attempts were recorded."""
    consumer = DrippingConsumer(phase="body", interval=0.5, body_bytes=200)
    try:
        base, worker = launch(consumer, schedule="1,1", timeout="1")
        ids, failed = _send_twenty_until_all_failed(base, worker)
        assert {d["event_id"] for d in failed} == ids
        assert {d["attempts"] for d in failed} == {3}
        assert {d["last_error"] for d in failed} == {"no complete answer within 1 s"}
        assert all(a["status_code"] is None for d in failed for a in d["attempt_log"])
        assert {event_id: consumer.count(event_id) for event_id in ids} == dict.fromkeys(ids, 3)
        assert "consumer-secret-token" not in worker.log()
    finally:
        consumer.close()
