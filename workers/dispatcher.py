"""The dispatcher: watches Redis and enqueues RQ jobs only when there is work and none is on it.

Keeping enqueue off the request path is what lets the web answer after one Redis round trip
(delivery.md §7.2: RQ enqueue per request costs ~40 % of throughput). It wakes on every new stream
entry (XREAD BLOCK), on due deliveries, and on a lapsed lease (a killed job), so nothing waits long.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from app.ingest import STREAM
from app.services import Services
from workers import forwarding, pipeline
from workers.leases import kick
from workers.queues import PERSIST_QUEUE, queue

log = logging.getLogger(__name__)
RESYNC_SECONDS = 30.0


class Dispatcher:
    """One loop per worker process; several are harmless (leases and queued-flags dedupe their kicks)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.client = services.redis
        self.stop = threading.Event()
        self._last_resync = 0.0

    def kick_persist(self) -> bool:
        """Start a drain when the stream holds entries and no drain runs or waits."""
        if not self.client.xlen(STREAM):
            return False
        return kick(
            self.client,
            queue(self.client, PERSIST_QUEUE),
            pipeline.drain_ingest,
            lease_key=pipeline.LEASE_KEY,
            queued_key=pipeline.QUEUED_KEY,
        )

    def kick_forwards(self) -> None:
        """Start the forward job of each consumer with a delivery due."""
        now = time.time()
        for raw in self.client.smembers(forwarding.CONSUMERS_KEY):
            cid = raw.decode()
            if forwarding.has_due(self.client, cid, now):
                forwarding.kick_consumer(self.client, cid)

    def tick(self) -> None:
        """One pass: persistence, forwarding, and now and then a resync of pending deliveries."""
        self.kick_persist()
        self.kick_forwards()
        if time.monotonic() - self._last_resync > RESYNC_SECONDS:
            self._last_resync = time.monotonic()
            try:
                forwarding.resync_pending(self.client, self.services.engine)
            except Exception:  # noqa: BLE001 - the database may be away; the next pass retries
                log.warning("could not resync pending deliveries (database unavailable?)")

    def run(self) -> None:
        """Loop until stopped, riding out Redis outages."""
        while not self.stop.is_set():
            try:
                self.tick()
                if self.client.exists(pipeline.LEASE_KEY):
                    # A drain runs and reads new entries itself: waking on each one would cost several
                    # Redis round trips per postback.
                    self.stop.wait(0.1)
                else:
                    # Sleep until a new entry arrives (or 100 ms pass, for due retries and lapsed leases).
                    self.client.xread({STREAM: "$"}, count=1, block=100)
            except redis.RedisError as exc:
                log.warning("dispatcher: Redis unavailable (%s); retrying", type(exc).__name__)
                self.stop.wait(0.5)
