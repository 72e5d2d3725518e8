"""A process-wide "stop soon" flag: long-running jobs finish the batch in hand, then return."""

from __future__ import annotations

import threading
import time

requested = threading.Event()


def keep_going(deadline: float, idle_since: float, idle_exit: float) -> bool:
    """A looping job goes on while it has time, work keeps coming, and no shutdown was asked for."""
    now = time.monotonic()
    return now < deadline and now - idle_since < idle_exit and not requested.is_set()
