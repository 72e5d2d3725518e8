"""The circuit breaker of the request path: after one Redis failure, stop waiting on Redis per request."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class Circuit:
    """Open: updates go straight to the fallback until the replayer sees Redis answer again.

    One per process (a forked child starts closed: its parent's state says nothing about its Redis).
    """

    def __init__(self) -> None:
        self._open = False
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        """True while Redis is considered unable to take updates."""
        return self._open

    def trip(self, exc: BaseException, fallback: str) -> bool:
        """Open the circuit (logged once per outage); True if it was closed."""
        with self._lock:
            if self._open:
                return False
            self._open = True
        log.error(
            "Redis cannot take updates (%s: %s): SPOOLING postbacks to %s and still acknowledging them; "
            "they are fed to Redis when it answers again",
            type(exc).__name__,
            str(exc)[:200],
            fallback,
        )
        return True

    def close(self) -> bool:
        """Redis answers: send updates to it again; True if the circuit was open."""
        with self._lock:
            was_open, self._open = self._open, False
        if was_open:
            log.warning("Redis answers again: spooling STOPPED; replaying what the fallback kept")
        return was_open

    def reset_after_fork(self) -> None:
        """A fresh lock and a closed circuit in a new process (a parent's thread may have held the lock)."""
        self._lock = threading.Lock()
        self._open = False
