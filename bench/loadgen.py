"""A small epoll HTTP/1.1 load generator for loopback benchmarks (no wrk needed, distinct bodies per request).

gunicorn's sync workers close the connection after each response, so every request here opens its own
connection and reads until the server closes it (or Content-Length is satisfied). Two modes:
closed loop (`concurrency` requests always in flight, for throughput) and open loop (a fixed send
rate regardless of answers, for latency without coordinated omission).
"""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

RequestFactory = Callable[[int], bytes]


@dataclass
class Result:
    """One finished request."""

    index: int
    status: int  # 0 = connection failed or dropped
    sent_at: float  # time.time() when the request was started
    latency: float  # seconds to the full answer
    body: bytes = b""


@dataclass
class Run:
    """What a load run did."""

    results: list[Result] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    @property
    def seconds(self) -> float:
        """Wall time from the first send to the last answer."""
        return max(self.finished - self.started, 1e-9)

    @property
    def rate(self) -> float:
        """Answered requests per second."""
        return len(self.results) / self.seconds

    def count(self, predicate: Callable[[int], bool]) -> int:
        """Requests whose status matches."""
        return sum(1 for r in self.results if predicate(r.status))


def http_post(path: str, body: bytes, content_type: str = "application/json") -> bytes:
    """A complete POST request's bytes."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Conn:
    """One in-flight request on a non-blocking socket."""

    __slots__ = ("index", "sock", "out", "buf", "start_wall", "start", "keep_body")

    def __init__(self, index: int, request: bytes, address: tuple[str, int], keep_body: bool) -> None:
        self.index = index
        self.out = memoryview(request)
        self.buf = bytearray()
        self.keep_body = keep_body
        self.start_wall = time.time()
        self.start = time.perf_counter()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = self.sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            raise OSError(code, "connect failed")

    def complete(self) -> bool:
        """True when the headers and Content-Length bytes of the body have arrived."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end]).lower()
        marker = head.find(b"content-length:")
        if marker < 0:
            return False
        length = int(head[marker + 15 :].split(b"\r\n", 1)[0])
        return len(self.buf) >= end + 4 + length

    def result(self, now: float) -> Result:
        """The status and (optionally) body of the answer."""
        status = 0
        if self.buf.startswith(b"HTTP/1."):
            try:
                status = int(self.buf[9:12])
            except ValueError:
                status = 0
        body = b""
        if self.keep_body:
            end = self.buf.find(b"\r\n\r\n")
            body = bytes(self.buf[end + 4 :]) if end >= 0 else b""
        return Result(self.index, status, self.start_wall, now - self.start, body)


class LoadGenerator:
    """Drives requests built by `factory(i)` at 127.0.0.1:port."""

    def __init__(self, port: int, factory: RequestFactory, *, keep_body: bool = False, timeout: float = 30.0) -> None:
        self.address = ("127.0.0.1", port)
        self.factory = factory
        self.keep_body = keep_body
        self.timeout = timeout

    def closed_loop(self, *, concurrency: int, duration: float | None = None, total: int | None = None) -> Run:
        """Keep `concurrency` requests in flight until `duration` seconds pass or `total` were sent."""
        if duration is None and total is None:
            raise ValueError("give a duration or a total")
        run = Run(started=time.time())
        stop_at = time.perf_counter() + duration if duration is not None else float("inf")
        limit = total if total is not None else 1 << 62
        poller = select.epoll()
        live: dict[int, _Conn] = {}
        sent = 0
        hard_stop = (duration or 0) + self.timeout + (total or 0) / 100
        deadline = time.perf_counter() + hard_stop
        while True:
            now = time.perf_counter()
            while len(live) < concurrency and sent < limit and now < stop_at:
                self._open(poller, live, sent)
                sent += 1
            if not live or now > deadline:
                break
            self._poll(poller, live, run, 0.05)
        self._abandon(poller, live, run)
        poller.close()
        run.finished = time.time()
        return run

    def open_loop(self, *, rate: float, duration: float, max_in_flight: int = 512) -> Run:
        """Start a request every 1/rate seconds for `duration` seconds, whatever the answers do."""
        run = Run(started=time.time())
        poller = select.epoll()
        live: dict[int, _Conn] = {}
        total = int(rate * duration)
        begin = time.perf_counter()
        deadline = begin + duration + self.timeout
        sent = 0
        while True:
            now = time.perf_counter()
            while sent < total and begin + sent / rate <= now and len(live) < max_in_flight:
                self._open(poller, live, sent)
                sent += 1
            if (sent >= total and not live) or now > deadline:
                break
            next_send = begin + sent / rate if sent < total else now + 0.05
            self._poll(poller, live, run, max(0.0, min(next_send - time.perf_counter(), 0.05)))
        self._abandon(poller, live, run)
        poller.close()
        run.finished = time.time()
        return run

    def _open(self, poller: select.epoll, live: dict[int, _Conn], index: int) -> None:
        """Start request `index`."""
        conn = _Conn(index, self.factory(index), self.address, self.keep_body)
        fd = conn.sock.fileno()
        live[fd] = conn
        poller.register(fd, select.EPOLLOUT | select.EPOLLIN)

    def _poll(self, poller: select.epoll, live: dict[int, _Conn], run: Run, timeout: float) -> None:
        """Advance every ready connection once."""
        for fd, mask in poller.poll(timeout):
            conn = live.get(fd)
            if conn is None:
                continue
            done = False
            try:
                if mask & select.EPOLLOUT and conn.out:
                    sent = conn.sock.send(conn.out)
                    conn.out = conn.out[sent:]
                    if not conn.out:
                        poller.modify(fd, select.EPOLLIN)
                if mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                    chunk = conn.sock.recv(65536)
                    if chunk:
                        conn.buf += chunk
                        done = conn.complete()
                    else:
                        done = True
            except BlockingIOError:
                continue
            except OSError:
                done = True
            if done:
                self._finish(poller, live, run, fd)

    def _finish(self, poller: select.epoll, live: dict[int, _Conn], run: Run, fd: int) -> None:
        """Record and close one connection."""
        conn = live.pop(fd)
        run.results.append(conn.result(time.perf_counter()))
        try:
            poller.unregister(fd)
        except OSError:
            pass
        conn.sock.close()

    def _abandon(self, poller: select.epoll, live: dict[int, _Conn], run: Run) -> None:
        """Close what never answered (counted as status 0)."""
        for fd in list(live):
            self._finish(poller, live, run, fd)
