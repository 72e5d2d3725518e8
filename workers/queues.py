"""RQ queue names and handles: persistence first, then forwarding."""

from __future__ import annotations

import redis
from rq import Queue

PERSIST_QUEUE = "orderhook-persist"
FORWARD_QUEUE = "orderhook-forward"
QUEUE_NAMES = (PERSIST_QUEUE, FORWARD_QUEUE)


def queue(client: redis.Redis, name: str) -> Queue:
    """An RQ queue on the shared connection."""
    return Queue(name, connection=client)
