"""The one Redis round trip on the request path: dedup and append to the ingest stream, atomically.

When Redis cannot take an update (down, restarting, refusing writes), the update goes to a local
fsynced spool file instead and is still acknowledged (app/spool.py); a replayer thread feeds the
spool through the same Lua step once Redis answers. Only when even the spool write fails does the
sender get 503 (interface.md: 503 only when the update could not be kept durably).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import threading
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from app.events import OrderEvent
from app.exceptions import NotDurableError
from app.spool import SpoolRecord, SpoolWriter, claim_file, is_unowned, replay_claimed, spool_files

log = logging.getLogger(__name__)

STREAM = "oh:ingest"
DEDUP_PREFIX = "oh:dedup:"
REPLAY_BACKOFF = (0.05, 0.1, 0.2, 0.5)
# The spool makes waiting on Redis pointless: fail within a second instead of redis-py's default
# retries with backoff (~4.6 s measured on a dead server), well inside Kite's 2-3 s sender timeout.
INGEST_SOCKET_TIMEOUT = 1.0
INGEST_CONNECT_TIMEOUT = 0.5
_POOL_INTERNALS = ("maint_notifications", "orig_", "himport_registry")

# KEYS: dedup key, stream. ARGV: event id, ttl seconds, event JSON, raw body.
# SET NX and XADD in one script: fifty concurrent copies of an update give exactly one entry.
_DEDUP_AND_APPEND = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return 0
end
redis.call('XADD', KEYS[2], '*', 'e', ARGV[3], 'b', ARGV[4])
return 1
"""


