"""The queueing step: the dedup + XADD Lua script, on the request path and in bulk for replays."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from app.ingest.scripts import DEDUP_AND_APPEND, DEDUP_AND_APPEND_MANY, DEDUP_AND_APPEND_SHA
from app.redis_keys import STREAM

# A fallback makes waiting on Redis pointless: fail within a second instead of redis-py's default
# retries with backoff (~4.6 s measured on a dead server), well inside Kite's 2-3 s sender timeout.
INGEST_SOCKET_TIMEOUT = 1.0
INGEST_CONNECT_TIMEOUT = 0.5
#: CLIENT SETNAME of the request path's connections (so `CLIENT LIST` shows how many the web holds).
CLIENT_NAME = "orderhook-ingest"
_POOL_INTERNALS = ("maint_notifications", "orig_", "himport_registry")


class Update(Protocol):
    """One update to queue: its full dedup key, event id, event JSON and raw body."""

    dedup_key: str
    event_id: str
    payload: str
    body: bytes


@dataclass(frozen=True)
class QueuedUpdate:
    """An Update as plain data (what the fallbacks keep and give back)."""

    dedup_key: str
    event_id: str
    payload: str
    body: bytes


class RedisQueue:
    """Runs DEDUP_AND_APPEND: one packed EVALSHA per request, pipelined chunks for replays.

    The request path keeps its own idle connections in a list instead of redis-py's pool: the pool's
    get/release costs ~10 us per call here (a lock and a select() on the socket) against ~0.1 us, and
    a per-thread connection leaks one connection per request under gevent (threading.local is
    greenlet-local once patched: every client connection is a new greenlet). A connection that failed
    in any way is closed, never put back.
    """

    def __init__(self, client: redis.Redis, *, dedup_ttl: int) -> None:
        self.client = client
        self.dedup_ttl = dedup_ttl
        self._script = client.register_script(DEDUP_AND_APPEND)
        self._script_many = client.register_script(DEDUP_AND_APPEND_MANY)
        self._connection_class, self._connection_kwargs = _request_path_connection(client)
        self._idle: list[redis.Connection] = []
        self._pid = os.getpid()

    def queue(self, dedup_key: str, event_id: str, payload: str, body: bytes) -> bool:
        """True if the update was appended, False if its dedup key was already set; redis errors raise.

        redis-py's Script call costs ~50-80 us of CPU per call here against ~16 us for the same round
        trip sent pre-packed (measured on the 2-core machine); a NOSCRIPT (Redis restarted) loads the
        script and retries, a broken idle connection is replaced once, anything else raises.
        """
        if self._connection_class is None:
            return bool(self._script(keys=[dedup_key, STREAM], args=[event_id, self.dedup_ttl, payload, body]))
        command = _pack(
            b"EVALSHA", DEDUP_AND_APPEND_SHA, b"2", dedup_key, STREAM, event_id, self.dedup_ttl, payload, body
        )
        for attempt in range(3):
            conn, reused = self._take()
            try:
                conn.send_packed_command([command], check_health=False)
                reply = conn.read_response()
            except NoScriptError:
                try:
                    conn.send_packed_command([_pack(b"SCRIPT", b"LOAD", DEDUP_AND_APPEND)], check_health=False)
                    conn.read_response()
                except BaseException:
                    conn.disconnect()
                    raise
                self._give_back(conn)
                continue
            except redis.ResponseError:
                self._give_back(conn)  # e.g. OOM: the connection itself is fine
                raise
            except redis.ConnectionError:
                conn.disconnect()
                if not reused or attempt:
                    raise
                continue  # a stale idle connection (Redis restarted): dial once more
            except BaseException:
                conn.disconnect()  # e.g. a timeout: the reply may still arrive on this socket
                raise
            self._give_back(conn)
            return bool(reply)
        raise redis.ConnectionError("the ingest script could not be run")

    def queue_many(self, updates: list[Update]) -> list[bool]:
        """Run the step for many updates in one pipelined round trip (replays); True where appended."""
        pipe = self.client.pipeline(transaction=False)
        for update in updates:
            self._script(
                keys=[update.dedup_key, STREAM],
                args=[update.event_id, self.dedup_ttl, update.payload, update.body],
                client=pipe,
            )
        return [bool(added) for added in pipe.execute()]

    def queue_together(self, updates: list[Update]) -> list[bool]:
        """Run the step for several updates in one script: they reach the stream back to back, so one
        worker reads them in one batch and stores them in this order; True where appended."""
        keys = [STREAM, *(update.dedup_key for update in updates)]
        args: list = [self.dedup_ttl]
        for update in updates:
            args += [update.event_id, update.payload, update.body]
        return [bool(added) for added in self._script_many(keys=keys, args=args)]

    def ping(self) -> bool:
        """True when Redis answers."""
        return bool(self.client.ping())

    def _take(self) -> tuple[redis.Connection, bool]:
        """An idle connection of this process (True) or a new one (False)."""
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours to use
            self._idle, self._pid = [], os.getpid()
        try:
            return self._idle.pop(), True
        except IndexError:
            return self._connection_class(**self._connection_kwargs), False

    def _give_back(self, conn: redis.Connection) -> None:
        """Keep a healthy connection for the next request of this process."""
        if self._pid == os.getpid():
            self._idle.append(conn)


def _request_path_connection(client: redis.Redis) -> tuple[type | None, dict]:
    """The connection class and options of `client`'s server for the request path: short timeouts and
    no retry inside redis-py (RedisQueue.queue reconnects a stale connection once itself)."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(pool, redis.ConnectionPool) or not isinstance(kwargs, dict):
        return None, {}
    options = {k: v for k, v in kwargs.items() if not k.startswith(_POOL_INTERNALS)}
    options.update(
        socket_timeout=INGEST_SOCKET_TIMEOUT,
        socket_connect_timeout=INGEST_CONNECT_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        client_name=CLIENT_NAME,
    )
    return pool.connection_class, options


def _pack(*parts: str | bytes | int) -> bytes:
    """A RESP array of bulk strings: the wire form of one Redis command."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)
