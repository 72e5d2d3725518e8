"""One deadline per forward attempt, and errors a trader can read: real local consumers that drip their
answer, refuse connections or answer 500; real Redis, SQLite, the worker's own loop in-process."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import sqlalchemy as sa

from app.db import deliveries, delivery_attempts
from app.delivery import DeliveryTry
from app.redis_keys import due_key
from app.services import set_services
from app.store import consumer_id
from tests.support.fakes.consumers import DrippingConsumer
from tests.support.helpers import forwarding_services, load_fixture, post_kite, run_pipeline
from tests.support.procs import Consumer, free_port, wait_until
from workers.pipeline import Pipeline, ensure_group
from workers.sending import ConsumerSender

SEED = load_fixture("kite_postback_complete.json")
TIMEOUT = 1.0
# Generous for a busy 2-core machine, and far below what a drip takes (200 bytes x 0.5 s = 100 s).
SLACK_MS = 4000


@pytest.fixture
def forwarding(redis_client, redis_url, sqlite_url, tmp_path):
    def build(url: str, schedule: str = "0,0", timeout: float = TIMEOUT):
        return forwarding_services(
            redis_url,
            sqlite_url,
            tmp_path,
            FORWARD_URLS=url,
            FORWARD_RETRY_SCHEDULE=schedule,
            FORWARD_TIMEOUT_SECONDS=f"{timeout:g}",
        )

    yield build
    set_services(None)


def post(client, **changes) -> str:
    return post_kite(client, SEED, **changes)


def attempts_of(services) -> list:
    with services.engine.connect() as conn:
        return conn.execute(sa.select(delivery_attempts).order_by(delivery_attempts.c.id)).all()


def only_delivery(services):
    with services.engine.connect() as conn:
        (row,) = conn.execute(sa.select(deliveries)).all()
    return row


@pytest.mark.parametrize("phase", ["body", "headers"])
def test_a_dripping_consumer_fails_at_the_deadline_and_is_retried_by_the_schedule(forwarding, phase):
    """200 then a byte every 0.5 s (or the headers themselves that way): each attempt ends at the 1 s
    deadline as a failure, the schedule retries it, the spent schedule dead-letters it, and the consumer
    got exactly the recorded attempts."""
    consumer = DrippingConsumer(phase=phase)
    try:
        services, client = forwarding(consumer.url)
        event_id = post(client)
        run_pipeline(services, timeout=30)
        row = only_delivery(services)
        assert (row.status, row.attempts, row.last_status_code) == ("failed", 3, None)
        assert row.last_error == "no complete answer within 1 s"
        log = attempts_of(services)
        assert [a.error for a in log] == ["no complete answer within 1 s"] * 3
        assert all(a.latency_ms < TIMEOUT * 1000 + SLACK_MS for a in log), [a.latency_ms for a in log]
        assert consumer.count(event_id) == 3 and len(consumer.webhook_ids) == 3
        wait_until(lambda: consumer.hung_up == 3, 10, message="the sender did not hang up on the drip")
    finally:
        consumer.close()


def test_each_attempt_is_recorded_when_it_ends_not_when_its_round_does(redis_client, redis_url, sqlite_url, tmp_path):
    """Six deliveries to a dripping consumer on two sending threads end in three waves, a deadline apart: the
    delivery log shows the first wave while the last is still being sent (it was written when the whole
    round had ended, so a slow consumer's hundreds of attempts sat at "0 attempts" for half a minute)."""
    consumer = DrippingConsumer(phase="body")
    try:
        services, client = forwarding_services(
            redis_url,
            sqlite_url,
            tmp_path,
            FORWARD_URLS=consumer.url,
            FORWARD_RETRY_SCHEDULE="600",
            FORWARD_TIMEOUT_SECONDS="1",
            FORWARD_PARALLEL="2",
        )
        for n in range(6):
            post(
                client,
                status="OPEN",
                quantity=10,
                filled_quantity=n,
                exchange_update_timestamp=f"2022-03-03 09:2{n}:00",
            )
        ensure_group(services.redis)
        loop = Pipeline(services, consumer="test-waves", claim_idle_ms=0)
        seen: list[int] = []
        try:
            entries = services.redis.xreadgroup("persist", "test-waves", {"oh:ingest": ">"}, count=10)[0][1]
            assert loop.store_and_forward(entries) == 6

            def recorded() -> bool:
                seen.append(len(attempts_of(services)))
                return seen[-1] == 6

            wait_until(recorded, 60, interval=0.05, message="the attempts were not recorded")
        finally:
            loop.close()
        assert [count for count in seen if 0 < count < 6], f"recorded all at once: {sorted(set(seen))}"
    finally:
        consumer.close()


def test_a_delivery_a_lane_holds_is_not_sent_again_when_its_claim_lapses(forwarding):
    """Even if the claim in Redis lapses while the attempt is in flight, this process does not send the
    delivery a second time; the one answer is recorded once."""
    consumer = Consumer(lambda n, _req: (200, {}, 1.5))
    try:
        services, client = forwarding(consumer.url, timeout=5)
        post(client)
        ensure_group(services.redis)
        loop = Pipeline(services, consumer="test-lapse", claim_idle_ms=0)
        try:
            entries = services.redis.xreadgroup("persist", "test-lapse", {"oh:ingest": ">"}, count=10)[0][1]
            assert loop.store_and_forward(entries) == 1
            wait_until(lambda: len(consumer.requests) == 1, 10)
            row = only_delivery(services)
            services.redis.zadd(due_key(consumer_id(consumer.url)), {str(row.id): time.time() - 1})
            loop.forwarder.scan()  # claims the "lapsed" delivery again while the lane still holds it
            assert loop.forwarder.wait_idle(20)
        finally:
            loop.close()
        row = only_delivery(services)
        assert (row.status, row.attempts) == ("delivered", 1)
        assert len(consumer.requests) == 1
    finally:
        consumer.close()


def attempt(url: str, timeout: float = 2.0):
    sender = ConsumerSender(url, [], timeout, 1)
    try:
        return sender.attempt(DeliveryTry(1, "evt_1", "c", url, 0, 0, b"{}"))
    finally:
        sender.close()


def test_a_refused_connection_is_a_sentence_without_the_url():
    port = free_port()
    outcome = attempt(f"http://user:pw@127.0.0.1:{port}/hook/path-token?token=consumer-secret")
    assert outcome.error == f"connection refused by 127.0.0.1:{port}"


def test_a_500_is_answered_500_and_a_redirect_says_it_is_not_followed():
    consumer = Consumer(lambda n, _req: (500 if n == 1 else 302, {}, 0))
    try:
        first, second = attempt(consumer.url + "?token=s"), attempt(consumer.url + "?token=s")
    finally:
        consumer.close()
    assert (first.status_code, first.error) == (500, "answered 500")
    assert (second.status_code, second.error) == (302, "answered 302 (redirects are not followed)")


def test_a_consumer_that_hangs_up_without_answering_says_so():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def hang_up() -> None:
        conn, _ = listener.accept()
        received = b""
        while not received.endswith(b"\r\n\r\n{}"):  # the whole request (its body is b"{}"): no reset
            received += conn.recv(65536)
        conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        outcome = attempt(f"http://127.0.0.1:{port}/hook?token=consumer-secret")
    finally:
        listener.close()
    assert outcome.error == f"127.0.0.1:{port} closed the connection without answering"
    assert "secret" not in outcome.error
