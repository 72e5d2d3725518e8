"""The one hook the worker calls after each committed batch: dashboards and alerts hear of it here.

The batch carries the stored events and, in `batch.states`, the new public state of every order it
touched, so a dashboard updates its rows without another query (app/live.py) and an alert knows a
late partial fill from news (app/alerts). It runs in the worker loop after the commit, never on the
request path: each step is quick, and a failure of one is logged, never raised (the updates are
stored already; an open dashboard catches up on its next snapshot).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import redis

from app import alerts, live

if TYPE_CHECKING:
    from app.services import Services
    from app.store import StoredBatch

log = logging.getLogger(__name__)


def after_store(services: Services, batch: StoredBatch) -> None:
    """Publish the changed orders to open dashboards, then queue the alerts the batch means."""
    if not batch.events:
        return
    live.publish_stored(services.redis, batch)
    adapters = services.adapters
    try:
        alerts.on_stored(
            services.redis,
            alert_settings(services),
            batch.events,
            batch.states,
            lambda broker, word: broker not in adapters or adapters[broker].is_known_status(word),
        )
    except redis.RedisError as exc:
        log.warning("alerts for a stored batch not queued (%s)", type(exc).__name__)


def alert_settings(services: Services) -> alerts.AlertSettings:
    """The alert settings of this process's configuration, read once."""
    cached = getattr(services, "_alert_settings", None)
    if cached is None:
        cached = alerts.settings_from(services.config)
        services._alert_settings = cached  # type: ignore[attr-defined]
    return cached
