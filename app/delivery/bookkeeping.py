"""Delivery bookkeeping, the domain side of forwarding: outcomes, dead letter, 410, redrive, enable.

Workers record what their attempts did here; the API and the CLI redrive and re-enable here. Nothing
in this module sends HTTP (workers/ does).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
import sqlalchemy as sa

from app.consumers.model import ID_PREFIX
from app.consumers.routes import forget_consumers
from app.db import consumers, deliveries, delivery_attempts, events, raw_postbacks, utcnow
from app.delivery.policy import Outcome, host_and_port, next_delay
from app.delivery.schedule import make_due, schedule_now
from app.rawlog import with_raw
from app.redis_keys import STATS_KEY, due_key

log = logging.getLogger(__name__)


@dataclass
class DeliveryTry:
    """A delivery about to be attempted: what bookkeeping needs, and the exact bytes to send."""

    id: int
    event_id: str
    consumer_id: str
    url: str
    attempts: int
    schedule_offset: int
    body: bytes


@dataclass
class Recorded:
    """What a round of outcomes did, for counters and logs."""

    delivered: int = 0
    failed: int = 0
    retried: int = 0
    gone_url: str | None = None
    not_recorded: list[int] = field(default_factory=list)


def record_outcomes(
    engine: sa.Engine,
    client: redis.Redis,
    schedule: tuple[float, ...],
    consumer_id: str,
    results: list[tuple[DeliveryTry, Outcome]],
) -> Recorded:
    """Attempts and delivery states in one transaction (executemany), then each delivery moved in Redis
    (done, or due again later) and the counters bumped in the same round trip."""
    now = utcnow()
    summary = Recorded()
    attempt_rows, updates, due_again, finished = [], [], {}, []
    for item, outcome in results:
        number = item.attempts + 1
        attempted_at = datetime.fromtimestamp(outcome.started_at, now.tzinfo) if outcome.started_at else now
        attempt_rows.append(
            {
                "delivery_id": item.id,
                "attempt": number,
                "attempted_at": attempted_at,
                "status_code": outcome.status_code,
                "latency_ms": round(outcome.latency_ms, 3),
                "error": outcome.error,
            }
        )
        update = {
            "d_id": item.id,
            "d_before": item.attempts,
            "attempts": number,
            "last_status_code": outcome.status_code,
            "last_error": outcome.error,
            "updated_at": now,
        }
        if outcome.ok:
            update.update(status="delivered", delivered_at=now, next_attempt_at=None)
            finished.append(item.id)
            summary.delivered += 1
        elif outcome.gone:
            update.update(status="failed", delivered_at=None, next_attempt_at=None)
            finished.append(item.id)
            summary.gone_url = item.url
            summary.failed += 1
        else:
            delay = next_delay(schedule, number - item.schedule_offset, outcome.retry_after)
            if delay is None:
                update.update(status="failed", delivered_at=None, next_attempt_at=None)
                finished.append(item.id)
                summary.failed += 1
                log.warning(
                    "delivery %s of %s to %s dead-lettered after %d attempts (%s)",
                    item.id,
                    item.event_id,
                    host_and_port(item.url),
                    number,
                    outcome.error,
                )
            else:
                due = now + timedelta(seconds=delay)
                update.update(status="pending", delivered_at=None, next_attempt_at=due)
                due_again[str(item.id)] = due.timestamp()
                summary.retried += 1
        updates.append(update)
    recorded = _write_outcomes(engine, updates, attempt_rows)
    summary.not_recorded = [u["d_id"] for u in updates if u["d_id"] not in recorded]
    pipe = client.pipeline(transaction=False)
    if finished:
        pipe.zrem(due_key(consumer_id), *[str(i) for i in finished])
    make_due(pipe, {consumer_id: due_again})
    for name, count in (
        ("deliveries_delivered", summary.delivered),
        ("deliveries_failed", summary.failed),
        ("deliveries_retried", summary.retried),
    ):
        if count:
            pipe.hincrby(STATS_KEY, name, count)
    pipe.execute()
    if summary.gone_url:
        disable_consumer(engine, client, consumer_id, summary.gone_url, "answered 410 Gone")
    return summary


_GUARDED_UPDATE = (
    deliveries.update()
    .where(
        deliveries.c.id == sa.bindparam("d_id"),
        deliveries.c.attempts == sa.bindparam("d_before"),
        deliveries.c.status == "pending",
    )
    .values(
        {
            name: sa.bindparam(name)
            for name in (
                "attempts",
                "last_status_code",
                "last_error",
                "updated_at",
                "status",
                "delivered_at",
                "next_attempt_at",
            )
        }
    )
)


def _write_outcomes(engine: sa.Engine, updates: list[dict], attempt_rows: list[dict]) -> set[int]:
    """Guarded by the attempt count read before sending, so an outcome is never counted twice.

    The common case is one executemany per table; when the guard held some row back (another worker
    recorded that delivery meanwhile) the transaction is redone row by row to see which.
    """
    if not updates:
        return set()
    with engine.begin() as conn:
        changed = conn.execute(_GUARDED_UPDATE, updates).rowcount
        if conn.dialect.supports_sane_multi_rowcount and changed == len(updates):
            conn.execute(delivery_attempts.insert(), attempt_rows)
            return {u["d_id"] for u in updates}
        conn.rollback()
    recorded = set()
    with engine.begin() as conn:
        for update in updates:
            if conn.execute(_GUARDED_UPDATE, update).rowcount:
                recorded.add(update["d_id"])
        rows = [row for row in attempt_rows if row["delivery_id"] in recorded]
        if rows:
            conn.execute(delivery_attempts.insert(), rows)
    return recorded


def disabled_reason(engine: sa.Engine, consumer_id: str) -> str | None:
    """Why the consumer is disabled, or None when it is not."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(consumers.c.disabled_reason).where(
                consumers.c.id == consumer_id, consumers.c.disabled_at.is_not(None)
            )
        ).first()
    return None if row is None else (row.disabled_reason or "disabled")


