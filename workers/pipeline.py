"""The persist job: drain the ingest stream in batches into the database.

The web answers after one atomic Redis step (dedup + XADD, app/ingest.py). This RQ job reads the
stream through a consumer group, so an entry it has read but not yet stored stays pending in Redis:
if the worker dies, the next drain reads its pending entries first (`XREADGROUP ... 0`) and stores
them, once, because persistence skips event ids already stored.
"""

from __future__ import annotations

import json
import logging
import os
import time

import redis
from sqlalchemy.exc import DBAPIError, OperationalError

from app import live  # integration: blotter live updates (app/observers.after_store later)
from app.events import OrderEvent
from app.ingest import DEDUP_PREFIX, STREAM
from app.services import get_services
from app.store import QueuedEvent, StoredBatch, persist_batch
from workers import forwarding, shutdown
from workers.leases import Lease

log = logging.getLogger(__name__)

GROUP = "persist"
CONSUMER = "drain"  # one drain at a time (the lease), so one consumer name owns every pending entry
LEASE_KEY = "oh:persist:lease"
QUEUED_KEY = "oh:persist:queued"
DEAD_STREAM = "oh:ingest:dead"
BATCH = int(os.environ.get("PERSIST_BATCH") or 500)
LEASE_MS = 15_000
MAX_JOB_SECONDS = 20.0
IDLE_EXIT_SECONDS = 1.0
# After a short batch, let a burst gather: each transaction has a fixed cost of ~10 statements, and
# with ingest sharing the cores batches otherwise average ~6 events (docs/performance.md).
LINGER_SECONDS = float(os.environ.get("PERSIST_LINGER_MS") or 20) / 1000
DB_BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)


def ensure_group(client: redis.Redis) -> None:
    """Create the consumer group (from the stream's start, so nothing queued before it is skipped)."""
    try:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def drain_ingest() -> int:
    """RQ job: store everything queued, in batches, until the stream stays empty; returns events stored."""
    services = get_services()
    client = services.redis
    lease = Lease(client, LEASE_KEY, LEASE_MS)
    acquired = lease.acquire()
    client.delete(QUEUED_KEY)
    if not acquired:
        return 0
    stored = 0
    try:
        ensure_group(client)
        deadline = time.monotonic() + MAX_JOB_SECONDS
        stored += _drain(client, lease, "0", deadline)  # entries a dead drain left pending
        idle_since = time.monotonic()
        while shutdown.keep_going(deadline, idle_since, IDLE_EXIT_SECONDS):
            count = _drain(client, lease, ">", deadline, block_ms=200)
            if count:
                stored += count
                idle_since = time.monotonic()
    except DatabaseAway:
        log.warning("database still unavailable; the queued updates stay pending in Redis for the next drain")
    except LeaseLost:
        log.warning("persist lease lapsed during a batch; stopping this drain (the next one carries on)")
    finally:
        lease.release()
    return stored


def _drain(client: redis.Redis, lease: Lease, start: str, deadline: float, block_ms: int | None = None) -> int:
    """Read and store batches from `start` ('0' = our pending entries, '>' = new ones)."""
    stored = 0
    while time.monotonic() < deadline and not shutdown.requested.is_set():
        reply = client.xreadgroup(GROUP, CONSUMER, {STREAM: start}, count=BATCH, block=block_ms)
        entries = reply[0][1] if reply else []
        if not entries:
            return stored
        stored += _store_entries(client, lease, entries, deadline)
        if not lease.refresh():
            raise LeaseLost
        if start == ">" and len(entries) < BATCH:
            time.sleep(LINGER_SECONDS)
            return stored
    return stored


