"""Replay: move what the fallbacks kept into Redis once it answers, through the same dedup + XADD step."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import redis
from sqlalchemy.exc import SQLAlchemyError

from app.ingest.circuit import Circuit
from app.ingest.fallback import Fallback
from app.ingest.queue import RedisQueue

log = logging.getLogger(__name__)

REPLAY_BACKOFF = (0.05, 0.1, 0.2, 0.5, 1.0)
#: How often an idle replayer looks for updates another process kept and could not replay (it died).
IDLE_CHECK_SECONDS = 30.0


def replay_pending(queue: RedisQueue, fallbacks: Sequence[Fallback]) -> tuple[int, int]:
    """Feed every fallback's updates into Redis; (queued, duplicates). Redis or database errors raise.

    Any process may call it (the web's replayer does; the worker can, on its own schedule).
    """
    queued = duplicates = 0
    for fallback in fallbacks:
        if not fallback.has_pending():
            continue
        started = time.monotonic()
        added, dropped = fallback.replay(queue)
        queued, duplicates = queued + added, duplicates + dropped
        if added or dropped:
            log.warning(
                "replayed %s: %d updates queued, %d duplicates dropped, in %.2fs",
                fallback.name,
                added,
                dropped,
                time.monotonic() - started,
            )
    return queued, duplicates


class Replayer:
    """One daemon thread per process: wakes when an update was kept aside (or every IDLE_CHECK_SECONDS),
    waits for Redis, closes the circuit and replays everything the fallbacks hold."""

    def __init__(self, queue: RedisQueue, fallbacks: Sequence[Fallback], circuit: Circuit) -> None:
        self.queue = queue
        self.fallbacks = tuple(fallbacks)
        self.circuit = circuit
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def ensure_running(self) -> None:
        """Start this process's thread unless it runs (after a fork the parent's thread is not ours)."""
        if not self.fallbacks:
            return
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="ingest-replayer", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Something was kept aside: replay as soon as Redis answers."""
        self.ensure_running()
        self._wake.set()

    def reset_after_fork(self) -> None:
        """Forget the parent's thread and event."""
        self._thread = None
        self._wake = threading.Event()

    def stop(self) -> None:
        """Let the thread end at its next wake-up (tests, shutdown); what is kept stays kept."""
        self._stopped = True
        self._wake.set()

    def _loop(self) -> None:
        """Forever: replay until nothing is pending, then sleep until woken or the idle check is due."""
        while not self._stopped:
            self._replay_until_empty()
            self._wake.wait(IDLE_CHECK_SECONDS)
            self._wake.clear()

    def _replay_until_empty(self) -> None:
        """Wait for Redis with backoff, close the circuit, feed everything; returns when all is in Redis."""
        attempt = 0
        while not self._stopped and (self.circuit.is_open or any(f.has_pending() for f in self.fallbacks)):
            try:
                self.queue.ping()
                # Replay before closing the circuit: a Redis that answers PING may still refuse writes
                # (OOM under noeviction); closing first would send each request to fail on it again.
                replay_pending(self.queue, self.fallbacks)
                self.circuit.close()
                attempt = 0
            except (redis.RedisError, OSError, SQLAlchemyError) as exc:
                if attempt % 100 == 0:
                    log.warning("replay of kept updates waits for Redis (%s); retrying", type(exc).__name__)
                self._pause(attempt)
                attempt += 1
            except Exception:  # noqa: BLE001 - the thread must outlive a bug in one replay
                log.exception("replay of kept updates failed; retrying")
                self._pause(attempt)
                attempt += 1

    @staticmethod
    def _pause(attempt: int) -> None:
        """Back off between attempts."""
        time.sleep(REPLAY_BACKOFF[min(attempt, len(REPLAY_BACKOFF) - 1)])
