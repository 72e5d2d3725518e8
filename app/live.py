"""Live updates for the blotter: the worker publishes each stored change on Redis pub/sub channel `oh:live:<db>`.

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
from typing import TYPE_CHECKING, Any

import redis

from app.redis_conn import database_of
from app.redis_keys import live_channel
from app.state import public_view

if TYPE_CHECKING:
    from app.store import StoredBatch

log = logging.getLogger(__name__)

EVENT_FIELDS = ("id", "sequence", "status", "broker_status", "source", "received_at", "exchange_time", "reason")


def messages(batch: StoredBatch, published_at: float | None = None) -> list[str]:
    """One JSON message per order the batch touched, newest event summary included."""
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for event in batch.events:
        key = (event["broker"], event["order_id"])
        if key not in last or (event.get("sequence") or 0) >= (last[key].get("sequence") or 0):
            last[key] = event
    stamp = published_at if published_at is not None else time.time()
    out = []
    states = batch.states
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


def publish_stored(client: redis.Redis, batch: StoredBatch) -> int:
    """PUBLISH the batch's changes on oh:live:<db>; the number sent (0 when Redis refuses: logged, not raised)."""
    bodies = messages(batch)
    if not bodies:
        return 0
    try:
        channel = live_channel(database_of(client))
        pipe = client.pipeline(transaction=False)
        for body in bodies:
            pipe.publish(channel, body)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("live update not published (%s); open dashboards catch up on their next snapshot", exc)
        return 0
    return len(bodies)
