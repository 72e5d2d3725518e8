"""Where an acknowledged update waits while Redis cannot take it: the database (shared, durable), and
optionally a local fsynced spool (SPOOL_DIR, for machines whose disk outlives the process).

A broker does not replay a postback (Kite: "fire and forget"), so the web keeps the update and still
answers 202; the replayer (app/ingest/replay.py) later feeds it through the same dedup + XADD step and
only then deletes it. Feeding an update twice is harmless: its dedup key makes the second a no-op.
A Heroku-style dyno's disk is gone when the dyno is replaced, so the database is the default: any
process of the app (another web dyno, the worker) can finish the replay.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.db import metadata, utcnow
from app.ingest.queue import QueuedUpdate, RedisQueue, Update
from app.spool import SpoolRecord, SpoolWriter, claim_file, is_unowned, replay_claimed, spool_files

log = logging.getLogger(__name__)

REPLAY_CHUNK = 500

#: Updates acknowledged while Redis could not take them (migration 0004). The dedup key is unique, so a
#: copy that arrives during the outage, at any web process, is answered 200 as a duplicate.
ingest_fallback = sa.Table(
    "ingest_fallback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dedup_key", sa.String(255), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("dedup_key", name="uq_ingest_fallback_dedup_key"),
)


class FallbackError(Exception):
    """The fallback could not keep the update (the caller tries the next one, or answers 503)."""


class Fallback(Protocol):
    """A place that keeps updates until Redis takes them."""

    name: str

    def keep(self, update: Update) -> bool:
        """Keep the update durably before it is acknowledged: True if new here, False if already kept."""

    def has_pending(self) -> bool:
        """True when something waits to be fed to Redis."""

    def replay(self, queue: RedisQueue) -> tuple[int, int]:
        """Feed everything kept into Redis, deleting it after; (queued, duplicates). Redis errors raise."""


class DatabaseFallback:
    """Rows of `ingest_fallback` in the app's database."""

    name = "the database (table ingest_fallback)"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def keep(self, update: Update) -> bool:
        """INSERT the update in its own transaction (committed before the 202)."""
        row = {
            "dedup_key": update.dedup_key,
            "event_id": update.event_id,
            "payload": update.payload,
            "body": update.body,
            "created_at": utcnow(),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(ingest_fallback.insert(), row)
        except IntegrityError:
            return False  # the same update is already waiting (unique dedup key)
        except SQLAlchemyError as exc:
            raise FallbackError(f"database fallback failed: {type(exc).__name__}") from exc
        return True

    def has_pending(self) -> bool:
        """Any row waiting (False when the table is not there yet or the database is away)."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(sa.select(ingest_fallback.c.id).limit(1)).first() is not None
        except SQLAlchemyError:
            return False

    def replay(self, queue: RedisQueue) -> tuple[int, int]:
        """Oldest first, in chunks: queue a chunk, then delete its rows (a crash between re-feeds it)."""
        counts = [0, 0]
        table = ingest_fallback
        columns = (table.c.id, table.c.dedup_key, table.c.event_id, table.c.payload, table.c.body)
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(*columns).order_by(table.c.id).limit(REPLAY_CHUNK)).all()
            if not rows:
                return counts[1], counts[0]
            updates = [QueuedUpdate(row.dedup_key, row.event_id, row.payload, bytes(row.body)) for row in rows]
            for added in queue.queue_many(updates):
                counts[1 if added else 0] += 1
            with self.engine.begin() as conn:
                conn.execute(table.delete().where(table.c.id.in_([row.id for row in rows])))


class SpoolFallback:
    """The local fsynced spool (app/spool.py): one file per writing process, replayed by anyone."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.name = f"the local spool {directory}"
        self._writer = SpoolWriter(directory)
        self._kept: set[str] = set()
        self._lock = threading.Lock()

    def keep(self, update: Update) -> bool:
        """Append to this process's spool file (fdatasync'ed before the 202)."""
        with self._lock:
            if update.dedup_key in self._kept:
                return False
            try:
                self._writer.append(SpoolRecord(update.dedup_key, update.event_id, update.payload, update.body))
            except OSError as exc:
                log.error("spool write to %s failed (%s)", self.directory, exc)
                raise FallbackError(f"spool write failed: {type(exc).__name__}") from exc
            self._kept.add(update.dedup_key)
        return True

    def has_pending(self) -> bool:
        """Records in this process's file, or files of processes that stopped before replaying them."""
        if self._writer.own_path() is not None and self._writer.records:
            return True
        own = self._writer.own_path()
        return any(path != own and is_unowned(path) for path in spool_files(self.directory))

    def replay(self, queue: RedisQueue) -> tuple[int, int]:
        """Close this process's file (it becomes replayable), then feed every file nobody holds."""
        with self._lock:
            self._writer.rotate()
            self._kept.clear()
        counts = [0, 0]
        for path in spool_files(self.directory):
            fd = self._claim(path)
            if fd is None:
                continue
            started = time.monotonic()
            before = list(counts)
            replay_claimed(fd, path, functools.partial(_take, queue=queue, counts=counts))
            log.warning(
                "spool %s replayed: %d updates queued, %d duplicates dropped, in %.2fs",
                path.name,
                counts[1] - before[1],
                counts[0] - before[0],
                time.monotonic() - started,
            )
        return counts[1], counts[0]

    def reset_after_fork(self) -> None:
        """A fresh lock and no remembered keys in a new process."""
        self._lock = threading.Lock()
        self._kept = set()

    def _claim(self, path: Path) -> int | None:
        """Lock a file for replay, never this process's active one (checked under the writer's lock: a
        POSIX lock cannot tell this process's own writer from its replayer)."""
        with self._lock:
            if path == self._writer.own_path():
                return None
            return claim_file(path)


def _take(records: list[SpoolRecord], queue: RedisQueue, counts: list[int]) -> None:
    """Queue a chunk of spool records in one pipelined round trip."""
    for added in queue.queue_many(records):
        counts[1 if added else 0] += 1