def disable_consumer(engine: sa.Engine, client: redis.Redis, consumer_id: str, url: str, reason: str) -> None:
    """Stop forwarding to a consumer that said 410 Gone; its pending deliveries go to the dead letter."""
    now = utcnow()
    with engine.begin() as conn:
        updated = conn.execute(
            consumers.update().where(consumers.c.id == consumer_id).values(disabled_at=now, disabled_reason=reason)
        ).rowcount
        if not updated:
            conn.execute(consumers.insert().values(id=consumer_id, url=url, disabled_at=now, disabled_reason=reason))
        forget_consumers()
        dead = conn.execute(
            deliveries.update()
            .where(deliveries.c.consumer_id == consumer_id, deliveries.c.status == "pending")
            .values(status="failed", last_error=f"consumer disabled: {reason}", next_attempt_at=None, updated_at=now)
        ).rowcount
    pipe = client.pipeline(transaction=False)
    pipe.delete(due_key(consumer_id))
    if dead:
        pipe.hincrby(STATS_KEY, "deliveries_failed", dead)
    pipe.execute()
    log.error(
        "consumer %s %s: forwarding to it is DISABLED and its pending deliveries are dead-lettered. "
        "Fix the consumer, then run `flask --app wsgi forward-enable <its URL>` and redrive.",
        host_and_port(url),
        reason,
    )


def fail_all(engine: sa.Engine, client: redis.Redis, consumer_id: str, ids: list[int], reason: str) -> None:
    """Dead-letter deliveries to a disabled consumer."""
    with engine.begin() as conn:
        dead = conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_(ids), deliveries.c.status == "pending")
            .values(status="failed", last_error=reason, next_attempt_at=None, updated_at=utcnow())
        ).rowcount
    pipe = client.pipeline(transaction=False)
    pipe.zrem(due_key(consumer_id), *[str(i) for i in ids])
    if dead:
        pipe.hincrby(STATS_KEY, "deliveries_failed", dead)
    pipe.execute()


