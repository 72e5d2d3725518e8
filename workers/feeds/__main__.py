"""`feeds` process (Procfile): `python -m workers.feeds` runs the connectors named in FEEDS and the accounts'.

SIGTERM/SIGINT close every connection cleanly (releasing its lease) and exit 0. With FEEDS empty it says so and
follows the accounts only, so the one-command local run can always start it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from app import logs
from app.brokers.feed import add_connected_hook
from app.config import load_config
from app.reconcile import request_reconcile
from app.services import Services, set_services
from workers.feeds.runner import build_supervisor
from workers.feeds.supervisor import Supervisor

log = logging.getLogger("workers.feeds")


def main() -> int:
    """Check the configuration, build the connectors, run them until a signal arrives."""
    # The web's formatter: redacted, one line per record, LOG_FORMAT=json too (docs/operations.md, Logs).
    logs.configure_logging(os.environ.get("LOG_FORMAT", "plain"))
    config = load_config()
    logs.register_secrets(config.secret_values())
    services = Services.build(config)
    set_services(services)
    # Brokers never replay what a dropped socket missed: each (re)connect asks the worker to reconcile that
    # account (the broker, for the environment's) against its REST order book (docs/reconcile.md).
    add_connected_hook(
        lambda name, reconcile: request_reconcile(services.redis, reconcile, f"{name} feed (re)connected")
    )
    stop = asyncio.Event()
    supervisor = build_supervisor(services, stop)
    log.info("feeds process up: %s, and the accounts' feeds", ", ".join(services.config.feeds) or "no feed enabled")
    asyncio.run(_serve(supervisor, stop))
    return 0


async def _serve(supervisor: Supervisor, stop: asyncio.Event) -> None:
    """Install the signal handlers on the running loop, then run."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _request_stop, stop, signum)
    await supervisor.run()


def _request_stop(stop: asyncio.Event, signum: int) -> None:
    """First signal: stop cleanly."""
    log.info("received %s: closing the feeds", signal.Signals(signum).name)
    stop.set()


if __name__ == "__main__":
    sys.exit(main())
