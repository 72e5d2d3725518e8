"""One deadline per forward attempt, for the whole answer: connect, headers and body (docs/pipeline.md).

requests' timeout bounds each socket read, not the answer: a consumer that sends `200 OK` and then one
byte every 2 s never trips it and holds a sending thread for as long as it likes (urllib3's
`Timeout(total=...)` bounds the connect and each read the same way). So every attempt runs under a
`Deadline`: the connection it uses hands its socket to the sender's `DeadlineWatch` as it connects or
starts a request, and the watch's thread shuts that socket down when the deadline passes. The read in
progress, whichever phase it is in, ends at once; urllib3 then closes the connection instead of
reusing it. A socket belongs to the last attempt that took it, so a kept-alive connection that went
back to the pool is never cut under the attempt that uses it next.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import ProxyManager

_running = threading.local()  # the attempt this thread is making: its Deadline


class Deadline:
    """One attempt's deadline (time.monotonic) and the socket it reads from now."""

    __slots__ = ("at", "finished", "sock", "watch")

    def __init__(self, watch: DeadlineWatch, seconds: float) -> None:
        self.watch = watch
        self.at = time.monotonic() + seconds
        self.finished = False
        self.sock: socket.socket | None = None

    @property
    def passed(self) -> bool:
        """The deadline is behind us."""
        return time.monotonic() >= self.at


class DeadlineWatch:
    """A thread that shuts down the socket of every attempt still running at its deadline."""

    def __init__(self, name: str = "deadline") -> None:
        self._wake = threading.Condition()
        self._due: list[tuple[float, int, Deadline]] = []
        self._owners: dict[socket.socket, Deadline] = {}
        self._order = itertools.count()
        self._closed = False
        threading.Thread(target=self._run, name=name, daemon=True).start()

    @contextmanager
    def bound(self, seconds: float) -> Iterator[Deadline]:
        """Run the calling thread's attempt under a deadline `seconds` from now."""
        deadline = Deadline(self, seconds)
        with self._wake:
            heapq.heappush(self._due, (deadline.at, next(self._order), deadline))
            if self._due[0][2] is deadline:
                self._wake.notify()
        _running.deadline = deadline
        try:
            yield deadline
        finally:
            _running.deadline = None
            with self._wake:
                deadline.finished = True
                if deadline.sock is not None and self._owners.get(deadline.sock) is deadline:
                    del self._owners[deadline.sock]
                deadline.sock = None

    def adopt(self, deadline: Deadline, sock: socket.socket) -> None:
        """The attempt reads from this socket now (taking it from the attempt that used it before)."""
        with self._wake:
            previous = self._owners.get(sock)
            if previous is not None and previous is not deadline:
                previous.sock = None
            self._owners[sock] = deadline
            deadline.sock = sock
            if deadline.passed:
                _shut(sock)

    def close(self) -> None:
        """Stop the thread (attempts still running keep their per-read timeout only)."""
        with self._wake:
            self._closed = True
            self._wake.notify()

    def _run(self) -> None:
        """Sleep until the earliest deadline; shut down the socket of each attempt not finished by then."""
        with self._wake:
            while not self._closed:
                now = time.monotonic()
                while self._due and self._due[0][0] <= now:
                    deadline = heapq.heappop(self._due)[2]
                    if not deadline.finished and deadline.sock is not None:
                        _shut(deadline.sock)
                self._wake.wait(self._due[0][0] - now if self._due else None)


def _shut(sock: socket.socket) -> None:
    """End every read and write on the socket now (a blocked recv returns at once)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _adopt(sock: socket.socket | None) -> None:
    """Put the socket under the deadline of the attempt this thread is making, if any."""
    deadline = getattr(_running, "deadline", None)
    if deadline is not None and sock is not None:
        deadline.watch.adopt(deadline, sock)


class _Adopting:
    """A urllib3 connection whose socket is watched by the running attempt's deadline."""

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _adopt(self.sock)  # type: ignore[attr-defined]

    def request(self, *args: Any, **kwargs: Any) -> None:
        _adopt(self.sock)  # type: ignore[attr-defined] - a kept-alive socket; a new one is adopted in connect()
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Adopting, HTTPConnection):
    """Plain HTTP, watched."""


class _HTTPSConnection(_Adopting, HTTPSConnection):
    """HTTPS, watched (the TLS handshake is bounded by the connect timeout)."""


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with connections that the running attempt's deadline watches (through an HTTP
    proxy too; `responses` still intercepts its `send` in tests)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # not SOCKS: its manager has pools of its own
            manager.pool_classes_by_scheme = _POOLS
        return manager
