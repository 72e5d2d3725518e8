"""Postback latency with 0 and with 16 slow clients against the Procfile web.

Run from the repository root:  .venv/bin/python bench/slow_clients.py   (about a minute)

A throwaway redis-server and SQLite in a temporary directory, the Procfile's own `web` command on
127.0.0.1 (no worker: only the request path is measured). Two runs of the same postbacks, one new
connection each as brokers send them: first with no other clients, then while `--slow` clients dribble
a postback's headers one line a second (reconnecting whenever the server cuts them) and `--stallers`
clients send headers and part of a body, then stop. Prints p50/p99/max of the postback latency and
how many postbacks failed or took longer than the broker's patience (2 s).
`--web-command "gunicorn -c gunicorn.conf.py --worker-class sync wsgi:app"` shows what sync workers do.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import KitePostbacks, Stack, _percentiles, machine  # noqa: E402

PATIENCE_SECONDS = 2.0


class Dribbler(threading.Thread):
    """Sends a postback request line, then one header line a second, never ending the headers."""

    def __init__(self, port: int, stop: threading.Event, path: str) -> None:
        super().__init__(daemon=True)
        self.port, self.stop, self.path = port, stop, path
        self.connections = 0

    def run(self) -> None:
        """Connection after connection until stopped."""
        while not self.stop.is_set():
            self.connections += 1
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    sock.settimeout(1.0)
                    sock.sendall(f"POST {self.path} HTTP/1.1\r\nHost: bench\r\n".encode())
                    line = 0
                    while not self.stop.is_set():
                        try:
                            if sock.recv(1024) == b"":
                                break
                        except TimeoutError:
                            pass
                        sock.sendall(f"X-Slow-{line}: 1\r\n".encode())
                        line += 1
            except OSError:
                time.sleep(0.2)


class Staller(threading.Thread):
    """Sends complete headers announcing 1000 bytes, 10 of them, then waits for the server to give up."""

    def __init__(self, port: int, stop: threading.Event, path: str) -> None:
        super().__init__(daemon=True)
        self.port, self.stop, self.path = port, stop, path
        self.answers: list[bytes] = []

    def run(self) -> None:
        """Stall, collect the answer's status line, stall again."""
        head = f"POST {self.path} HTTP/1.1\r\nHost: bench\r\nContent-Length: 1000\r\n\r\n".encode()
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=60) as sock:
                    sock.sendall(head + b'{"order_id')
                    self.answers.append(sock.recv(200).split(b"\r\n", 1)[0])
            except OSError:
                time.sleep(0.2)


def send_postbacks(port: int, postbacks: KitePostbacks, first: int, count: int, gap: float) -> list[float | None]:
    """Latency in seconds of each postback (None: failed, or no answer within 10 s)."""
    latencies: list[float | None] = []
    for index in range(first, first + count):
        body = postbacks.body(index)
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/postbacks/kite", body=body, headers={"Content-Type": "application/json"})
            status = conn.getresponse().status
            conn.close()
            latencies.append(time.perf_counter() - started if status in (200, 202) else None)
        except OSError:
            latencies.append(None)
        time.sleep(gap)
    return latencies


def summary(label: str, latencies: list[float | None]) -> str:
    """One line: p50/p99/max in ms, failures, answers slower than the broker's patience."""
    answered = sorted(x * 1000 for x in latencies if x is not None)
    failed = sum(1 for x in latencies if x is None)
    slow = sum(1 for x in answered if x > PATIENCE_SECONDS * 1000)
    pct = _percentiles(answered)
    return (
        f"{label:<28} n={len(latencies):<4} p50 {pct['p50']:7.1f} ms   p99 {pct['p99']:7.1f} ms   "
        f"max {pct['max']:7.1f} ms   failed {failed}   over {PATIENCE_SECONDS:.0f} s {slow}"
    )


def main(argv: list[str] | None = None) -> int:
    """Start the stack, measure without and with slow clients, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--postbacks", type=int, default=200, help="postbacks per run")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between postbacks")
    parser.add_argument("--slow", type=int, default=16, help="header dribblers")
    parser.add_argument("--stallers", type=int, default=4, help="clients that stall their body")
    parser.add_argument("--web-command", default=None, help="another server command (default: Procfile's)")
    parser.add_argument("--web-workers", type=int, default=None, help="WEB_CONCURRENCY")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and logs")
    args = parser.parse_args(argv)
    args.worker_processes = args.persist_batch = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # `timeout` sends TERM: still stop what was started

    workdir = Path(tempfile.mkdtemp(prefix="orderhook-slow-"))
    stack = Stack(workdir, args)
    stop = threading.Event()
    try:
        stack.start_redis()
        env = stack.env("slow")
        stack.start_web(env)
        port = stack.port
        postbacks = KitePostbacks("SLOW")
        send_postbacks(port, postbacks, 10_000_000, 20, 0.0)  # warm up imports and pools
        quiet = send_postbacks(port, postbacks, 0, args.postbacks, args.gap)
        path = f"/postbacks/dhan/{env['POSTBACK_TOKEN']}"
        slow = [Dribbler(port, stop, path) for _ in range(args.slow)]
        stallers = [Staller(port, stop, path) for _ in range(args.stallers)]
        for client in slow + stallers:
            client.start()
        time.sleep(2.0)
        loaded = send_postbacks(port, postbacks, args.postbacks, args.postbacks, args.gap)
        deadline = time.monotonic() + 30  # let the stalled bodies reach the server's body timeout
        while time.monotonic() < deadline and not all(s.answers for s in stallers):
            time.sleep(0.2)
        stop.set()
        info = machine()
        print(f"machine: {info['nproc']} CPUs, {info['cpu']}, Python {info['python']}, Redis {info['redis']}")
        print(f"server: {args.web_command or 'Procfile web'} (WEB_CONCURRENCY={args.web_workers or 'default'})")
        print(summary("0 slow clients", quiet))
        print(summary(f"{args.slow} slow + {args.stallers} stalled", loaded))
        reconnects = sum(d.connections for d in slow)
        answers = sorted({a.decode(errors="replace") for s in stallers for a in s.answers})
        print(f"slow clients opened {reconnects} connections (the server cut each at its header deadline);")
        print(f"stalled bodies were answered: {answers or 'not yet'}")
        if stack.web is not None and env["POSTBACK_TOKEN"] in stack.web.log():
            print("WARNING: the web log contains the POSTBACK_TOKEN")
    finally:
        stop.set()
        stack.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
