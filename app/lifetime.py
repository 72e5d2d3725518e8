"""Processes that end with the process that started them (Linux PR_SET_PDEATHSIG).

The dev runner (app/devrun.py) starts its embedded redis-server and the Procfile's processes each in a
process group of its own, so a terminal's Ctrl-C reaches the runner alone and the runner stops them in
order; this is what still ends them should the runner itself be killed.
"""

from __future__ import annotations

import ctypes
import signal
import sys

#: prctl(2) option: the signal this process gets when its parent thread ends.
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a forked child, before exec: ask the kernel for SIGTERM when the parent ends (Linux); elsewhere nothing.

    Only async-signal-safe work (one prctl call), so it may run as a Popen preexec_fn; it survives exec.
    """
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
