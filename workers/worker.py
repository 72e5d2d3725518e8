"""`worker` process: RQ SimpleWorkers (persist, forward) in child processes plus the dispatcher.

SimpleWorker runs jobs in-process (~1000 jobs/s vs ~150 for the forking Worker, delivery.md §5); the
children give parallelism and isolation, so a slow consumer's job never holds up persistence.
SIGTERM is passed on: each child finishes the job in hand (RQ's warm shutdown) and exits.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading

from rq import SimpleWorker

from app.config import load_config
from app.db import upgrade
from app.services import Services, set_services
from workers import shutdown
from workers.dispatcher import Dispatcher
from workers.queues import QUEUE_NAMES, queue
from workers.reconcile import start_scheduler  # integration: reconciliation (workers/reconcile.py)

log = logging.getLogger("workers")
RESPAWN_CHECK_SECONDS = 1.0


def worker_count(config) -> int:
    """WORKER_PROCESSES, else one for persistence plus one per consumer (2..8)."""
    configured = config.env.get("WORKER_PROCESSES", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(2, min(8, 1 + len(config.forward_urls)))


class OrderhookWorker(SimpleWorker):
    """SimpleWorker whose warm shutdown also tells our looping jobs to wrap up after their current batch."""

    def request_stop(self, signum, frame) -> None:
        """RQ's SIGTERM/SIGINT handler, plus our flag."""
        shutdown.requested.set()
        super().request_stop(signum, frame)


def run_rq_worker(index: int) -> None:
    """Child process: build services after the fork and work the queues until told to stop."""
    config = load_config()
    services = Services.build(config)
    set_services(services)
    queues = [queue(services.redis, name) for name in QUEUE_NAMES]
    worker = OrderhookWorker(queues, connection=services.redis, name=f"orderhook-{os.getpid()}-{index}")
    worker.work(logging_level="WARNING", with_scheduler=False)
    if not shutdown.requested.is_set():
        sys.exit(3)  # RQ gave up (e.g. Redis dropped mid-job) without being asked to stop: respawn me


def respawn_exited(children: list, context) -> None:
    """Replace an RQ worker that exited: RQ quits when Redis drops mid-job, and nothing else restarts it."""
    for index, child in enumerate(children):
        if child.exitcode not in (None, 0):  # 0 = stopped on request (SIGTERM/SIGINT): not to be replaced
            log.warning(
                "RQ worker %d (pid %s) exited with code %s; starting a new one", index, child.pid, child.exitcode
            )
            children[index] = context.Process(target=run_rq_worker, args=(index,), daemon=False)
            children[index].start()


def main() -> int:
    """Start children and the dispatcher; stop all on SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config()
    upgrade(config.database_url)
    services = Services.build(config)
    set_services(services)
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=run_rq_worker, args=(i,), daemon=False) for i in range(worker_count(config))]
    for child in children:
        child.start()
    dispatcher = Dispatcher(services)

    def _stop(signum, _frame) -> None:
        log.info("received %s: finishing work in hand", signal.Signals(signum).name)
        dispatcher.stop.set()
        for child in children:
            if child.pid:
                try:
                    os.kill(child.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("worker up: %d RQ SimpleWorkers on %s", len(children), ", ".join(QUEUE_NAMES))
    from app.alerts import settings_from
    from workers import alerts

    sender = alerts.start(services, settings_from(config))  # integration: alert sender
    loop = threading.Thread(target=dispatcher.run, name="dispatcher", daemon=True)
    loop.start()
    start_scheduler(services, dispatcher.stop)  # integration: reconciliation scheduler thread (after the forks)
    while not dispatcher.stop.wait(RESPAWN_CHECK_SECONDS):
        respawn_exited(children, context)
    if sender is not None:
        sender.stop.set()
    loop.join(timeout=10)
    for child in children:
        if child.is_alive() and child.pid:
            os.kill(child.pid, signal.SIGTERM)  # also one started just before the stop
    for child in children:
        child.join(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
