"""A process-wide "stop soon" flag: the worker loop finishes the batch in hand, then returns."""

from __future__ import annotations

import threading

requested = threading.Event()
