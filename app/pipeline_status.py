"""What the worker side reports about the pipeline in Redis: the ingest backlog and the stall marker.

/readyz (app/api/health.py) and /metrics (app/metrics.py) read both, through the probe client of
app/redis_conn.py. The marker is written by workers/stall.py (docs/pipeline.md).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import redis

from app.redis_keys import GROUP, STALLED_KEY, STREAM


def ingest_backlog(client: redis.Redis) -> dict[str, Any]:
    """Entries in oh:ingest (unread + pending: workers/pipeline.py deletes an entry once stored),
    the pending ones, and the age of the oldest."""
    pipe = client.pipeline(transaction=False)
    pipe.xlen(STREAM)
    pipe.xrange(STREAM, count=1)
    length, first = pipe.execute()
    pending = 0
    if length:
        try:
            pending = int(client.xpending(STREAM, GROUP).get("pending", 0))
        except redis.ResponseError:  # no consumer group yet: nothing was read
            pending = 0
    oldest_age = None
    if first:
        entry_id = first[0][0].decode() if isinstance(first[0][0], bytes) else str(first[0][0])
        millis = int(entry_id.split("-", 1)[0])
        oldest_age = max(0.0, time.time() - millis / 1000.0)
    return {"length": int(length), "pending": pending, "oldest_age_seconds": oldest_age}


def pipeline_stalled(client: redis.Redis) -> dict[str, Any] | None:
    """The worker side's stall report, or None when the pipeline runs."""
    raw = client.get(STALLED_KEY)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        data = {"reason": raw.decode(errors="replace")[:200]}
    if not isinstance(data, dict):
        data = {"reason": str(data)[:200]}
    reason = str(data.get("reason") or "stalled")[:200]
    since = data.get("since")
    return {"reason": reason, "since": since, "since_timestamp": unix_seconds(since)}


def unix_seconds(value: Any) -> float | None:
    """Unix seconds from a number or an ISO-8601 time (as stored by the worker side), else None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
