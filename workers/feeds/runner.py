"""Run the feeds: the environment's connectors named in FEEDS and every account's, under the supervisor.

workers/feeds/supervisor.py decides which connections this process holds (leases shared with the other feeds
processes) and follows the accounts as they change; this module names the connector classes and builds the
environment's connectors once at start-up, so bad settings stop the process before anything connects.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from app.brokers.feed import FeedConnector
from app.brokers.loader import connector_classes
from workers.feeds.supervisor import Supervisor

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


def build_supervisor(
    services: Services, stop: asyncio.Event, names: tuple[str, ...] | None = None, *, holder: str | None = None
) -> Supervisor:
    """The supervisor over FEEDS (or `names`) and the accounts; checks the environment's connectors' settings."""
    names = services.config.feeds if names is None else names
    build_connectors(services, stop, names)
    return Supervisor(services, stop, CONNECTORS, tuple(names), holder=holder)


async def run_feeds(services: Services, stop: asyncio.Event, names: tuple[str, ...] | None = None) -> None:
    """Run the environment's feeds (FEEDS or `names`) and the accounts' until `stop` is set."""
    await build_supervisor(services, stop, names).run()
