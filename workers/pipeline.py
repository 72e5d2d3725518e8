"""The worker loop: block on the ingest stream, store a batch in one transaction, forward it at once.

One loop per worker process, run as a long RQ job (workers/worker.py). It reads the stream through
the consumer group as a consumer of its own (`<host>-<pid>`), so an entry it has read but not yet
stored stays pending in Redis under its name. Each loop keeps a liveness key alive (workers/liveness.py):
the entries of a consumer whose key is gone (its worker was killed) are taken over within a second,
and entries pending longer than PIPELINE_CLAIM_IDLE_MS (a worker alive but stuck) with XAUTOCLAIM;
either way they are stored once, because persistence skips event ids it already has. Before storing,
a batch takes in every earlier arrival of its orders that other consumers hold, so each order's
events are numbered and folded in arrival order (workers/arrival.py). A second thread claims due
deliveries (retries, and what a busy lane had no room for) every FORWARD_SCAN_MS and hands them to
the same per-consumer lanes (workers/forwarder.py).

Redis full (OOM under noeviction) or the database away: the loop backs off, marks the pipeline
stalled (workers/stall.py) and carries on by itself when the cause goes away.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis
from sqlalchemy.exc import DBAPIError, OperationalError

from app import observers
from app.delivery.schedule import make_due
from app.events import OrderEvent
from app.reconcile.confirming import ConfirmingAccounts
from app.redis_keys import DEAD_STREAM, DEDUP_PREFIX, GROUP, STATS_KEY, STREAM
from app.store import Conflict, QueuedEvent, StoredBatch, persist_batch
from workers import shutdown
from workers.arrival import earlier_arrivals, in_arrival_order
from workers.forwarder import Forwarder
from workers.liveness import Liveness, take_over
from workers.stall import OOM_REASON, StallMarker, is_oom

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

BLOCK_MS = 1000
RECLAIM_SECONDS = 5.0
HEARTBEAT_SECONDS = 10.0
BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)
CONFLICT_RETRIES = 8


def ensure_group(client: redis.Redis) -> None:
    """Create the consumer group (from the stream's start, so nothing queued before it is skipped).

    Looked up first: XGROUP CREATE is refused at maxmemory even when the group exists.
    """
    try:
        if any(group["name"] == GROUP.encode() for group in client.xinfo_groups(STREAM)):
            return
    except redis.ResponseError:
        pass  # no stream yet
    try:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def consumer_name() -> str:
    """This process's consumer name in the group."""
    return f"{socket.gethostname()}-{os.getpid()}"


class DatabaseAway(Exception):
    """Stopping while the database is away: the batch stays pending in Redis for another worker."""


class Pipeline:
    """One worker process's loop: storage in the calling thread, due deliveries in a second one."""

    def __init__(
        self,
        services: Services,
        *,
        consumer: str | None = None,
        stop: threading.Event | None = None,
        heartbeat: Callable[[], None] | None = None,
        claim_idle_ms: int | None = None,
        stall: StallMarker | None = None,
    ) -> None:
        self.services = services
        self.client = services.redis
        self.consumer = consumer or consumer_name()
        self.stop = stop or shutdown.requested
        self.heartbeat = heartbeat
        settings = services.config.pipeline
        self.batch = settings.persist_batch
        self.claim_idle_ms = settings.claim_idle_ms if claim_idle_ms is None else claim_idle_ms
        self.liveness = Liveness(self.client, self.consumer, settings.alive_ttl_ms)
        self.scan_seconds = services.config.delivery.scan_ms / 1000
        self.forwarder = Forwarder(services)
        # Accounts whose postback terminals are claims until their REST order history confirms them.
        self.confirming = ConfirmingAccounts(services)
        self.stall = stall or StallMarker(self.client)
        self.refused = False  # Redis refused a write during the last step (OOM)
        self.scan_refused_at = -1e9  # when Redis last refused the scanner a write (OOM)
        self._last_reclaim = 0.0
        self._last_takeover = 0.0
        self._own_unfinished = True  # what this consumer name holds from before (a restart) is read first
        self._last_beat = time.monotonic()
        self.stop_scanner = False

    # The long-running job:

    def run(self, max_seconds: float | None = None) -> int:
        """Store and forward until asked to stop (or `max_seconds` pass); returns events stored."""
        deadline = time.monotonic() + max_seconds if max_seconds else None
        scanner = threading.Thread(target=self._scan_loop, args=(deadline,), name="due-scanner", daemon=True)
        self.liveness.start()
        scanner.start()
        stored, attempt, group_checked = 0, 0, False
        try:
            while not self.stop.is_set() and (deadline is None or time.monotonic() < deadline):
                try:
                    if not group_checked:
                        ensure_group(self.client)
                        group_checked = True
                    self.refused = False
                    stored += self.step(BLOCK_MS)
                    attempt = 0
                    if not self.refused and time.monotonic() - self.scan_refused_at > 5:
                        self.stall.clear()
                except DatabaseAway:
                    break
                except redis.RedisError as exc:
                    attempt = self._redis_trouble(exc, attempt)
                    group_checked = False  # Redis may have restarted empty
                    self._own_unfinished = True  # a batch may be stored but not acknowledged
                self._beat()
        finally:
            self.stop_scanner = True
            scanner.join(timeout=5)
            self.forwarder.wait_idle(10)
            self.forwarder.close()
            self.liveness.stop()
        return stored

    def _redis_trouble(self, exc: redis.RedisError, attempt: int) -> int:
        """Back off after a Redis failure; an OOM also marks the pipeline stalled."""
        delay = BACKOFF[min(attempt, len(BACKOFF) - 1)] * random.uniform(0.8, 1.2)
        if is_oom(exc):
            self.stall.mark(OOM_REASON + " (maxmemory reached under noeviction)")
        elif attempt % 20 == 0:
            log.warning("Redis unavailable (%s: %s); retrying", type(exc).__name__, str(exc)[:200])
        self.stop.wait(delay)
        return attempt + 1

    def _beat(self) -> None:
        """Tell RQ this long job and its worker are alive."""
        if self.heartbeat and time.monotonic() - self._last_beat > HEARTBEAT_SECONDS:
            self._last_beat = time.monotonic()
            try:
                self.heartbeat()
            except redis.RedisError as exc:
                log.warning("RQ heartbeat failed (%s)", type(exc).__name__)

    def _scan_loop(self, deadline: float | None) -> None:
        """Second thread: claim due deliveries for lanes with room, resync now and then."""
        attempt = 0
        while not self.stop.is_set() and not self.stop_scanner and (deadline is None or time.monotonic() < deadline):
            try:
                self.forwarder.scan()
                self.forwarder.resync_now_and_then()
                attempt = 0
                self.stop.wait(self.scan_seconds)
            except redis.RedisError as exc:
                if is_oom(exc):
                    self.scan_refused_at = time.monotonic()
                attempt = self._redis_trouble(exc, attempt)
            except Exception:  # noqa: BLE001 - the database may be away; keep scanning
                log.warning("could not load due deliveries (database unavailable?); retrying", exc_info=True)
                self.stop.wait(1.0)

    # One step:

    def step(self, block_ms: int | None) -> int:
        """What this name held before, a killed or stuck worker's entries, else new ones; store and forward them."""
        self.liveness.refresh_due()
        entries = self._unfinished() or self._take_over() or self._reclaim()
        if not entries:
            reply = self.client.xreadgroup(GROUP, self.consumer, {STREAM: ">"}, count=self.batch, block=block_ms)
            entries = reply[0][1] if reply else []
        if not entries:
            return 0
        return self.store_and_forward(entries)

    def _unfinished(self) -> list:
        """Entries pending under this consumer's own name (a restart that reuses it, or an ack Redis refused)."""
        if not self._own_unfinished:
            return []
        reply = self.client.xreadgroup(GROUP, self.consumer, {STREAM: "0"}, count=self.batch)
        live = self._ack_deleted(reply[0][1] if reply else [])
        if not live:
            self._own_unfinished = False
        return live

    def _take_over(self) -> list:
        """Every liveness period: the entries of consumers whose liveness key is gone become ours at once."""
        if time.monotonic() - self._last_takeover < self.liveness.interval:
            return []
        self._last_takeover = time.monotonic()
        live = self._ack_deleted(take_over(self.client, self.consumer, self.batch))
        if live:
            self._last_takeover = 0.0  # more may wait: look again next step
        return live

    def _reclaim(self) -> list:
        """Entries pending longer than claim_idle_ms for any consumer (alive but stuck) become ours."""
        if time.monotonic() - self._last_reclaim < RECLAIM_SECONDS:
            return []
        self._last_reclaim = time.monotonic()
        try:
            reply = self.client.xautoclaim(STREAM, GROUP, self.consumer, self.claim_idle_ms, "0-0", count=self.batch)
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):
                ensure_group(self.client)
                return []
            raise
        live = self._ack_deleted(reply[1] if len(reply) > 1 else [])
        if live:
            self._last_reclaim = 0.0  # more may wait: look again next step
            log.warning("took over %d entries a stuck worker had read but not stored", len(live))
        return live

    def _ack_deleted(self, entries: list) -> list:
        """Ack entries deleted from the stream (stored, ack lost) that are still pending; the others."""
        gone = [entry_id for entry_id, fields in entries if fields is None]
        if gone:
            self.client.xack(STREAM, GROUP, *gone)
        return [(entry_id, fields) for entry_id, fields in entries if fields is not None]

    def store_and_forward(self, entries: list) -> int:
        """Persist one batch with the earlier arrivals of its orders that others hold, in arrival order;
        ack it with its counters and delivery claims in one round trip, forward it."""
        own = [entry_id for entry_id, _ in entries]
        entries = in_arrival_order(entries + earlier_arrivals(self.client, self.consumer, entries))
        batch, ids, bad = [], [], []
        for entry_id, fields in entries:
            ids.append(entry_id)
            try:
                arrival = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                batch.append(QueuedEvent(json.loads(fields[b"e"]), fields.get(b"b", b""), arrival))
            except (KeyError, ValueError, TypeError) as exc:
                bad.append((entry_id, fields, f"undecodable entry: {exc}"))
        try:
            result = self._persist(batch, own)
        except DatabaseAway:
            raise
        except Exception:
            log.exception("a batch of %d events failed to store; storing them one by one", len(batch))
            result = self._persist_one_by_one(batch, own, bad)
        self._dead_letter(bad)
        handoffs, scores = self.forwarder.plan(result)
        self._ack(ids, len(result.events), scores)
        for lane, tries in handoffs:
            lane.take(tries)
        try:
            observers.after_store(self.services, result)
        except Exception:  # noqa: BLE001 - a dashboard must never stop the pipeline
            log.exception("after_store observer failed")
        return len(result.events)

    def _ack(self, ids: list, stored: int, scores: dict[str, dict[str, float]]) -> None:
        """XACK + XDEL first (they free memory, so they pass even at maxmemory), then counters and claims."""
        pipe = self.client.pipeline(transaction=False)
        pipe.xack(STREAM, GROUP, *ids)
        pipe.xdel(STREAM, *ids)
        if stored:
            pipe.hincrby(STATS_KEY, "events_stored", stored)
        make_due(pipe, scores)
        replies = pipe.execute(raise_on_error=False)
        for reply in replies[:2]:
            if isinstance(reply, Exception):
                raise reply
        errors = [reply for reply in replies[2:] if isinstance(reply, Exception)]
        if errors:
            # Counters or due-set claims refused (OOM): the deliveries are pending in the database, and
            # the periodic resync puts them back into Redis once it takes writes again.
            log.warning("after storing a batch, Redis refused %d writes (%s)", len(errors), errors[0])
            if any(is_oom(e) for e in errors):
                self.refused = True
                self.stall.mark(OOM_REASON + " (maxmemory reached under noeviction)")

    # Storage with back-off:

    def _persist(self, batch: list[QueuedEvent], own: list) -> StoredBatch:
        """persist_batch, waiting out a database that is away and retrying a batch that raced another;
        `own`: the entry ids read by this consumer (kept claimed while waiting)."""
        services = self.services
        attempt = conflicts = 0
        self.forwarder.changes.check()  # route by a consumer added or changed a moment ago (app/consumers/revision.py)
        while True:
            try:
                return persist_batch(services.engine, batch, services.config.forward_urls, confirming=self.confirming)
            except Conflict:
                conflicts += 1
                if conflicts > CONFLICT_RETRIES:
                    raise
                time.sleep(random.uniform(0.001, 0.02) * conflicts)
            except (OperationalError, DBAPIError) as exc:
                if not (exc.connection_invalidated or isinstance(exc, OperationalError)):
                    raise
                delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                attempt += 1
                log.warning("database unavailable (%s); retrying in %.1fs", type(exc.orig).__name__, delay)
                self.stall.mark("database unavailable")
                self._keep_claim(own)
                self._beat()
                if self.stop.wait(delay):
                    raise DatabaseAway from exc
                services.engine.dispose()

    def _keep_claim(self, ids: list) -> None:
        """Reset the idle time of entries we hold, so no other worker takes over a batch we still retry."""
        try:
            self.client.xclaim(STREAM, GROUP, self.consumer, 0, ids, justid=True)
        except redis.RedisError:
            pass

    def _persist_one_by_one(self, batch: list[QueuedEvent], own: list, bad: list) -> StoredBatch:
        """Isolate a poison event: store the others (in arrival order), dead-letter the one that cannot be stored."""
        total = StoredBatch()
        for queued in batch:
            try:
                result = self._persist([queued], own)
            except DatabaseAway:
                raise
            except Exception as exc:
                fields = {b"e": json.dumps(queued.event).encode(), b"b": queued.body}
                bad.append((b"-", fields, f"cannot be stored: {type(exc).__name__}: {exc}"))
                continue
            total.events += result.events
            total.deliveries += result.deliveries
            total.bodies.update(result.bodies)
            total.states.update(result.states)
        return total

    def _dead_letter(self, bad: list) -> None:
        """Keep unstorable entries aside (with the reason), and forget their dedup key so a resend is taken."""
        for entry_id, fields, reason in bad:
            log.error("ingest entry %s cannot be stored: %s", entry_id, reason)
            self.client.xadd(DEAD_STREAM, {**fields, b"reason": reason.encode(), b"entry": entry_id})
            try:
                self.client.delete(DEDUP_PREFIX + OrderEvent.from_dict(json.loads(fields[b"e"])).dedup_key)
            except (KeyError, TypeError, ValueError):
                pass

    # In-process use (tests, tools):

    def run_until_idle(self, timeout: float = 30.0) -> None:
        """Store, forward and retry (what is due) until nothing is queued, pending, due or in flight."""
        ensure_group(self.client)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._last_reclaim = self._last_takeover = 0.0
            stored = self.step(None)
            self.forwarder.wait_idle(deadline - time.monotonic())
            handed = self.forwarder.scan()
            self.forwarder.wait_idle(deadline - time.monotonic())
            if not stored and not handed and self._quiet():
                return
        raise AssertionError("pipeline did not become idle in time")

    def _quiet(self) -> bool:
        """Nothing left in the stream or pending in the group, and every lane idle."""
        pending = self.client.xpending(STREAM, GROUP)["pending"]
        return not self.client.xlen(STREAM) and not pending and self.forwarder.idle()

    def close(self) -> None:
        """Release the lanes' threads and connections; drop the liveness key."""
        self.forwarder.close()
        self.liveness.stop()
