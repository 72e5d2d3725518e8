"""`worker` process: N child processes, each running one pipeline loop under RQ; background threads in the parent.

What RQ is here: a supervisor and status display for long-running loops, not the queue of updates.
The updates wait in the Redis stream `oh:ingest`, which each loop reads as its own consumer of the
`persist` group (workers/pipeline.py); nothing about an update ever passes through RQ. Each child owns
a private RQ queue (`orderhook-pipeline-<slot>`, workers/queues.py) holding exactly one job,
`workers.jobs.run_loop`, which never ends by itself and heart-beats for itself and its worker. So
`rq info` shows every loop as a busy worker, and a loop that crashes lands in RQ's failed registry with
its traceback; this child then enqueues the loop again after a short pause. The parent restarts a
child that dies. SIGTERM is passed on: each loop finishes the batch in hand and exits; one still
running STOP_GRACE_SECONDS later is killed (and logged), so no loop outlives the worker.

When Redis refuses writes (maxmemory under noeviction) RQ cannot even register a worker; the child
then runs the loop outside RQ for a while (its reads, acks and deletes need no memory, so draining
the stream is what frees it), marks the pipeline stalled, and retries RQ: no crash loop.

The parent, after the forks, runs the process's background duties in plain threads, not RQ jobs: the
reconciliation scheduler (workers/reconcile.py), the Telegram alert sender and its watchers
(workers/alerts.py), and housekeeping (retention, and updates the web parked in the database while
Redis was away). docs/pipeline.md has the whole picture.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time

import redis
from rq import SimpleWorker

from app import logs
from app.alerts import settings_from
from app.config import load_config
from app.db import upgrade
from app.services import Services, set_services
from workers import alerts, jobs, shutdown
from workers.housekeeping import start_housekeeping
from workers.pipeline import Pipeline
from workers.queues import queue, slot_queue_name
from workers.reconcile import start_scheduler
from workers.sessions import start_session_watcher  # the day's sessions' expiry (docs/accounts.md)
from workers.stall import OOM_REASON, StallMarker, is_oom

log = logging.getLogger("workers")
RESPAWN_CHECK_SECONDS = 1.0
RQ_RETRY_SECONDS = (1.0, 2.0, 5.0)
DEGRADED_RUN_SECONDS = 30.0
#: Seconds the loops get after SIGTERM to finish the batch in hand (a loop waits up to 10 s for its sends
#: in flight, workers/pipeline.py) before the worker kills them; under a platform's 30 s and under the dev
#: runner's STOP_GRACE_SECONDS (app/devrun.py), so the worker has ended before either kills it.
STOP_GRACE_SECONDS = 20.0


class OrderhookWorker(SimpleWorker):
    """SimpleWorker whose warm shutdown also tells the loop to wrap up after its current batch."""

    def request_stop(self, signum, frame) -> None:
        """RQ's SIGTERM/SIGINT handler, plus our flag; a Redis already gone must not turn the stop into an
        error raised wherever the loop is (RQ records the stop request in Redis)."""
        shutdown.requested.set()
        try:
            super().request_stop(signum, frame)
        except redis.RedisError as exc:
            self.log.warning("Worker %s: stopping; Redis did not take the stop request (%s)", self.name, exc)

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None):
        """Nothing more once a stop is requested: RQ's dequeue retries a lost Redis forever, with no stop check."""
        if shutdown.requested.is_set():
            return None
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    def request_force_stop(self, signum, frame) -> None:
        """A repeated SIGTERM/SIGINT keeps the warm stop: RQ's cold one raises SystemExit wherever the loop
        is (mid-commit, holding a lock), which could leave the process hung; SIGKILL is the forced stop."""
        shutdown.requested.set()
        self.log.info("Worker %s: already finishing the batch in hand (SIGKILL forces a stop)", self.name)


