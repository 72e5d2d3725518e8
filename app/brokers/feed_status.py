"""Each connector's state in a Redis hash, written by the feeds process and read by `GET /api/feeds`.

Kept free of the WebSocket machinery so the web process can import it cheaply.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from typing import Any

import redis

from app.redis_keys import feed_status_key
from app.times import utc_now_iso

log = logging.getLogger("workers.feeds")

#: How often a running connector refreshes `updated_at`, so a reader can tell a dead process.
ALIVE_INTERVAL_SECONDS = 15.0
#: A running connector whose `updated_at` is older than this is reported `stale` by the API.
STALE_AFTER_SECONDS = 60.0


class FeedState:
    """Values of the `state` field."""

    #: The connector loop runs (connected or retrying; `connected` tells which).
    RUNNING = "running"
    #: Waiting for something the user must supply (dhan_web: a login frame).
    WAITING = "waiting"
    #: The broker refused the credentials: no more retries until they change.
    AUTH_FAILED = "auth_failed"
    #: Required variables are missing: not started.
    MISCONFIGURED = "misconfigured"
    #: The feeds process stopped this connector (shutdown).
    STOPPED = "stopped"


#: The state shown for a connection no feeds process has published yet.
NOT_STARTED = "not_started"

INT_FIELDS = ("reconnects", "messages", "events", "duplicates", "invalid", "pid")


class StatusPublisher:
    """Writes one connector's hash; a Redis outage is logged, never fatal to the connector."""

    def __init__(self, client: redis.Redis, name: str, broker: str, identity: dict[str, str] | None = None) -> None:
        self.client = client
        self.name = name
        self.broker = broker
        #: Fields that say whose connection this is (feed, account, account_id), written with every reset.
        self.identity = dict(identity or {})
        self.key = feed_status_key(name)
        #: Set when another process took this connection over: this one must not write its record any more.
        self.muted = False

    async def reset(self) -> None:
        """A fresh record at start-up: counters from zero, this process's pid."""
        mapping = {"name": self.name, "broker": self.broker, "pid": str(os.getpid()), "connected": "0"}
        await self._run(self._replace, {**mapping, **self.identity})

    async def remove(self) -> None:
        """Forget the record (the account was removed)."""
        await self._run(self.client.delete, self.key)

    async def update(self, **fields: Any) -> None:
        """Set fields (None clears the field); `updated_at` is refreshed on every write."""
        await self._run(self._write, fields, {})

    async def count(self, counter: str, amount: int = 1, **fields: Any) -> None:
        """Increment a counter and set fields in one round trip."""
        await self._run(self._write, fields, {counter: amount})

    async def _run(self, function: Any, *args: Any) -> None:
        """Blocking Redis off the event loop; failures are only logged."""
        if self.muted:
            return
        try:
            await asyncio.to_thread(function, *args)
        except redis.RedisError as exc:
            log.warning("%s: could not publish feed status to Redis (%s)", self.name, type(exc).__name__)

    def _replace(self, mapping: dict[str, str]) -> None:
        """DEL + HSET atomically."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.key)
        pipe.hset(self.key, mapping={**mapping, "updated_at": utc_now_iso()})
        pipe.execute()

    def _write(self, fields: dict[str, Any], counters: dict[str, int]) -> None:
        """HSET/HDEL/HINCRBY in one transaction."""
        pipe = self.client.pipeline(transaction=True)
        values = {k: _text(v) for k, v in fields.items() if v is not None}
        values["updated_at"] = utc_now_iso()
        pipe.hset(self.key, mapping=values)
        cleared = [k for k, v in fields.items() if v is None]
        if cleared:
            pipe.hdel(self.key, *cleared)
        for counter, amount in counters.items():
            pipe.hincrby(self.key, counter, amount)
        pipe.execute()


def touch(client: redis.Redis, names: list[str]) -> None:
    """Refresh `updated_at` of many connections in one round trip (the feeds supervisor, every ALIVE_INTERVAL)."""
    if not names:
        return
    now = utc_now_iso()
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hset(feed_status_key(name), "updated_at", now)
    pipe.execute()


def read_status(client: redis.Redis, name: str) -> dict[str, Any] | None:
    """One connector's published state with typed values, or None if it never ran."""
    raw = client.hgetall(feed_status_key(name))
    if not raw:
        return None
    data: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    for field in INT_FIELDS:
        data[field] = int(data[field]) if str(data.get(field, "")).lstrip("-").isdigit() else 0
    data["connected"] = data.get("connected") == "1"
    return data


def _text(value: Any) -> str:
    """Redis hash values as text (booleans as 1/0)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def published(client: redis.Redis, name: str) -> dict[str, Any]:
    """A connection as GET /api/feeds and the Accounts page show it: its published state, `not_started` when no
    feeds process ever ran it, and `stale` (not connected) when the process stopped refreshing it."""
    status = read_status(client, name)
    if status is None:
        return {
            "name": name,
            "state": NOT_STARTED,
            "connected": False,
            "last_message_at": None,
            "reconnects": 0,
            "last_error": None,
        }
    status.setdefault("last_message_at", None)
    status.setdefault("last_error", None)
    status["stale"] = status.get("state") != FeedState.STOPPED and _older_than(
        status.get("updated_at"), STALE_AFTER_SECONDS
    )
    if status["stale"]:
        status["connected"] = False
    return status


def _older_than(iso: str | None, seconds: float) -> bool:
    """True when an ISO time is missing, unreadable or more than `seconds` ago."""
    if not iso:
        return True
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return True
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (datetime.now(UTC) - moment).total_seconds() > seconds
