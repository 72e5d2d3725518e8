"""Housekeeping in the `worker` process: retention, and updates parked in the database while Redis was away.

Retention (`RETENTION_DAYS`, app/retention.py) runs at most once an hour across all worker processes
(a once-per-period Redis key). The web feeds its own parked updates back once Redis answers; the worker does it too,
so updates parked by a web dyno that was replaced meanwhile are not left waiting for the next web start.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import redis
from sqlalchemy.exc import SQLAlchemyError

from app.retention import prune_if_due

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)
INTERVAL_SECONDS = 60.0


def housekeep(services: Services) -> None:
    """One pass: prune if due, replay parked updates; failures are logged and retried next pass."""
    try:
        pruned = prune_if_due(services.engine, services.redis, services.config.retention_days)
        if pruned and any(pruned.values()):
            log.info("retention (%d days): pruned %s", services.config.retention_days, pruned)
    except (redis.RedisError, SQLAlchemyError) as exc:
        log.warning("retention skipped this pass (%s)", type(exc).__name__)
    try:
        queued, _duplicates = services.ingestor.replay_now()
        if queued:
            log.info("fed %d updates parked during a Redis outage into the stream", queued)
    except (redis.RedisError, SQLAlchemyError, OSError) as exc:
        log.warning("parked updates not replayed this pass (%s)", type(exc).__name__)


def start_housekeeping(services: Services, stop: threading.Event) -> threading.Thread:
    """Run housekeep every INTERVAL_SECONDS until `stop` is set."""

    def loop() -> None:
        while not stop.wait(INTERVAL_SECONDS):
            housekeep(services)

    thread = threading.Thread(target=loop, name="housekeeping", daemon=True)
    thread.start()
    return thread
