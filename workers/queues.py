"""RQ queue names and handles: one private queue per worker slot, holding that slot's loop job."""

from __future__ import annotations

import redis
from rq import Queue

PIPELINE_QUEUE = "orderhook-pipeline"


def slot_queue_name(index: int) -> str:
    """The queue of worker slot `index` (at most one loop job waits or runs in it)."""
    return f"{PIPELINE_QUEUE}-{index}"


def queue(client: redis.Redis, name: str) -> Queue:
    """An RQ queue on the shared connection."""
    return Queue(name, connection=client)
