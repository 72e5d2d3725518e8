"""The due schedule in Redis: one sorted set per consumer, delivery id -> when it is next due.

A worker claims deliveries by pushing their score past a visibility deadline; if it dies mid-attempt
the claim lapses and the delivery is due again (reliable-queue semantics, docs/delivery.md). The
database stays the truth: `resync_pending` puts every pending delivery back after a Redis loss.
"""

from __future__ import annotations

import time

import redis
import sqlalchemy as sa

from app.db import as_utc, deliveries, utcnow
from app.redis_keys import CLAIM_DUE, CONSUMERS_KEY, due_key


def make_due(pipe, by_consumer: dict[str, dict[str, float]]) -> None:
    """Queue ZADDs of {consumer: {delivery id: score}} on a pipeline (members already there are moved)."""
    for cid, members in by_consumer.items():
        if members:
            pipe.zadd(due_key(cid), members)
            pipe.sadd(CONSUMERS_KEY, cid)


def schedule_now(client: redis.Redis, created: list[tuple[int, str]]) -> None:
    """Make deliveries due now (after a redrive, or when no worker took them at once)."""
    if not created:
        return
    now = time.time()
    by_consumer: dict[str, dict[str, float]] = {}
    for delivery_id, cid in created:
        by_consumer.setdefault(cid, {})[str(delivery_id)] = now
    pipe = client.pipeline(transaction=False)
    make_due(pipe, by_consumer)
    pipe.execute()


def claim_due(client: redis.Redis, consumer_id: str, limit: int, visibility: float) -> list[int]:
    """Claim up to `limit` due deliveries for `visibility` seconds."""
    now = time.time()
    ids = client.eval(CLAIM_DUE, 1, due_key(consumer_id), now, limit, now + visibility)
    return [int(i) for i in ids]


def has_due(client: redis.Redis, consumer_id: str, now: float | None = None) -> bool:
    """True when the consumer has a delivery due now."""
    return bool(client.zrangebyscore(due_key(consumer_id), "-inf", now or time.time(), start=0, num=1))


def consumer_ids(client: redis.Redis) -> list[str]:
    """Every consumer with a due set."""
    return sorted(raw.decode() for raw in client.smembers(CONSUMERS_KEY))


def resync_pending(client: redis.Redis, engine: sa.Engine, page: int = 5000, max_pages: int = 40) -> int:
    """Put every pending delivery the database knows back into Redis (after a Redis loss or a crash).

    ZADD NX leaves deliveries Redis already has (and their claims) alone; pages keep each query small.
    """
    total, after = 0, 0
    for _ in range(max_pages):
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.id, deliveries.c.consumer_id, deliveries.c.next_attempt_at)
                .where(deliveries.c.status == "pending", deliveries.c.id > after)
                .order_by(deliveries.c.id)
                .limit(page)
            ).all()
        if not rows:
            break
        pipe = client.pipeline(transaction=False)
        for row in rows:
            due = as_utc(row.next_attempt_at) or utcnow()
            pipe.zadd(due_key(row.consumer_id), {str(row.id): due.timestamp()}, nx=True)
            pipe.sadd(CONSUMERS_KEY, row.consumer_id)
        pipe.execute()
        total += len(rows)
        after = rows[-1].id
    return total
