"""Consumer changes announced through Redis, so every worker routes and signs by them from its next batch.

The routing table and the signing keys are cached per process for a second (app/consumers/routes.py,
app/consumers/directory.py); without this, an event posted right after a consumer was added, or a delivery made
right after a rotation, could still follow the old table in another process (docs/consumers.md "Changes without
a restart"). A change made through the API or the CLI moves CONSUMERS_REVISION_KEY after its commit; a worker
GETs it before each batch it stores and each scan, and drops its caches when it moved.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

from app.redis_keys import CONSUMERS_REVISION_KEY

log = logging.getLogger(__name__)


def announce_change(client: redis.Redis | None) -> None:
    """Tell every worker that the consumers changed (after the change was committed)."""
    if client is None:
        return
    try:
        client.incr(CONSUMERS_REVISION_KEY)
    except redis.RedisError as exc:
        log.warning("could not announce a consumer change through Redis (%s); workers see it within a second", exc)


class ChangeWatch:
    """Calls `on_change` when the announced revision moved since the last check (one GET a check)."""

    def __init__(self, client: redis.Redis, on_change: Callable[[], None]) -> None:
        self.client, self.on_change = client, on_change
        self._seen: bytes | None | object = object()  # the first check always refreshes
        self._lock = threading.Lock()

    def check(self) -> None:
        """Refresh the caches if a change was announced; a Redis error leaves them to their one-second TTL."""
        try:
            revision = self.client.get(CONSUMERS_REVISION_KEY)
        except redis.RedisError:
            return
        with self._lock:
            if revision == self._seen:
                return
            self._seen = revision
        self.on_change()
