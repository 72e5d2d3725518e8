"""Retention (RETENTION_DAYS, docs/deploy.md): old raw postbacks, events, deliveries and idle orders are pruned.

Pruned in small transactions so a large backlog never holds a long lock. Never pruned: a pending
delivery, the event and raw body it still needs, and the encrypted feed secrets (their own table).
An order goes when its last update is older than the cutoff and none of its events is kept.
Note: an update redelivered after its event was pruned and after the dedup key expired (3 days) is
stored again as new; keep RETENTION_DAYS well above that (docs/api.md).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import redis
import sqlalchemy as sa

from app.db import deliveries, delivery_attempts, events, orders, raw_postbacks, utcnow
from app.redis_keys import RETENTION_PERIOD_KEY
from app.times import utc_iso

log = logging.getLogger(__name__)

BATCH = 1000
KINDS = ("delivery_attempts", "deliveries", "raw_postbacks", "events", "orders")
DEFAULT_EVERY_SECONDS = 3600


def prune_if_due(
    engine: sa.Engine, client: redis.Redis, days: int, *, every_seconds: int = DEFAULT_EVERY_SECONDS
) -> dict[str, int] | None:
    """Prune at most once per period across every worker process; None when not due.

    The worker calls this from its loop (e.g. each minute); the process whose SET NX makes the period's
    key prunes. Not a lock: nothing holds it while pruning and nobody releases it, it expires with the period.
    """
    if days <= 0 or not client.set(RETENTION_PERIOD_KEY, "1", nx=True, ex=every_seconds):
        return None
    return prune(engine, days)


def prune(engine: sa.Engine, days: int, dry_run: bool = False, *, batch: int = BATCH) -> dict[str, int]:
    """Remove (or with dry_run only count) rows older than `days`; returns the count per table."""
    if days <= 0:
        return dict.fromkeys(KINDS, 0)
    cutoff = utcnow() - timedelta(days=days)
    if dry_run:
        return _count(engine, cutoff)
    counts = dict.fromkeys(KINDS, 0)
    counts["delivery_attempts"], counts["deliveries"] = _prune_deliveries(engine, cutoff, batch)
    raw, counts["events"] = _prune_events(engine, cutoff, batch)
    counts["raw_postbacks"] = raw + _prune_orphan_raw(engine, cutoff, batch)
    counts["orders"] = _prune_orders(engine, cutoff, batch)
    if any(counts.values()):
        log.info("retention (%d days): pruned %s", days, ", ".join(f"{n} {k}" for k, n in counts.items()))
    return counts


def _old_deliveries(cutoff: datetime):
    """Finished (delivered or dead-lettered) deliveries created before the cutoff."""
    return sa.and_(deliveries.c.created_at < cutoff, deliveries.c.status != "pending")


def _still_needed():
    """Event ids a pending delivery will still send."""
    return sa.select(deliveries.c.event_id).where(deliveries.c.status == "pending")


def _old_events(cutoff: datetime):
    """Events stored before the cutoff that no pending delivery needs."""
    return sa.and_(events.c.stored_at < cutoff, events.c.id.not_in(_still_needed()))


def _orphan_raw(cutoff: datetime):
    """Raw postbacks received before the cutoff whose event is gone (or was never stored)."""
    return sa.and_(
        raw_postbacks.c.received_at < utc_iso(cutoff),
        ~sa.exists().where(events.c.id == raw_postbacks.c.event_id),
        raw_postbacks.c.event_id.not_in(_still_needed()),
    )


def _idle_orders(cutoff: datetime):
    """Orders last updated before the cutoff that keep no event."""
    kept = sa.exists().where(
        events.c.broker == orders.c.broker, events.c.order_id == orders.c.order_id, ~_old_events(cutoff)
    )
    return sa.and_(orders.c.updated_at < cutoff, ~kept)


def _count(engine: sa.Engine, cutoff: datetime) -> dict[str, int]:
    """What a prune at this cutoff would remove, counted with the same conditions."""
    old_delivery_ids = sa.select(deliveries.c.id).where(_old_deliveries(cutoff))
    old_event_ids = sa.select(events.c.id).where(_old_events(cutoff))
    queries = {
        "delivery_attempts": sa.select(sa.func.count()).where(delivery_attempts.c.delivery_id.in_(old_delivery_ids)),
        "deliveries": sa.select(sa.func.count()).select_from(deliveries).where(_old_deliveries(cutoff)),
        "raw_postbacks": sa.select(sa.func.count()).where(
            sa.or_(raw_postbacks.c.event_id.in_(old_event_ids), _orphan_raw(cutoff))
        ),
        "events": sa.select(sa.func.count()).select_from(events).where(_old_events(cutoff)),
        "orders": sa.select(sa.func.count()).select_from(orders).where(_idle_orders(cutoff)),
    }
    with engine.connect() as conn:
        return {kind: conn.execute(query).scalar_one() for kind, query in queries.items()}


def _prune_deliveries(engine: sa.Engine, cutoff: datetime, batch: int) -> tuple[int, int]:
    """Old finished deliveries with their attempts, a batch per transaction."""
    attempts = removed = 0
    while True:
        with engine.begin() as conn:
            ids = list(conn.execute(sa.select(deliveries.c.id).where(_old_deliveries(cutoff)).limit(batch)).scalars())
            if not ids:
                return attempts, removed
            attempts += conn.execute(
                delivery_attempts.delete().where(delivery_attempts.c.delivery_id.in_(ids))
            ).rowcount
            removed += conn.execute(deliveries.delete().where(deliveries.c.id.in_(ids))).rowcount


def _prune_events(engine: sa.Engine, cutoff: datetime, batch: int) -> tuple[int, int]:
    """Old events with their raw postbacks, a batch per transaction."""
    raw = removed = 0
    while True:
        with engine.begin() as conn:
            ids = list(conn.execute(sa.select(events.c.id).where(_old_events(cutoff)).limit(batch)).scalars())
            if not ids:
                return raw, removed
            raw += conn.execute(raw_postbacks.delete().where(raw_postbacks.c.event_id.in_(ids))).rowcount
            removed += conn.execute(events.delete().where(events.c.id.in_(ids))).rowcount


def _prune_orphan_raw(engine: sa.Engine, cutoff: datetime, batch: int) -> int:
    """Old raw postbacks left without an event."""
    removed = 0
    while True:
        with engine.begin() as conn:
            ids = list(conn.execute(sa.select(raw_postbacks.c.id).where(_orphan_raw(cutoff)).limit(batch)).scalars())
            if not ids:
                return removed
            removed += conn.execute(raw_postbacks.delete().where(raw_postbacks.c.id.in_(ids))).rowcount


def _prune_orders(engine: sa.Engine, cutoff: datetime, batch: int) -> int:
    """Idle orders that keep no event."""
    removed = 0
    while True:
        with engine.begin() as conn:
            keys = [
                tuple(r)
                for r in conn.execute(
                    sa.select(orders.c.broker, orders.c.order_id).where(_idle_orders(cutoff)).limit(batch)
                )
            ]
            if not keys:
                return removed
            removed += conn.execute(
                orders.delete().where(sa.tuple_(orders.c.broker, orders.c.order_id).in_(keys))
            ).rowcount
