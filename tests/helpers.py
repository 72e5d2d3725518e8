"""Test helpers: signed payloads, seed fixtures and running the real RQ pipeline in-process."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from rq import SimpleWorker

from app.brokers.kite import kite_checksum
from app.ingest import STREAM
from app.services import Services
from workers import forwarding, pipeline
from workers.dispatcher import Dispatcher
from workers.queues import QUEUE_NAMES, queue

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_fixture(name: str) -> dict:
    """A sanitized real payload from tests/fixtures/."""
    return json.loads((FIXTURES / name).read_text())


def fixture_bytes(name: str) -> bytes:
    """A fixture file's exact bytes (for bodies that are not valid JSON)."""
    return (FIXTURES / name).read_bytes()


def sign_kite(payload: dict, secret: str) -> dict:
    """A copy of a Kite payload with the checksum Kite would send."""
    signed = copy.deepcopy(payload)
    signed["checksum"] = kite_checksum(str(signed["order_id"]), signed["order_timestamp"], secret)
    return signed


def run_pipeline(services: Services, *, timeout: float = 30.0) -> None:
    """Run the dispatcher and a burst-mode RQ SimpleWorker until nothing is queued or due."""
    dispatcher = Dispatcher(services)
    queues = [queue(services.redis, name) for name in QUEUE_NAMES]
    deadline = time.monotonic() + timeout
    # Jobs linger a second for more work in production; in a burst-mode test that is only waiting.
    saved = pipeline.IDLE_EXIT_SECONDS, forwarding.IDLE_EXIT_SECONDS
    pipeline.IDLE_EXIT_SECONDS = forwarding.IDLE_EXIT_SECONDS = 0.05
    try:
        while time.monotonic() < deadline:
            dispatcher.tick()
            worker = SimpleWorker(queues, connection=services.redis)
            worker.work(burst=True, logging_level="WARNING")
            if not services.redis.xlen(STREAM) and not _anything_due(services):
                return
            time.sleep(0.02)
    finally:
        pipeline.IDLE_EXIT_SECONDS, forwarding.IDLE_EXIT_SECONDS = saved
    raise AssertionError("pipeline did not drain in time")


def _anything_due(services: Services) -> bool:
    """True while some consumer has a delivery due now."""
    return any(
        forwarding.has_due(services.redis, raw.decode()) for raw in services.redis.smembers(forwarding.CONSUMERS_KEY)
    )


def body(payload: dict) -> bytes:
    """A JSON request body."""
    return json.dumps(payload).encode()


def content(event) -> dict:
    """The event without what depends on the delivery (source, arrival time, raw body)."""
    data = event.to_dict()
    for key in ("source", "received_at", "raw"):
        data.pop(key)
    return data
