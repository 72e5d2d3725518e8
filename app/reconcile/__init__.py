"""Reconciliation with the brokers' REST order books (docs/reconcile.md).

Brokers never replay a missed update, so the worker re-reads each broker's order book at start-up,
after every (re)connect of its feed, every RECONCILE_INTERVAL_SECONDS and on demand, and sends what it
finds through the same adapter -> dedup -> queue path as a postback, with `source: "reconcile"`.

`request_reconcile` is the cheap entry point for other processes: it only sets a Redis flag that the
worker's scheduler (workers/reconcile.py) picks up within a second.
"""

from __future__ import annotations

import logging

import redis

from app.redis_keys import reconcile_request_key

log = logging.getLogger(__name__)

#: A request older than this is dropped (no worker took it): the next periodic run covers it anyway.
REQUEST_TTL_SECONDS = 3600


def request_reconcile(client: redis.Redis, broker: str, reason: str) -> bool:
    """Ask the worker to reconcile `broker` soon (after a feed reconnect, on demand...); False if Redis is away.

    Cheap and safe on any path: one SET; several requests before the run are one run.
    """
    try:
        client.set(reconcile_request_key(broker), reason[:200] or "requested", ex=REQUEST_TTL_SECONDS)
    except redis.RedisError as exc:
        log.warning("could not request a %s reconciliation (%s); the periodic run will cover it", broker, exc)
        return False
    return True
