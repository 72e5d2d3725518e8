"""Persistence of a batch of queued events: raw log, events with per-order sequence, order state, deliveries.

One transaction per batch (docs/delivery.md §7: batching is what makes persistence keep up), idempotent
by event id so a batch that is replayed after a worker died is stored exactly once. The body is stored
once, in raw_postbacks; `events.data` has no `raw` (app/rawlog.py rebuilds it when an event leaves).

`sequence` is the event's place in its order's arrival order: a batch comes in arrival order (the
ingest stream's entry ids, kept in `events.arrival`) and holds every unstored earlier arrival of its
orders (workers/pipeline.py sees to both, docs/pipeline.md), so numbering from the stored count and
folding the state event by event follow arrival whichever loop stores it.

Several workers may store batches at once. PostgreSQL: the orders a batch touches are locked
(`SELECT ... FOR UPDATE`, in key order so two batches never deadlock) before it looks for what is
already stored. SQLite: the transaction takes the write lock before it reads, so writers run one after
the other. Either way, two batches that still raced on a new order collide on the unique (broker,
order_id, sequence) or on the event id, and the loser is retried whole (`Conflict`), so `sequence`
stays 1, 2, 3 ... without gaps or repeats.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from app.consumers.model import consumer_id
from app.consumers.routes import configured_consumers
from app.db import deliveries, events, orders, raw_postbacks, utcnow
from app.state import OrderState, apply_event


@dataclass
class QueuedEvent:
    """An event as it comes off the ingest stream: normalized dict, the raw bytes, its stream entry id."""

    event: dict[str, Any]
    body: bytes
    arrival: str | None = None


@dataclass(frozen=True)
class NewDelivery:
    """A pending delivery created with its event: enough to send it without reading it back."""

    id: int
    event_id: str
    consumer_id: str
    url: str


@dataclass
class StoredBatch:
    """What a batch changed: new events (with sequence, without raw), their bodies, the pending
    deliveries created for them, and the new public state of every order it touched."""

    events: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[NewDelivery] = field(default_factory=list)
    skipped: int = 0
    bodies: dict[str, bytes] = field(default_factory=dict)
    states: dict[tuple[str, str], dict] = field(default_factory=dict)


__all__ = ["Conflict", "NewDelivery", "QueuedEvent", "StoredBatch", "consumer_id", "persist_batch", "raw_body"]


class Conflict(Exception):
    """Another worker stored an event of the same order at the same time; retry the batch whole."""


def persist_batch(
    engine: Engine,
    batch: list[QueuedEvent],
    forward_urls: tuple[str, ...] = (),
    *,
    confirming: Collection[str] = (),
) -> StoredBatch:
    """Store a batch in one transaction; events already stored are skipped, not stored twice.

    The batch is in arrival order and numbered in it. `confirming`: brokers whose postback terminals are
    claims until their order history confirms them.
    """
    try:
        return _persist(engine, batch, forward_urls, confirming)
    except IntegrityError as exc:
        raise Conflict(str(exc.orig)[:200]) from exc


def _persist(
    engine: Engine, batch: list[QueuedEvent], forward_urls: tuple[str, ...], confirming: Collection[str]
) -> StoredBatch:
    """The transaction of persist_batch."""
    result = StoredBatch()
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            # Take the write lock before reading states: SQLite then runs writers one at a time.
            conn.execute(sa.text("UPDATE orders SET event_count = event_count WHERE 0 = 1"))
        # Lock first, then look: a batch that waited for another holding the same orders sees its events.
        states = _load_states(conn, {(q.event["broker"], q.event["order_id"]) for q in batch})
        fresh = _fresh(conn, batch)
        result.skipped = len(batch) - len(fresh)
        if not fresh:
            return result
        keys = {(q.event["broker"], q.event["order_id"]) for q in fresh}
        existing = set(states)
        now = utcnow()
        event_rows, raw_rows = [], []
        for queued in fresh:
            event = {k: v for k, v in queued.event.items() if k != "raw"}  # the body is the one copy
            key = (event["broker"], event["order_id"])
            states[key] = apply_event(states.get(key), event, confirming=confirming)
            event["sequence"] = states[key].shown["event_count"]
            result.events.append(event)
            body = raw_body(queued)
            result.bodies[event["id"]] = body
            event_rows.append(_event_row(event, queued.arrival, now))
            raw_rows.append(
                {
                    "event_id": event["id"],
                    "broker": event["broker"],
                    "source": event["source"],
                    "received_at": event["received_at"],
                    "body": body,
                }
            )
        conn.execute(raw_postbacks.insert(), raw_rows)
        conn.execute(events.insert(), event_rows)
        _save_states(conn, {k: states[k] for k in keys}, existing, now)
        result.deliveries = _create_deliveries(conn, result.events, forward_urls, now)
    result.states = {key: states[key].public() for key in keys}
    return result


def raw_body(queued: QueuedEvent) -> bytes:
    """What raw_postbacks keeps for an event: a postback's bytes as received; for a WebSocket update the
    update's own payload as JSON (a frame may carry several updates, or need decoding first)."""
    if queued.event.get("source") == "postback" or "raw" not in queued.event:
        return queued.body
    try:
        return json.dumps(queued.event["raw"], ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate: ASCII escapes keep it storable
        return json.dumps(queued.event["raw"], separators=(",", ":")).encode()


def _fresh(conn: Connection, batch: list[QueuedEvent]) -> list[QueuedEvent]:
    """Events of the batch not yet stored (a replayed batch, or a repeat inside the batch)."""
    ids = [q.event["id"] for q in batch]
    stored = set()
    for start in range(0, len(ids), 500):
        stored.update(row.id for row in conn.execute(_KNOWN_IDS, {"ids": ids[start : start + 500]}))
    fresh, seen = [], set()
    for queued in batch:
        event_id = queued.event["id"]
        if event_id in stored or event_id in seen:
            continue
        seen.add(event_id)
        fresh.append(queued)
    return fresh


def _load_states(conn: Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], OrderState]:
    """Current states of the orders a batch touches, locked for update where the database can."""
    states: dict[tuple[str, str], OrderState] = {}
    key_list = sorted(keys)
    query = _STATES_LOCKED if conn.dialect.name == "postgresql" else _STATES
    for start in range(0, len(key_list), 400):
        for row in conn.execute(query, {"keys": key_list[start : start + 400]}):
            states[(row.broker, row.order_id)] = OrderState.from_stored(row.data)
    return states


