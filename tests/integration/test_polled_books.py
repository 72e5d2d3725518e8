"""Polled order books (docs/reconcile.md "Polled order books"): Groww and 5paisa accounts are read every
*_POLL_SECONDS by the worker's reconciliation scheduler, so each change arrives with source "reconcile" through the
one normalize/dedup/queue, an unchanged book stores nothing, and each read waits its turn in the rate window."""

from __future__ import annotations

import threading
import time

import pytest

from app.reconcile.polling import MIN_POLL_SECONDS, poll_seconds
from app.reconcile.status import read_status
from tests.support.fakes.harness import ServiceBuilder, api_client
from tests.support.fakes.polled import FakeFivepaisaRest, FakeGrowwRest, fivepaisa_order, groww_order
from tests.support.helpers import run_pipeline
from tests.support.procs import wait_until
from workers.reconcile import Scheduler, start_scheduler

POLL = "1"
#: A generous bound on "within the poll period" on a busy machine: the period, the scheduler's 1 s tick, slack.
WITHIN = 6.0


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


def groww(build):
    fake = FakeGrowwRest("groww-access-token-123").start()
    services = build(
        GROWW_API_URL=fake.url,
        GROWW_ACCESS_TOKEN="groww-access-token-123",
        GROWW_CLIENT_ID="GR0001",
        GROWW_POLL_SECONDS=POLL,
        RECONCILE_INTERVAL_SECONDS="3600",
    )
    first, changed = groww_order("GMK001", "ACKED"), groww_order("GMK001", "EXECUTED", filled=10)
    return fake, services, "GMK001", first, changed


def fivepaisa(build):
    fake = FakeFivepaisaRest("55501234", "fivepaisa-app-key", "fivepaisa-access-token").start()
    services = build(
        FIVEPAISA_API_URL=fake.url,
        FIVEPAISA_CLIENT_CODE="55501234",
        FIVEPAISA_APP_KEY="fivepaisa-app-key",
        FIVEPAISA_ACCESS_TOKEN="fivepaisa-access-token",
        FIVEPAISA_POLL_SECONDS=POLL,
        RECONCILE_INTERVAL_SECONDS="3600",
    )
    first = fivepaisa_order(211000777, "Pending")
    changed = fivepaisa_order(211000777, "Fully Executed", filled=10, ExchOrderTime="/Date(1778221560000+0530)/")
    return fake, services, "211000777", first, changed


@pytest.mark.parametrize("setup", [groww, fivepaisa], ids=["groww", "fivepaisa"])
def test_a_change_arrives_as_reconcile_within_the_poll_period_and_an_unchanged_book_stores_nothing(
    build, admin_headers, setup
):
    fake, services, order_id, first, changed = setup(build)
    broker = services.config.broker
    name = "groww" if setup is groww else "fivepaisa"
    assert poll_seconds(services.config, name) == 1.0 and broker(name) is not None
    stop = threading.Event()
    scheduler = start_scheduler(services, stop)
    try:
        assert scheduler.interval_of(name) == 1.0 and scheduler.interval == 3600
        fake.add(order_id, [first])
        wait_until(lambda: (read_status(services.redis, name) or {}).get("finished_at"), 20, message="first poll")
        run_pipeline(services)
        client = api_client(services)
        stored = client.get(f"/api/orders/{name}/{order_id}", headers=admin_headers).get_json()
        assert stored["status"] == "OPEN" and [e["source"] for e in stored["events"]] == ["reconcile"]

        fake.append(order_id, changed)
        changed_at, reads = time.monotonic(), fake.reads
        wait_until(lambda: fake.reads > reads, WITHIN, interval=0.02, message="a poll after the change")
        seen_after = fake.times[reads] - changed_at

        def filled() -> bool:
            run_pipeline(services)
            return client.get(f"/api/orders/{name}/{order_id}", headers=admin_headers).get_json()["status"] == "FILLED"

        wait_until(filled, WITHIN * 2, interval=0.2, message="the change stored")
        stored = client.get(f"/api/orders/{name}/{order_id}", headers=admin_headers).get_json()
        assert stored["status"] == "FILLED" and stored["filled_quantity"] == 10
        assert [e["source"] for e in stored["events"]] == ["reconcile", "reconcile"]
        assert seen_after < WITHIN

        # Two more polls of the same book: read, compared, nothing stored.
        reads = fake.reads
        wait_until(lambda: fake.reads >= reads + 2, WITHIN * 2, message="two more polls")
        quiet = {"reason": "poll", "updates_found": 0}
        wait_until(
            lambda: quiet.items() <= (read_status(services.redis, name) or {}).items(), WITHIN, message="a quiet poll"
        )
        run_pipeline(services)
        again = client.get(f"/api/orders/{name}/{order_id}", headers=admin_headers).get_json()
        assert len(again["events"]) == 2
    finally:
        stop.set()
        fake.close()
    # Never faster than the period: runs start at least 0.95 periods apart (a run's request may start late, so
    # single gaps can shrink; the count over the whole span cannot exceed the span's periods).
    span = fake.times[-1] - fake.times[0]
    assert len(fake.times) <= span / (0.95 * MIN_POLL_SECONDS) + 2, (len(fake.times), span)


def test_a_refused_token_is_reported_and_the_account_not_polled_harder(build):
    fake, services, order_id, first, _ = groww(build)
    fake.add(order_id, [first])
    fake.expired = True
    stop = threading.Event()
    start_scheduler(services, stop)
    try:
        wait_until(lambda: (read_status(services.redis, "groww") or {}).get("last_error"), 20, message="a refusal")
        assert "Groww refused the access token" in read_status(services.redis, "groww")["last_error"]
    finally:
        stop.set()
        fake.close()
    assert fake.auth_failures >= 1


def test_only_polled_brokers_get_the_short_period(build):
    services = build(GROWW_POLL_SECONDS="0.2", RECONCILE_INTERVAL_SECONDS="120")
    scheduler = Scheduler(services)
    assert scheduler.interval_of("groww") == MIN_POLL_SECONDS  # never faster than once a second
    assert scheduler.interval_of("groww:acc_123") == MIN_POLL_SECONDS
    assert scheduler.interval_of("fivepaisa:acc_9") == 5.0 and scheduler.interval_of("kite") == 120
    assert poll_seconds(services.config, "xts") is None
