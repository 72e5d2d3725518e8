"""Live updates for the blotter: the worker publishes each stored change on Redis pub/sub channel `oh:live`.

Publishing happens after the batch is committed, in the worker (never on the postback's request
path). One compact JSON message per touched order: its public state after the batch and a summary of
the batch's last event for it. The web's stream hub (app/api/stream.py) fans these out to browsers.
A dashboard that was away catches up from a fresh snapshot, so a message lost while no one listens
costs nothing; publishing failures are logged and never stop storage.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis
import sqlalchemy as sa

from app.db import orders
from app.state import public_view

log = logging.getLogger(__name__)

CHANNEL = "oh:live"
EVENT_FIELDS = ("id", "sequence", "status", "broker_status", "source", "received_at", "exchange_time", "reason")


@dataclass
class LiveBatch:
    """What a stored batch changed: its events (with sequence) and each touched order's public state."""

    events: list[dict[str, Any]] = field(default_factory=list)
    states: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


def messages(batch: Any, published_at: float | None = None) -> list[str]:
    """One JSON message per order the batch touched, newest event summary included."""
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for event in batch.events:
        key = (event["broker"], event["order_id"])
        if key not in last or (event.get("sequence") or 0) >= (last[key].get("sequence") or 0):
            last[key] = event
    stamp = published_at if published_at is not None else time.time()
    out = []
    states = getattr(batch, "states", None) or {}
    for key, event in last.items():
        state = states.get(key)
        if state is None:
            continue
        body = {
            "type": "order",
            "order": public_view(state),
            "event": {name: event.get(name) for name in EVENT_FIELDS},
            "published_at": round(stamp, 3),
        }
        out.append(json.dumps(body, separators=(",", ":"), default=str))
    return out


def publish_stored(client: redis.Redis, batch: Any) -> int:
    """PUBLISH the batch's changes on `oh:live`; returns messages sent (0 when Redis refuses: logged, not raised)."""
    bodies = messages(batch)
    if not bodies:
        return 0
    try:
        pipe = client.pipeline(transaction=False)
        for body in bodies:
            pipe.publish(CHANNEL, body)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("live update not published (%s); open dashboards catch up on their next snapshot", exc)
        return 0
    return len(bodies)


def with_states(engine: sa.Engine, batch: Any) -> Any:
    """The batch itself when it carries `states`, else a LiveBatch with the touched orders' states read back."""
    if getattr(batch, "states", None) or not batch.events:
        return batch
    keys = sorted({(event["broker"], event["order_id"]) for event in batch.events})
    states: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        with engine.connect() as conn:
            for start in range(0, len(keys), 400):
                chunk = keys[start : start + 400]
                query = sa.select(orders.c.broker, orders.c.order_id, orders.c.data).where(
                    sa.tuple_(orders.c.broker, orders.c.order_id).in_(chunk)
                )
                for row in conn.execute(query):
                    states[(row.broker, row.order_id)] = dict(row.data)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("live update skipped: order states could not be read back (%s)", type(exc).__name__)
    return LiveBatch(events=list(batch.events), states=states)
