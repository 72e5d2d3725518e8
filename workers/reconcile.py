"""The reconciliation job and its scheduler (docs/reconcile.md).

`run_reconcile(broker, reason)` is the job: one run of one broker at a time across every process (a
redis-py Lock whose TTL is restarted before each order it catches up), never raising. `start_scheduler(services)` starts
the loop the worker process runs in a thread: it reconciles every broker with REST credentials at
start-up, every RECONCILE_INTERVAL_SECONDS (0 = never periodically), whenever
`app.reconcile.request_reconcile` asked for it (a feed reconnected, POST /api/reconcile), and shortly
after a postback's terminal status arrives that needs confirming. Each broker runs in its own thread,
so a slow or rate-limited broker never delays another.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import redis
from redis.exceptions import LockNotOwnedError
from redis.lock import Lock

from app.db import utcnow
from app.reconcile import request_reconcile
from app.reconcile.clients import configured_brokers
from app.reconcile.engine import pending_claims, reconcile_broker
from app.reconcile.status import RunResult
from app.redis_keys import reconcile_lock_key, reconcile_request_key, reconcile_unconfirmed_key
from app.services import get_services
from app.state import CLAIM_GRACE_SECONDS

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

#: The lease of a run: longer than any one request (RECONCILE_ANSWER_SECONDS, at most app/config.py
#: MAX_ANSWER_SECONDS), so renewing it before each order keeps it while the run waits on its broker.
LOCK_SECONDS = 60.0
TICK_SECONDS = 1.0
#: How often the database is checked for newly arrived postback terminals awaiting confirmation.
CLAIM_SCAN_SECONDS = 2.0
#: Orders left unconfirmed by a REST error are retried this often (doubling up to the interval).
UNCONFIRMED_RETRY_SECONDS = 30.0


def run_reconcile(broker: str, reason: str = "requested", services: Services | None = None) -> RunResult | None:
    """Job: reconcile one broker unless another process is doing it (then its request is kept for later)."""
    services = services or get_services()
    lock = services.redis.lock(reconcile_lock_key(broker), timeout=LOCK_SECONDS, blocking=False)
    try:
        if not lock.acquire():
            request_reconcile(services.redis, broker, reason)  # served once the running one is done
            return None
    except redis.RedisError as exc:
        log.warning("%s reconciliation skipped: Redis unavailable (%s)", broker, type(exc).__name__)
        return None
    try:
        return reconcile_broker(services, broker, reason=reason, keep_alive=lambda: _renewed(lock))
    finally:
        with contextlib.suppress(redis.RedisError):  # lapsed or Redis away: the TTL frees it
            lock.release()


def _renewed(lock: Lock) -> bool:
    """Restart the lock's TTL; False when it lapsed, so another process may be running the broker now."""
    try:
        return lock.reacquire()
    except LockNotOwnedError:
        return False


class Scheduler:
    """Decides when each broker is reconciled; runs each broker's job in its own thread."""

    def __init__(self, services: Services, stop: threading.Event | None = None) -> None:
        self.services = services
        self.stop = stop or threading.Event()
        self.brokers = configured_brokers(services.config)
        self.interval = services.config.reconcile.interval
        now = time.monotonic()
        self.next_periodic = {broker: now + self.interval for broker in self.brokers}
        self.next_unconfirmed = {broker: now + UNCONFIRMED_RETRY_SECONDS for broker in self.brokers}
        self.due_claims: dict[str, float] = {}
        self.threads: dict[str, threading.Thread] = {}
        self.last_scan = 0.0
        self.scan_since = utcnow() - timedelta(minutes=10)

    def start(self) -> threading.Thread | None:
        """Start the loop in a daemon thread (nothing to do without brokers with credentials)."""
        if not self.brokers:
            log.info("reconciliation: no broker has REST credentials set; not scheduled")
            return None
        for broker in self.brokers:
            request_reconcile(self.services.redis, broker, "start-up")
        log.info(
            "reconciliation scheduled for %s (every %s)",
            ", ".join(self.brokers),
            f"{self.interval:g} s" if self.interval else "start-up, reconnect and on demand only",
        )
        thread = threading.Thread(target=self.run, name="reconcile-scheduler", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        """Loop until stopped, riding out Redis and database outages."""
        while not self.stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the scheduler must outlive any outage
                log.warning("reconcile scheduler: %s; retrying", type(exc).__name__)
            self.stop.wait(TICK_SECONDS)

    def tick(self) -> None:
        """One pass: start every broker that is due and not already running here."""
        now = time.monotonic()
        if now - self.last_scan >= CLAIM_SCAN_SECONDS:
            self.last_scan = now
            self.scan_claims()
        for broker in self.brokers:
            reason = self.due(broker, now)
            if reason and not self.running(broker):
                self.launch(broker, reason)

    def due(self, broker: str, now: float) -> str | None:
        """Why the broker should run now, or None."""
        requested = self.services.redis.getdel(reconcile_request_key(broker))
        if requested is not None:
            if self.running(broker):  # keep the request: served after the current run
                request_reconcile(self.services.redis, broker, requested.decode(errors="replace"))
                return None
            return requested.decode(errors="replace")
        if self.interval and now >= self.next_periodic[broker]:
            return "periodic"
        if broker in self.due_claims and now >= self.due_claims[broker]:
            return "confirm postback"
        if now >= self.next_unconfirmed[broker]:
            self.next_unconfirmed[broker] = now + UNCONFIRMED_RETRY_SECONDS
            if self.services.redis.hlen(reconcile_unconfirmed_key(broker)):
                return "retry unconfirmed"
        return None

    def scan_claims(self) -> None:
        """Find orders changed since the last scan that show an unconfirmed postback terminal; run their
        broker once the grace period has passed, so that one broker read can settle each claim."""
        since, self.scan_since = self.scan_since, utcnow() - timedelta(seconds=2)
        for broker in self.brokers:
            if pending_claims(self.services.engine, broker, since=since):
                at = time.monotonic() + CLAIM_GRACE_SECONDS + 1.0
                self.due_claims[broker] = min(self.due_claims.get(broker, at), at)

    def running(self, broker: str) -> bool:
        """True while this process runs the broker's job."""
        thread = self.threads.get(broker)
        return thread is not None and thread.is_alive()

    def launch(self, broker: str, reason: str) -> None:
        """Run the broker's job in its own thread; schedule the next periodic run."""
        now = time.monotonic()
        if self.interval:
            # A little jitter, so several brokers (and several worker machines) do not fire together.
            self.next_periodic[broker] = now + self.interval * random.uniform(0.95, 1.05)
        if reason == "confirm postback":
            self.due_claims.pop(broker, None)
        thread = threading.Thread(
            target=run_reconcile, args=(broker, reason, self.services), name=f"reconcile-{broker}", daemon=True
        )
        self.threads[broker] = thread
        thread.start()


def start_scheduler(services: Services, stop: threading.Event | None = None) -> Scheduler:
    """Start reconciliation in this (worker) process; returns the scheduler (its `stop` event ends it)."""
    scheduler = Scheduler(services, stop)
    scheduler.start()
    return scheduler