class Ingestor:
    """Queues normalized events for the workers; one instance per process.

    With `spool_dir` set, a Redis failure opens a circuit: updates go straight to the spool (no
    waiting on a dead Redis per request) until the replayer sees Redis answer again.
    """

    def __init__(self, client: redis.Redis, *, dedup_ttl: int, spool_dir: Path | None = None) -> None:
        self.client = ingest_client(client)
        self.dedup_ttl = dedup_ttl
        self._script = self.client.register_script(_DEDUP_AND_APPEND)
        self._sha = self._script.sha.encode()
        pool = getattr(self.client, "connection_pool", None)
        self._pool = pool if isinstance(pool, redis.ConnectionPool) else None
        self._local = threading.local()
        self.spool_dir = spool_dir
        self._writer = SpoolWriter(spool_dir) if spool_dir is not None else None
        self._spooling = False
        self._spooled_keys: set[str] = set()
        self._replaying = False
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._adopt_orphans()

    def submit(self, event: OrderEvent, raw_body: bytes) -> bool:
        """True if the update is new (queued or spooled), False if it is a duplicate; NotDurableError if
        neither Redis nor the spool could keep it."""
        if self._pid != os.getpid():
            self._adopt_orphans()  # first update in a forked process (a new gunicorn worker, say)
        event_id = event.id
        # ASCII JSON: a lone surrogate (a "\ud800" escape in the body) must not make the update unsendable.
        payload = json.dumps(_event_dict(event, event_id), separators=(",", ":"))
        key = DEDUP_PREFIX + event.dedup_key
        if not self._spooling:
            try:
                return self._queue(key, event_id, payload, raw_body)
            except redis.RedisError as exc:
                if self._writer is None:
                    raise NotDurableError(
                        f"the update could not be queued durably ({type(exc).__name__}); please retry"
                    ) from exc
                self._open_circuit(exc)
        return self._spool(SpoolRecord(key, event_id, payload, raw_body))

    def _queue(self, key: str, event_id: str, payload: str, raw_body: bytes) -> bool:
        """The dedup + XADD step as one pre-packed EVALSHA on this thread's own connection.

        redis-py's Script call costs ~50-80 us of CPU per call here against ~16 us for the same round
        trip sent this way (measured on the 2-core machine); a NOSCRIPT (Redis restarted) loads the
        script and retries, a broken pooled connection is replaced once, anything else raises.
        """
        pool = self._pool
        if pool is None:
            return bool(self._script(keys=[key, STREAM], args=[event_id, self.dedup_ttl, payload, raw_body]))
        command = _pack(b"EVALSHA", self._sha, b"2", key, STREAM, event_id, self.dedup_ttl, payload, raw_body)
        for attempt in range(3):
            conn = self._connection(pool)
            try:
                conn.send_packed_command([command], check_health=False)
                return bool(conn.read_response())
            except NoScriptError:
                conn.send_packed_command([_pack(b"SCRIPT", b"LOAD", _DEDUP_AND_APPEND)], check_health=False)
                conn.read_response()
            except redis.ResponseError:
                raise
            except redis.ConnectionError:
                self._drop_connection(pool)
                if attempt:
                    raise
            except BaseException:
                self._drop_connection(pool)  # e.g. a timeout: the reply may still arrive on this socket
                raise
            finally:  # integration: under gevent "thread" locals are per greenlet: hand the connection back
                if getattr(self._local, "conn", None) is conn:  # or each request leaks one until the pool is full
                    self._local.conn = None
                    pool.release(conn)
        raise redis.ConnectionError("the ingest script could not be run")

    def _connection(self, pool: redis.ConnectionPool):
        """This thread's connection (a fresh one after a fork)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid() or local.conn is None:
            local.conn, local.pid = pool.get_connection(), os.getpid()
        return local.conn

    def _drop_connection(self, pool: redis.ConnectionPool) -> None:
        """Close this thread's connection and hand it back; the next call dials again."""
        conn, self._local.conn = getattr(self._local, "conn", None), None
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.disconnect()
            pool.release(conn)

    @property
    def spooling(self) -> bool:
        """True while updates go to the local spool instead of Redis."""
        return self._spooling

    # Spooling:

    def _open_circuit(self, exc: Exception) -> None:
        """Send updates to the spool until the replayer sees Redis answer."""
        with self._process_lock():
            if not self._spooling:
                self._spooling = True
                log.error(
                    "Redis cannot take updates (%s: %s): SPOOLING postbacks to %s and still acknowledging them; "
                    "they are fed to Redis when it answers again",
                    type(exc).__name__,
                    str(exc)[:200],
                    self.spool_dir,
                )
            self._ensure_replayer()

    def _spool(self, record: SpoolRecord) -> bool:
        """Keep one update in the spool file (fdatasync'ed before the 202)."""
        assert self._writer is not None
        with self._process_lock():
            if record.dedup_key in self._spooled_keys:
                return False
            try:
                self._writer.append(record)
            except OSError as exc:
                log.error("spool write to %s failed (%s): answering 503", self.spool_dir, exc)
                raise NotDurableError(
                    "the update could not be kept durably (Redis unavailable and the local spool failed); please retry"
                ) from exc
            self._spooled_keys.add(record.dedup_key)
            self._ensure_replayer()
        return True

    def _process_lock(self) -> threading.Lock:
        """The lock of this process (a fresh one after a fork: a parent's thread may have held the old one)."""
        if self._pid != os.getpid():
            self._lock = threading.Lock()
            self._pid = os.getpid()
            self._replaying = False
            self._spooled_keys = set()
        return self._lock

    def _adopt_orphans(self) -> None:
        """Replay the spool files of processes that stopped before feeding them in (checked once per process)."""
        with self._process_lock():
            if self.spool_dir is None or self._replaying:
                return
            orphans = [path for path in spool_files(self.spool_dir) if is_unowned(path)]
            if orphans:
                log.warning(
                    "spool %s holds %d file(s) of a stopped process; feeding them in", self.spool_dir, len(orphans)
                )
                self._ensure_replayer()

    def _ensure_replayer(self) -> None:
        """Start this process's replayer thread unless it runs (call with the process lock held)."""
        if self._replaying or self.spool_dir is None:
            return
        self._replaying = True
        threading.Thread(target=self._replay_loop, name="spool-replayer", daemon=True).start()

    # Replaying:

    def _replay_loop(self) -> None:
        """Until the spool is empty: wait for Redis, close the circuit, feed every unowned spool file."""
        attempt = 0
        while True:
            try:
                self.client.ping()
                self._close_circuit()
                claimed = self._replay_all()
            except (redis.RedisError, OSError) as exc:
                delay = REPLAY_BACKOFF[min(attempt, len(REPLAY_BACKOFF) - 1)]
                if attempt % 100 == 0:
                    log.warning("spool replay waits for Redis (%s); retrying", type(exc).__name__)
                attempt += 1
                time.sleep(delay)
                continue
            attempt = 0
            with self._process_lock():
                idle = not self._spooling and (self._writer is None or self._writer.records == 0)
                if idle and not claimed:
                    self._replaying = False
                    return

    def _close_circuit(self) -> None:
        """Redis answers: new updates go to it again, and the file written so far becomes replayable."""
        with self._process_lock():
            if self._spooling:
                log.warning("Redis answers again: spooling STOPPED; replaying the spool from %s", self.spool_dir)
            self._spooling = False
            self._spooled_keys.clear()
            if self._writer is not None:
                self._writer.rotate()

    def _replay_all(self) -> int:
        """Replay every spool file nobody else holds; returns how many files were replayed."""
        assert self.spool_dir is not None
        claimed = 0
        for path in spool_files(self.spool_dir):
            fd = self._claim(path)
            if fd is None:
                continue
            claimed += 1
            started = time.monotonic()
            counts = [0, 0]
            replay_claimed(fd, path, functools.partial(self._take, counts=counts))
            log.warning(
                "spool %s replayed: %d updates queued, %d duplicates dropped, in %.2fs",
                path.name,
                counts[1],
                counts[0],
                time.monotonic() - started,
            )
        return claimed

    def _claim(self, path: Path) -> int | None:
        """Lock a file for replay, never this process's active one (checked under the lock the writer
        opens files under: a POSIX lock cannot tell this process's own writer from its replayer)."""
        with self._process_lock():
            if self._writer is not None and path == self._writer.own_path():
                return None
            return claim_file(path)

    def _take(self, records: list[SpoolRecord], counts: list[int]) -> None:
        """Run the dedup + XADD step for a chunk of records in one pipelined round trip."""
        pipe = self.client.pipeline(transaction=False)
        for record in records:
            self._script(
                keys=[record.dedup_key, STREAM],
                args=[record.event_id, self.dedup_ttl, record.payload, record.body],
                client=pipe,
            )
        for added in pipe.execute():
            counts[1 if added else 0] += 1


def _pack(*parts: str | bytes | int) -> bytes:
    """A RESP array of bulk strings: the wire form of one Redis command."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _event_dict(event: OrderEvent, event_id: str) -> dict:
    """OrderEvent.to_dict() without dataclasses.asdict's deep copy of `raw` (~55 us per postback measured):
    the dict is only serialized here, never mutated."""
    data = {"id": event_id}
    for name in _event_fields():
        data[name] = getattr(event, name)
    return data


@functools.cache
def _event_fields() -> tuple[str, ...]:
    """OrderEvent's field names, in declaration order (as asdict emits them)."""
    return tuple(f.name for f in dataclasses.fields(OrderEvent))


def ingest_client(client: redis.Redis) -> redis.Redis:
    """A client to the same server for the request path only: short timeouts and at most one
    immediate reconnect (a stale pooled connection), never a retry after a timeout."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(pool, redis.ConnectionPool) or not isinstance(kwargs, dict):
        return client
    options = {k: v for k, v in kwargs.items() if not k.startswith(_POOL_INTERNALS)}
    options.update(
        socket_timeout=INGEST_SOCKET_TIMEOUT,
        socket_connect_timeout=INGEST_CONNECT_TIMEOUT,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    )
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **options))
