"""Run the connectors named in FEEDS side by side on one event loop until told to stop."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from app.brokers.feed import FeedConnector
from app.brokers.feed_status import ALIVE_INTERVAL_SECONDS
from app.brokers.loader import connector_classes

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger("workers.feeds")

#: FEEDS name -> connector, from the broker specs (app/config.py KNOWN_FEEDS lists the same names).
CONNECTORS: dict[str, type[FeedConnector]] = connector_classes()


def build_connectors(
    services: Services, stop: asyncio.Event, names: tuple[str, ...] | None = None
) -> list[FeedConnector]:
    """One connector per FEEDS entry; bad settings raise ConfigurationError before anything connects."""
    settings = services.config.feed_settings
    names = services.config.feeds if names is None else names
    return [CONNECTORS[name](services, stop, settings) for name in dict.fromkeys(names)]


async def run_connectors(connectors: list[FeedConnector], stop: asyncio.Event) -> None:
    """Every connector concurrently, then idle until stopped (so a refused feed stays visible, not flapping)."""
    if not connectors:
        log.info("no feed is enabled (FEEDS is empty); idling until stopped")
    alive = asyncio.ensure_future(_keep_alive(connectors))
    try:
        await asyncio.gather(*(_supervise(connector) for connector in connectors))
        await stop.wait()
    finally:
        alive.cancel()
        await asyncio.gather(alive, return_exceptions=True)


async def run_feeds(services: Services, stop: asyncio.Event, names: tuple[str, ...] | None = None) -> None:
    """Build and run the connectors for FEEDS (or `names`) until `stop` is set."""
    await run_connectors(build_connectors(services, stop, names), stop)


async def _supervise(connector: FeedConnector) -> None:
    """Run one connector; a bug in it is logged and the connector restarted, never taking the others down."""
    while not connector.stop.is_set():
        try:
            await connector.run()
            return
        except Exception as exc:  # noqa: BLE001 - isolation between connectors is the point
            log.exception("%s feed crashed; restarting it", connector.name)
            await connector.status.update(last_error=connector.describe(exc))
            await connector.pause(connector.settings.backoff_max)


async def _keep_alive(connectors: list[FeedConnector]) -> None:
    """Refresh each connector's `updated_at`, so the API can tell a live process from a dead one."""
    while True:
        await asyncio.sleep(ALIVE_INTERVAL_SECONDS)
        for connector in connectors:
            await connector.status.update()