def run_slot(index: int) -> None:
    """Child process: keep this slot's loop job running under RQ until told to stop."""
    signal.signal(signal.SIGTERM, lambda _signum, _frame: shutdown.requested.set())
    signal.signal(signal.SIGINT, lambda _signum, _frame: shutdown.requested.set())
    config = load_config()
    services = Services.build(config)
    set_services(services)
    slot = queue(services.redis, slot_queue_name(index))
    stall = StallMarker(services.redis)
    attempt = 0
    while not shutdown.requested.is_set():
        try:
            if slot.count == 0:
                slot.enqueue(jobs.run_loop, job_timeout=-1, result_ttl=60, failure_ttl=7 * 24 * 3600)
            worker = OrderhookWorker([slot], connection=services.redis, name=f"orderhook-{os.getpid()}-{index}")
            jobs.current_worker = worker
            worker.work(burst=True, logging_level="WARNING", with_scheduler=False)
            attempt = 0
        except (redis.RedisError, ValueError) as exc:
            attempt += 1
            if isinstance(exc, redis.ResponseError) and is_oom(exc):
                stall.mark(OOM_REASON + " (maxmemory reached under noeviction)")
                log.error("RQ cannot register under Redis OOM: running the loop outside RQ for a while")
                Pipeline(services, stall=stall).run(max_seconds=DEGRADED_RUN_SECONDS)
                continue
            log.warning("RQ worker slot %d: %s: %s; retrying", index, type(exc).__name__, str(exc)[:300])
        if not shutdown.requested.is_set():
            shutdown.requested.wait(RQ_RETRY_SECONDS[min(attempt, len(RQ_RETRY_SECONDS) - 1)])
    _leave()


def _leave() -> None:
    """End the slot process once its loop has returned: a send still in flight past the batch in hand is
    abandoned (its claim lapses and it is retried) rather than holding the exit for up to FORWARD_TIMEOUT_SECONDS."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def respawn_exited(children: list, context) -> None:
    """Replace a child that died (killed, or crashed outside RQ)."""
    for index, child in enumerate(children):
        if child.exitcode not in (None, 0):  # 0 = stopped on request (SIGTERM/SIGINT): not to be replaced
            log.warning(
                "worker slot %d (pid %s) exited with code %s; starting a new one", index, child.pid, child.exitcode
            )
            children[index] = context.Process(target=run_slot, args=(index,), daemon=False)
            children[index].start()


def start_background(config) -> None:
    """Reconciliation, alerts and housekeeping threads in the parent (after the forks: no thread is forked)."""
    services = Services.build(config)
    set_services(services)
    start_scheduler(services, shutdown.requested)
    alerts.start(services, settings_from(config), shutdown.requested)
    start_housekeeping(services, shutdown.requested)
    start_session_watcher(services, shutdown.requested)


def _signal_children(children: list, signalled: set[int]) -> None:
    """SIGTERM each live child once: each then finishes its batch; a repeat would only interrupt that."""
    for child in children:
        if child.pid and child.pid not in signalled and child.is_alive():
            signalled.add(child.pid)
            try:
                os.kill(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def main() -> int:
    """Start the children; stop them all on SIGTERM/SIGINT."""
    # The web's formatter: redacted, one line per record, LOG_FORMAT=json too (docs/operations.md, Logs).
    logs.configure_logging(os.environ.get("LOG_FORMAT", "plain"))
    config = load_config()
    logs.register_secrets(config.secret_values())
    upgrade(config.database_url)
    context = multiprocessing.get_context("fork")
    # WORKER_PROCESSES: the loop forwards concurrently, so consumers need no process each.
    slots = range(config.pipeline.worker_processes)
    children = [context.Process(target=run_slot, args=(i,), daemon=False) for i in slots]
    for child in children:
        child.start()

    signalled: set[int] = set()

    def _stop(signum, _frame) -> None:
        log.info("received %s: finishing work in hand", signal.Signals(signum).name)
        shutdown.requested.set()
        _signal_children(children, signalled)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("worker up: %d pipeline loops (RQ SimpleWorkers on %s-*)", len(children), "orderhook-pipeline")
    start_background(config)
    while not shutdown.requested.wait(RESPAWN_CHECK_SECONDS):
        respawn_exited(children, context)
    _signal_children(children, signalled)  # one started just before the stop is told too, once
    _join_or_kill(children, STOP_GRACE_SECONDS)
    return 0


def _join_or_kill(children: list, grace: float) -> None:
    """Wait for the loops to end, all within `grace` s; kill any still running then (what it held is taken
    over at the next start): none may outlive this process."""
    deadline = time.monotonic() + grace
    for child in children:
        child.join(timeout=max(0.0, deadline - time.monotonic()))
    for index, child in enumerate(children):
        if child.is_alive():
            log.warning("worker slot %d (pid %s) still running %.0f s after the stop: killed", index, child.pid, grace)
            child.kill()
            child.join(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