def _store_entries(client: redis.Redis, lease: Lease, entries: list, deadline: float) -> int:
    """Persist one batch (retrying while the database is away), then ack it and hand deliveries on."""
    batch, ids, bad = [], [], []
    for entry_id, fields in entries:
        ids.append(entry_id)
        try:
            batch.append(QueuedEvent(json.loads(fields[b"e"]), fields.get(b"b", b"")))
        except (KeyError, ValueError) as exc:
            bad.append((entry_id, fields, f"undecodable entry: {exc}"))
    try:
        result = _persist_with_backoff(lease, batch, deadline)
    except DatabaseAway:
        raise
    except Exception:
        log.exception("a batch of %d events failed to store; storing them one by one", len(batch))
        result = _persist_one_by_one(lease, batch, deadline, bad)
    _dead_letter(client, bad)
    pipe = client.pipeline(transaction=False)
    pipe.xack(STREAM, GROUP, *ids)
    pipe.xdel(STREAM, *ids)
    pipe.execute()
    forwarding.schedule_new(client, result.deliveries)
    _announce(client, result)  # integration: alerts after storage
    live.publish_stored(client, live.with_states(get_services().engine, result))  # integration: blotter
    return len(result.events)


def _announce(client: redis.Redis, result: StoredBatch) -> None:
    """Alerts for what was just stored (never on the request path); a failure here loses no update."""
    from app.alerts import on_stored, settings_from

    services = get_services()
    try:
        on_stored(client, settings_from(services.config), result.events, None, _known_status(services))
    except redis.RedisError:
        log.warning("could not queue alerts for a stored batch")


def _known_status(services):
    """(broker, word) -> True when the broker's status map knows the word."""
    adapters = services.adapters
    return lambda broker, word: broker not in adapters or adapters[broker].is_known_status(word)


class DatabaseAway(Exception):
    """The database did not come back before the job's deadline; entries stay pending."""


class LeaseLost(Exception):
    """This drain held the stream too long and its lease lapsed: stop, another drain may have started."""


def _persist_one_by_one(lease: Lease, batch: list[QueuedEvent], deadline: float, bad: list) -> StoredBatch:
    """Isolate a poison event: store the others, dead-letter the one that cannot be stored."""
    total = StoredBatch()
    for queued in batch:
        try:
            result = _persist_with_backoff(lease, [queued], deadline)
        except DatabaseAway:
            raise
        except Exception as exc:
            fields = {b"e": json.dumps(queued.event).encode(), b"b": queued.body}
            bad.append((b"-", fields, f"cannot be stored: {type(exc).__name__}: {exc}"))
            continue
        total.events += result.events
        total.deliveries += result.deliveries
    return total


def _persist_with_backoff(lease: Lease, batch: list[QueuedEvent], deadline: float) -> StoredBatch:
    """persist_batch, backing off while the database is unreachable; DatabaseAway if it stays away."""
    services = get_services()
    attempt = 0
    while True:
        try:
            return persist_batch(services.engine, batch, services.config.forward_urls)
        except (OperationalError, DBAPIError) as exc:
            if not _is_connectivity_error(exc):
                raise
            delay = DB_BACKOFF[min(attempt, len(DB_BACKOFF) - 1)]
            attempt += 1
            log.warning("database unavailable (%s); retrying in %.1fs", type(exc.orig).__name__, delay)
            if time.monotonic() + delay > deadline or not lease.refresh():
                raise DatabaseAway from exc
            time.sleep(delay)
            services.engine.dispose()


def _is_connectivity_error(exc: DBAPIError) -> bool:
    """Errors that mean "the database is away or busy", worth waiting out; anything else is a bug."""
    if exc.connection_invalidated or isinstance(exc, OperationalError):
        return True
    return False


def _dead_letter(client: redis.Redis, bad: list) -> None:
    """Keep unstorable entries aside (with the reason), and forget their dedup key so a resend is taken."""
    for entry_id, fields, reason in bad:
        log.error("ingest entry %s cannot be stored: %s", entry_id, reason)
        client.xadd(DEAD_STREAM, {**fields, b"reason": reason.encode(), b"entry": entry_id})
        try:
            client.delete(DEDUP_PREFIX + OrderEvent.from_dict(json.loads(fields[b"e"])).dedup_key)
        except (KeyError, TypeError, ValueError):
            pass
