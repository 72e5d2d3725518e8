"""Replay: every stored event of a window that passes a consumer's filters, delivered to it again with its
original id (so its `webhook-id`, and an rq job's id, are the ones first sent; docs/consumers.md "Replay").

An event the consumer already has a delivery of makes that delivery pending again (a fresh run of the retry
schedule, its attempts kept in the log); an event it never had (stored before the consumer was added, or
filtered out then) gets a new delivery. A pending delivery is left as it is: it is being sent.
"""

from __future__ import annotations

from datetime import datetime

import redis
import sqlalchemy as sa

from app.consumers.model import Consumer
from app.db import deliveries, events, utcnow
from app.delivery.schedule import schedule_now

#: The most events one replay takes (a longer window: replay it in parts).
MAX_EVENTS = 100_000
CHUNK = 500


class TooMany(ValueError):
    """The window holds more than MAX_EVENTS events."""


def window_events(engine: sa.Engine, consumer: Consumer, since: datetime, until: datetime | None) -> list[str]:
    """Ids of the events stored in [since, until) that pass the consumer's filters, oldest first."""
    query = sa.select(events.c.id).where(events.c.stored_at >= since)
    if until is not None:
        query = query.where(events.c.stored_at < until)
    chosen = consumer.filters
    for values, column in (
        (chosen.brokers, events.c.broker),
        (chosen.accounts, events.c.account_id),
        (chosen.statuses, events.c.status),
        (chosen.sources, events.c.source),
    ):
        if values:
            query = query.where(column.in_(sorted(values)))
    query = query.order_by(events.c.stored_at, events.c.id).limit(MAX_EVENTS + 1)
    with engine.connect() as conn:
        ids = [row.id for row in conn.execute(query)]
    if len(ids) > MAX_EVENTS:
        raise TooMany(f"the window holds more than {MAX_EVENTS} events; replay it in shorter windows")
    return ids


def replay(
    engine: sa.Engine, client: redis.Redis, consumer: Consumer, since: datetime, until: datetime | None = None
) -> int:
    """Deliver the window's events to the consumer again; returns how many events the window holds."""
    ids = window_events(engine, consumer, since, until)
    for start in range(0, len(ids), CHUNK):
        due = _redeliver(engine, consumer, ids[start : start + CHUNK])
        schedule_now(client, [(delivery_id, consumer.id) for delivery_id in due])
    return len(ids)


def _redeliver(engine: sa.Engine, consumer: Consumer, event_ids: list[str]) -> list[int]:
    """Pending-again or new deliveries of these events, in one transaction; their ids."""
    now = utcnow()
    with engine.begin() as conn:
        existing = {
            row.event_id: row
            for row in conn.execute(
                sa.select(deliveries.c.id, deliveries.c.event_id, deliveries.c.status).where(
                    deliveries.c.consumer_id == consumer.id, deliveries.c.event_id.in_(event_ids)
                )
            )
        }
        again = [row.id for row in existing.values() if row.status != "pending"]
        if again:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id.in_(again))
                .values(
                    status="pending",
                    url=consumer.target,
                    schedule_offset=deliveries.c.attempts,
                    next_attempt_at=now,
                    delivered_at=None,
                    updated_at=now,
                )
            )
        rows = [
            {
                "event_id": event_id,
                "consumer_id": consumer.id,
                "url": consumer.target,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
                "next_attempt_at": now,
            }
            for event_id in event_ids
            if event_id not in existing
        ]
        made = []
        if rows:
            made = [
                row.id
                for row in conn.execute(
                    deliveries.insert().returning(deliveries.c.id, sort_by_parameter_order=True), rows
                )
            ]
    return again + made
