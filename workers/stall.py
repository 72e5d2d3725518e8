"""The stalled marker: `oh:pipeline:stalled` = {"reason", "since"} while the worker cannot make progress.

/readyz and /metrics read it. It is written with a TTL that each further failure refreshes, and
deleted as soon as a step succeeds; it is written by a script whose first write needs no memory, so
it can be set even while Redis refuses writes at maxmemory (app/redis_keys.py MARK_STALLED).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import redis

from app.redis_keys import MARK_STALLED, STALLED_KEY, STALLED_PROBE_KEY

log = logging.getLogger(__name__)
TTL_MS = 30_000
OOM_REASON = "redis out of memory"
REFRESH_SECONDS = 5.0


def is_oom(exc: BaseException) -> bool:
    """Redis at maxmemory under noeviction refuses writes with an OOM error."""
    if isinstance(exc, redis.exceptions.OutOfMemoryError):  # redis-py strips the "OOM" prefix
        return True
    return isinstance(exc, redis.ResponseError) and (str(exc).startswith("OOM") or "maxmemory" in str(exc))


class StallMarker:
    """Marks and clears the pipeline's stalled state for this process."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.reason: str | None = None
        self._written = 0.0
        self._script = client.register_script(MARK_STALLED)

    def mark(self, reason: str) -> None:
        """Say the pipeline is stalled (refreshing the TTL at most every few seconds); never raises."""
        now = time.monotonic()
        if reason == self.reason and now - self._written < REFRESH_SECONDS:
            return
        if reason != self.reason:
            log.error("pipeline STALLED: %s; backing off until it recovers", reason)
        self.reason, self._written = reason, now
        value = json.dumps({"reason": reason, "since": datetime.now(UTC).isoformat().replace("+00:00", "Z")})
        try:
            self._script(keys=[STALLED_KEY], args=[value, TTL_MS])
        except redis.RedisError as exc:
            log.warning("could not record the stalled state in Redis (%s)", type(exc).__name__)

    def clear(self) -> None:
        """The pipeline moves again: drop the marker (only a call after a mark costs a round trip).

        An idle loop writes nothing, so after an OOM a small write proves that Redis takes writes again.
        """
        if self.reason is None:
            return
        try:
            if OOM_REASON in self.reason:
                self.client.set(STALLED_PROBE_KEY, "1", px=1000)
        except redis.RedisError as exc:
            if is_oom(exc):
                self.mark(self.reason)  # still full: keep the marker alive
            return
        try:
            self.client.delete(STALLED_KEY)
        except redis.RedisError:
            return
        log.warning("pipeline recovered from: %s", self.reason)
        self.reason = None