def load_tries(engine: sa.Engine, ids: list[int], body_of: Any) -> tuple[list[DeliveryTry], set[int], str | None]:
    """Claimed deliveries still pending, with the bytes to send (`body_of(event)`); also the ids that are
    no longer pending, and why their consumer is disabled (None when it is not)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                deliveries.c.id,
                deliveries.c.event_id,
                deliveries.c.consumer_id,
                deliveries.c.url,
                deliveries.c.status,
                deliveries.c.attempts,
                deliveries.c.schedule_offset,
                events.c.data,
                raw_postbacks.c.body,
            )
            .join(events, events.c.id == deliveries.c.event_id)
            .outerjoin(raw_postbacks, raw_postbacks.c.event_id == deliveries.c.event_id)
            .where(deliveries.c.id.in_(ids))
        ).all()
        reason = None
        if rows:
            reason = conn.execute(
                sa.select(consumers.c.disabled_reason).where(
                    consumers.c.id == rows[0].consumer_id, consumers.c.disabled_at.is_not(None)
                )
            ).first()
            reason = None if reason is None else (reason.disabled_reason or "disabled")
    live = [row for row in rows if row.status == "pending"]
    stale = set(ids) - {row.id for row in live}
    tries = [
        DeliveryTry(
            row.id,
            row.event_id,
            row.consumer_id,
            row.url,
            row.attempts,
            row.schedule_offset,
            body_of(with_raw(row.data, row.body if row.body is not None else b"")),
        )
        for row in live
    ]
    return tries, stale, reason


def redrive(engine: sa.Engine, client: redis.Redis, ids: list[int]) -> int:
    """Make failed deliveries pending and due now (a fresh run of the retry schedule)."""
    if not ids:
        return 0
    now = utcnow()
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.id, deliveries.c.consumer_id).where(
                deliveries.c.id.in_(ids), deliveries.c.status == "failed"
            )
        ).all()
        if not rows:
            return 0
        conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_([r.id for r in rows]))
            .values(status="pending", schedule_offset=deliveries.c.attempts, next_attempt_at=now, updated_at=now)
        )
    schedule_now(client, [(r.id, r.consumer_id) for r in rows])
    return len(rows)


def failed_ids(
    engine: sa.Engine, consumer_url: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> list[int]:
    """Ids of failed (dead-lettered) deliveries of a consumer (its id or URL) and/or created in [since, until)."""
    query = sa.select(deliveries.c.id).where(deliveries.c.status == "failed")
    if consumer_url:
        query = query.where(sa.or_(deliveries.c.url == consumer_url, deliveries.c.consumer_id == consumer_url))
    if since:
        query = query.where(deliveries.c.created_at >= since)
    if until:
        query = query.where(deliveries.c.created_at < until)
    with engine.connect() as conn:
        return [row.id for row in conn.execute(query.order_by(deliveries.c.id))]


def of_removed_consumers(engine: sa.Engine, ids: list[int], chunk: int = 500) -> set[int]:
    """Those of these deliveries whose consumer was added as data and since removed: nothing sends to it any
    more, so redriving them would only fail them again (docs/api.md "Deliveries")."""
    found: set[int] = set()
    with engine.connect() as conn:
        for start in range(0, len(ids), chunk):
            query = sa.select(deliveries.c.id).where(
                deliveries.c.id.in_(ids[start : start + chunk]),
                deliveries.c.consumer_id.startswith(ID_PREFIX, autoescape=True),
                ~sa.exists().where(consumers.c.id == deliveries.c.consumer_id),
            )
            found.update(conn.execute(query).scalars())
    return found


def redrive_many(engine: sa.Engine, client: redis.Redis, ids: list[int], chunk: int = 500) -> int:
    """Redrive many failed deliveries, a chunk per transaction."""
    return sum(redrive(engine, client, ids[i : i + chunk]) for i in range(0, len(ids), chunk))


def enable_consumer(engine: sa.Engine, url: str) -> bool:
    """Forward to a consumer again after a 410 Gone disabled it; False if it was not disabled."""
    with engine.begin() as conn:
        changed = conn.execute(
            consumers.update().where(consumers.c.url == url).values(disabled_at=None, disabled_reason=None)
        ).rowcount
    forget_consumers()
    return bool(changed)
