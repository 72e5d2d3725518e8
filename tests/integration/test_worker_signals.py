"""How a worker slot takes SIGTERM: a repeat keeps the warm stop, and a stop needs no Redis
(workers/worker.py OrderhookWorker)."""

from __future__ import annotations

import signal
from datetime import timedelta

import redis
from rq.utils import now
from rq.worker import WorkerStatus

from workers import shutdown
from workers.queues import queue
from workers.worker import OrderhookWorker


def test_a_repeated_sigterm_keeps_the_warm_stop(redis_client):
    """RQ's cold shutdown raises SystemExit wherever the loop is (mid-commit, holding a lock): a second SIGTERM
    more than a second after the first (a loaded parent repeats it) must only keep the loop finishing."""
    worker = OrderhookWorker([queue(redis_client, "orderhook-pipeline-test")], connection=redis_client)
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        worker._shutdown_requested_date = now() - timedelta(seconds=5)
        worker.request_force_stop(signal.SIGTERM, None)  # RQ's own handler raises SystemExit here
        assert shutdown.requested.is_set()
    finally:
        shutdown.requested.clear()
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])


def test_a_stop_with_redis_gone_neither_raises_nor_dequeues_again(redis_client, tmp_path):
    """The embedded Redis stopped under the loop: RQ records a stop request in Redis, which must not raise
    where the loop is, and after the stop RQ's dequeue (which retries a lost Redis forever, with no stop check)
    must not run at all."""
    worker = OrderhookWorker([queue(redis_client, "orderhook-pipeline-test")], connection=redis_client)
    worker.connection = redis.Redis.from_url(f"unix://{tmp_path / 'no-redis.sock'}", socket_connect_timeout=0.2)
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        worker._state = WorkerStatus.BUSY  # running the loop job (set_state would write to Redis)
        worker.request_stop(signal.SIGTERM, None)  # RQ's own raises ConnectionError here
        assert shutdown.requested.is_set() and worker._stop_requested
        assert worker.dequeue_job_and_maintain_ttl(None) is None
    finally:
        shutdown.requested.clear()
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
