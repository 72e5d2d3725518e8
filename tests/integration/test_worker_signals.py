"""How a worker slot takes SIGTERM: a repeat keeps the warm stop (workers/worker.py OrderhookWorker)."""

from __future__ import annotations

import signal
from datetime import timedelta

from rq.utils import now

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
