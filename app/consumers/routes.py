"""The routing table of new events: which consumers a batch's deliveries are made for (docs/consumers.md).

Read by the persisting transaction (app/store.py) at most once a CONSUMERS_TTL per process, so consumers
added, changed, switched off or removed through the API or the CLI apply without a restart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app.consumers.filters import Filters, stored_filters
from app.consumers.model import API, consumer_id
from app.db import consumers

NO_FILTERS = Filters()


@dataclass(frozen=True)
class Route:
    """Where a batch's events may go: a consumer's id, target (deliveries.url), filters, and why it is disabled
    (a 410 Gone; None when it is not)."""

    id: str
    url: str
    filters: Filters
    disabled: str | None = None


#: The routing table (FORWARD_URLS and the consumers added as data), read at most once a second per process:
#: the consumers' query was ~300 us of a one-event batch's ~2.3 ms (bench/profile_worker.py). A change made in
#: this process (API, CLI, a 410 seen here) resets it at once; another process sees it within CONSUMERS_TTL
#: (docs/consumers.md "Changes without a restart").
CONSUMERS_TTL = 1.0
_consumers_cache: dict[tuple[str, ...], tuple[float, list[Route]]] = {}
_ROUTES = sa.select(
    consumers.c.id,
    consumers.c.url,
    consumers.c.source,
    consumers.c.filters,
    consumers.c.enabled,
    consumers.c.disabled_at,
    consumers.c.disabled_reason,
).order_by(consumers.c.created_at, consumers.c.id)


def forget_consumers() -> None:
    """Drop the cached routing table (after a consumer changed)."""
    _consumers_cache.clear()


def configured_consumers(conn: Connection, urls: tuple[str, ...]) -> list[Route]:
    """Every consumer new events go to: the FORWARD_URLS entries, then the enabled consumers added as data.

    A consumer switched off (`enabled` false) is not routed to: its pending deliveries stay pending, and it
    gets no new ones (docs/consumers.md "Enabled").
    """
    cached = _consumers_cache.get(urls)
    if cached is not None and time.monotonic() - cached[0] < CONSUMERS_TTL:
        return cached[1]
    rows = conn.execute(_ROUTES).all()
    disabled = {row.id: row.disabled_reason or "disabled" for row in rows if row.disabled_at is not None}
    found = [Route(cid, url, NO_FILTERS, disabled.get(cid)) for cid, url in {consumer_id(u): u for u in urls}.items()]
    found += [
        Route(row.id, row.url, stored_filters(row.filters), disabled.get(row.id))
        for row in rows
        if row.source == API and row.enabled
    ]
    _consumers_cache[urls] = (time.monotonic(), found)
    return found
