"""`feeds` process (Procfile): `python -m workers.feeds` runs the connectors named in FEEDS.

SIGTERM/SIGINT close every connection cleanly and exit 0. With FEEDS empty it says so and idles until
stopped, so the one-command local run can always start it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from app.brokers.feed import FeedConnector, add_connected_hook
from app.config import load_config
from app.reconcile import request_reconcile
from app.services import Services, set_services
from workers.feeds.runner import build_connectors, run_connectors

log = logging.getLogger("workers.feeds")


def main() -> int:
    """Check the configuration, build the connectors, run them until a signal arrives."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config()
    services = Services.build(config)
    set_services(services)
    # Brokers never replay what a dropped socket missed: each (re)connect asks the worker to reconcile
    # that broker against its REST order book (docs/reconcile.md).
    add_connected_hook(lambda feed, broker: request_reconcile(services.redis, broker, f"{feed} feed (re)connected"))
    stop = asyncio.Event()
    connectors = build_connectors(services, stop)
    log.info("feeds process up: %s", ", ".join(c.name for c in connectors) or "no feed enabled")
    asyncio.run(_serve(connectors, stop))
    return 0


async def _serve(connectors: list[FeedConnector], stop: asyncio.Event) -> None:
    """Install the signal handlers on the running loop, then run."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _request_stop, stop, signum)
    await run_connectors(connectors, stop)


def _request_stop(stop: asyncio.Event, signum: int) -> None:
    """First signal: stop cleanly."""
    log.info("received %s: closing the feeds", signal.Signals(signum).name)
    stop.set()


if __name__ == "__main__":
    sys.exit(main())
