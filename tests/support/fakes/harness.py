"""Run one connector against a fake inside a test, with short timings and bounded waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from app import create_app
from app.brokers.feed import FeedConnector
from app.brokers.feed_status import read_status
from app.config import load_config
from app.services import Services, set_services
from tests.support.fakes.socket_server import WAIT_SECONDS, wait_until

#: Fast backoff and timeouts so a reconnect takes milliseconds.
FAST = {
    "FEEDS_BACKOFF_BASE_SECONDS": "0.02",
    "FEEDS_BACKOFF_MAX_SECONDS": "0.1",
    "FEEDS_CONNECT_TIMEOUT_SECONDS": "2",
    "FEEDS_LOGIN_TIMEOUT_SECONDS": "2",
    "FEEDS_FRAME_POLL_SECONDS": "0.05",
}


class ServiceBuilder:
    """Builds Services over the test env plus overrides; disposes them when the test ends."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env  # the `env` fixture: this run's own Redis database, flushed around each test
        self.built: list[Services] = []

    def __call__(self, **overrides: str) -> Services:
        services = Services.build(load_config({**self.env, **FAST, **overrides}))
        set_services(services)
        self.built.append(services)
        return services

    def close(self) -> None:
        set_services(None)
        for services in self.built:
            services.ingestor.close()
            services.engine.dispose()


def feed_state(services: Services, name: str) -> dict[str, Any]:
    """The connector's published state ({} before it ran)."""
    return read_status(services.redis, name) or {}


async def wait_state(services: Services, name: str, what: str, check: Callable[[dict], Any]) -> dict[str, Any]:
    """Wait until the published state satisfies `check`."""
    await wait_until(lambda: check(feed_state(services, name)), f"{name}: {what}")
    return feed_state(services, name)


@asynccontextmanager
async def running(connector_class: type[FeedConnector], services: Services) -> AsyncIterator[FeedConnector]:
    """The connector's run() as a task; stopped (and awaited, bounded) on exit."""
    stop = asyncio.Event()
    connector = connector_class(services, stop)
    task = asyncio.ensure_future(connector.run())
    try:
        yield connector
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_SECONDS)


def api_client(services: Services):
    """A Flask test client over these services."""
    return create_app(services.config, services).test_client()
