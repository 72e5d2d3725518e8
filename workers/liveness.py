"""Liveness keys of the pipeline loops, and taking over at once what a killed loop held (docs/pipeline.md).

Each loop, a consumer of the `persist` group, keeps `oh:pipeline:alive:<consumer>` alive: a thread of its
own refreshes it every third of PIPELINE_ALIVE_TTL_MS (3 s), so a long transaction or a database outage
never lets it lapse, and the loop deletes it when it stops. Entries pending for a consumer whose key is
gone were read by a loop that was killed before storing them: any other loop claims them (XCLAIM with a
small min-idle, so two claimers never both get them) and stores them; the store skips event ids it
already has, so each is stored exactly once. A live consumer keeps its entries however slow it is; the
idle-time fallback (PIPELINE_CLAIM_IDLE_MS, workers/pipeline.py) is for one that is alive but stuck.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import redis

from app.redis_keys import GROUP, STREAM, alive_key
from workers.arrival import pending_counts

log = logging.getLogger(__name__)

#: An entry is claimed from a dead holder only once it has been idle this long: a second loop that saw
#: the same holder dead finds the entry freshly claimed (idle reset) and leaves it. A killed holder's
#: entries are idle for at least two thirds of the TTL by the time its key is gone.
TAKEOVER_MIN_IDLE_MS = 1000


class Liveness:
    """One consumer's liveness key: refreshed by a thread while the loop runs, deleted when it stops."""

    def __init__(self, client: redis.Redis, consumer: str, ttl_ms: int) -> None:
        self.client = client
        self.key = alive_key(consumer)
        self.ttl_ms = ttl_ms
        self.interval = ttl_ms / 3000
        self._last = -1e9
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0

    def refresh(self) -> None:
        """PEXPIRE first (it needs no memory, so it passes at maxmemory); SET only when the key is gone."""
        if not self.client.pexpire(self.key, self.ttl_ms):
            self.client.set(self.key, str(os.getpid()), px=self.ttl_ms)
        self._last = time.monotonic()

    def refresh_due(self) -> None:
        """Refresh if a third of the TTL has passed; a Redis error is logged, never raised (the loop goes on)."""
        if time.monotonic() - self._last < self.interval:
            return
        try:
            self.refresh()
            self._failures = 0
        except redis.RedisError as exc:
            if self._failures % 30 == 0:
                log.warning("could not refresh the liveness key %s (%s)", self.key, type(exc).__name__)
            self._failures += 1

    def start(self) -> None:
        """Set the key now and keep it alive from a thread of its own until `stop`."""
        self.refresh_due()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="liveness", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Refresh every third of the TTL."""
        while not self._stop.wait(self.interval / 2):
            self.refresh_due()

    def stop(self) -> None:
        """Stop refreshing and delete the key: whatever this consumer still holds may be taken at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            self.client.delete(self.key)
        except redis.RedisError:
            pass  # it expires by itself


def pending_holders(client: redis.Redis, me: str) -> dict[str, int]:
    """Consumers of the group other than `me` holding pending entries, with how many."""
    return {name: n for name, n in pending_counts(client)[1].items() if name != me and n}


def dead_holders(client: redis.Redis, me: str) -> dict[str, int]:
    """Holders of pending entries whose liveness key is gone: killed between reading and storing."""
    holders = pending_holders(client, me)
    if not holders:
        return {}
    pipe = client.pipeline(transaction=False)
    for name in holders:
        pipe.exists(alive_key(name))
    return {name: n for (name, n), alive in zip(holders.items(), pipe.execute(), strict=True) if not alive}


def take_over(client: redis.Redis, me: str, count: int) -> list:
    """Claim up to `count` entries of dead holders for `me`; (id, fields) pairs, fields None if deleted."""
    entries: list = []
    for name in dead_holders(client, me):
        pending = client.xpending_range(STREAM, GROUP, "-", "+", count - len(entries), consumername=name)
        ids = [item["message_id"] for item in pending]
        if ids:
            claimed = client.xclaim(STREAM, GROUP, me, TAKEOVER_MIN_IDLE_MS, ids)
            entries += claimed
            if claimed:
                log.warning("took over %d entries of %s, whose liveness key is gone (killed?)", len(claimed), name)
        if len(entries) >= count:
            break
    return entries