# Built once: constructing an IN query per batch cost ~250 us of a one-event batch (profiled).
_KNOWN_IDS = sa.select(events.c.id).where(events.c.id.in_(sa.bindparam("ids", expanding=True)))
_STATES = sa.select(orders.c.broker, orders.c.order_id, orders.c.data).where(
    sa.tuple_(orders.c.broker, orders.c.order_id).in_(sa.bindparam("keys", expanding=True))
)
_STATES_LOCKED = _STATES.with_for_update()


def _event_row(event: dict[str, Any], arrival: str | None, now) -> dict[str, Any]:
    """Columns of the events table for one event."""
    return {
        "arrival": arrival,
        "id": event["id"],
        "broker": event["broker"],
        "order_id": event["order_id"],
        "sequence": event["sequence"],
        "account_id": event.get("account_id"),
        "status": event["status"],
        "source": event["source"],
        "received_at": event["received_at"],
        "stored_at": now,
        "data": event,
    }


def _save_states(conn: Connection, states: dict[tuple[str, str], OrderState], existing: set, now) -> None:
    """Insert new orders and update known ones, each in one executemany."""
    inserts, updates = [], []
    for (broker, order_id), state in states.items():
        shown = state.shown
        row = {
            "account_id": shown.get("account_id"),
            "status": shown["status"],
            "event_count": shown["event_count"],
            "updated_at": now,
            "data": state.stored(),
        }
        if (broker, order_id) in existing:
            updates.append({"b_broker": broker, "b_order_id": order_id, **{"u_" + k: v for k, v in row.items()}})
        else:
            inserts.append({"broker": broker, "order_id": order_id, **row})
    if inserts:
        conn.execute(orders.insert(), inserts)
    if updates:
        conn.execute(
            orders.update()
            .where(orders.c.broker == sa.bindparam("b_broker"), orders.c.order_id == sa.bindparam("b_order_id"))
            .values(
                {
                    name: sa.bindparam("u_" + name)
                    for name in ("account_id", "status", "event_count", "updated_at", "data")
                }
            ),
            updates,
        )


def _create_deliveries(conn: Connection, new_events: list[dict], urls: tuple[str, ...], now) -> list[NewDelivery]:
    """One delivery per new event and consumer whose filters it passes, in the same transaction as the event;
    returns the pending ones.

    A consumer disabled by a 410 still gets its rows, dead-lettered at once, so nothing is silently
    dropped: after it is enabled again they can be redriven.
    """
    targets = configured_consumers(conn, urls)
    if not targets:
        return []
    rows = [
        {
            "event_id": event["id"],
            "consumer_id": route.id,
            "url": route.url,
            "status": "failed" if route.disabled else "pending",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
            "next_attempt_at": None if route.disabled else now,
            "last_error": f"not attempted: consumer disabled ({route.disabled})" if route.disabled else None,
        }
        for event in new_events
        for route in targets
        if route.filters.matches(event)
    ]
    if not rows:
        return []
    returned = conn.execute(
        deliveries.insert().returning(
            deliveries.c.id,
            deliveries.c.event_id,
            deliveries.c.consumer_id,
            deliveries.c.url,
            deliveries.c.status,
            sort_by_parameter_order=True,
        ),
        rows,
    )
    return [NewDelivery(r.id, r.event_id, r.consumer_id, r.url) for r in returned if r.status == "pending"]
