"""Postbacks while dashboards watch: N open blotter streams, a steady postback rate, latencies printed.

Run from the repository root:  .venv/bin/python bench/dashboards.py [--dashboards 12] [--rate 20] [--seconds 20]

Starts a throwaway redis-server, SQLite, and the Procfile's own `web` (gunicorn, gevent workers) and
`worker` on loopback (bench/run.py's Stack). Each dashboard signs in like a browser (POST /signin,
its own session cookie) and holds GET /api/stream open. Postbacks go out at a steady rate, one
connection each, like brokers. Printed:

- postback latency p50/p99/max: request sent -> 202 received, with every dashboard open;
- time to row p50/p99: stored (the worker's publish time, right after the commit) -> message read
  by a dashboard, over every dashboard and postback;
- postback to row p50/p99: postback sent -> message read (the whole trip a trader sees).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import ADMIN_TOKEN, KitePostbacks, Stack, machine  # noqa: E402


@dataclass
class Dashboard:
    """One open blotter stream, read on a thread: when each order's message arrived."""

    base: str
    cookies: dict[str, str]
    arrivals: dict[str, float] = field(default_factory=dict)  # "broker/order_id" -> time.time() read
    published: dict[str, float] = field(default_factory=dict)  # same key -> the worker's published_at
    headers: dict[str, str] = field(default_factory=dict)
    opened: threading.Event = field(default_factory=threading.Event)
    error: str | None = None

    @classmethod
    def signed_in(cls, base: str, token: str) -> Dashboard:
        """Sign in as the page does, then open the stream on a thread."""
        answer = requests.post(f"{base}/signin", data={"token": token}, timeout=30)
        answer.raise_for_status()
        board = cls(base=base, cookies=dict(answer.cookies))
        threading.Thread(target=board._read, daemon=True).start()
        return board

    def _read(self) -> None:
        """Read `data:` lines until the stream ends."""
        try:
            with requests.get(f"{self.base}/api/stream", cookies=self.cookies, stream=True, timeout=(10, 60)) as answer:
                self.headers = dict(answer.headers)
                answer.raise_for_status()
                self.opened.set()
                for line in answer.iter_lines(chunk_size=None):  # as each chunk arrives, not per 512 bytes
                    if line.startswith(b"data: "):
                        now = time.time()
                        message = json.loads(line[6:])
                        order = message.get("order") or {}
                        key = f"{order.get('broker')}/{order.get('order_id')}"
                        self.arrivals.setdefault(key, now)
                        self.published.setdefault(key, message.get("published_at") or now)
        except Exception as exc:  # noqa: BLE001 - reported with the figures
            self.error = f"{type(exc).__name__}: {exc}"
            self.opened.set()


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def run(base: str, dashboards: int, rate: float, seconds: float) -> dict:
    """Open the dashboards, post at `rate`/s for `seconds`, wait for every row; the figures."""
    boards = [Dashboard.signed_in(base, ADMIN_TOKEN) for _ in range(dashboards)]
    for board in boards:
        board.opened.wait(30)
    broken = [b.error for b in boards if b.error]
    if broken:
        raise SystemExit(f"streams failed to open: {broken}")
    postbacks = KitePostbacks(f"D{int(time.time()) % 100000:05d}")
    sent: dict[str, float] = {}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    total = int(rate * seconds)
    started = time.monotonic()
    for index in range(total):
        due = started + index / rate
        time.sleep(max(0.0, due - time.monotonic()))
        key = f"kite/{postbacks.order_id(index)}"
        sent[key] = time.time()
        began = time.monotonic()
        answer = requests.post(
            f"{base}/postbacks/kite",
            data=postbacks.body(index),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        latencies.append(time.monotonic() - began)
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(len(b.arrivals) >= total for b in boards):
        time.sleep(0.2)
    to_row = [b.arrivals[k] - b.published[k] for b in boards for k in sent if k in b.arrivals]
    trip = [b.arrivals[k] - sent[k] for b in boards for k in sent if k in b.arrivals]
    missing = sum(total - len([k for k in sent if k in b.arrivals]) for b in boards)
    return {
        "dashboards": dashboards,
        "postbacks": total,
        "rate_per_s": rate,
        "statuses": statuses,
        "postback_ms": {
            q: round(percentile(latencies, f) * 1000, 1) for q, f in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))
        },
        "stored_to_row_ms": {q: round(percentile(to_row, f) * 1000, 1) for q, f in (("p50", 0.5), ("p99", 0.99))},
        "postback_to_row_ms": {q: round(percentile(trip, f) * 1000, 1) for q, f in (("p50", 0.5), ("p99", 0.99))},
        "rows_missing": missing,
        "stream_headers": {k: boards[0].headers.get(k) for k in ("Content-Type", "X-Accel-Buffering")},
        "stream_errors": [b.error for b in boards if b.error],
    }


def main(argv: list[str] | None = None) -> int:
    """Start the stack, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dashboards", type=int, default=12)
    parser.add_argument("--rate", type=float, default=20.0, help="postbacks per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--keep", action="store_true", help="keep the logs and databases")
    args = parser.parse_args(argv)
    stack_args = argparse.Namespace(web_workers=None, worker_processes=None, persist_batch=None, web_command=None)
    workdir = Path(tempfile.mkdtemp(prefix="orderhook-dashboards-"))
    stack = Stack(workdir, stack_args)
    try:
        stack.start_redis()
        env = stack.env("dashboards")
        stack.start_web(env)
        stack.start_worker(env)
        result = run(f"http://127.0.0.1:{stack.port}", args.dashboards, args.rate, args.seconds)
    finally:
        stack.stop()
        if args.keep:
            print(f"logs and databases kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    info = machine()
    print(f"machine: {info['nproc']} cores, {info['cpu']}, Python {info['python']}")
    print(
        f"{result['dashboards']} dashboards open, {result['postbacks']} postbacks at {result['rate_per_s']:g}/s "
        f"(answers {result['statuses']})"
    )
    print(
        f"postback latency   p50 {result['postback_ms']['p50']} ms  p99 {result['postback_ms']['p99']} ms  "
        f"max {result['postback_ms']['max']} ms"
    )
    print(f"stored -> row      p50 {result['stored_to_row_ms']['p50']} ms  p99 {result['stored_to_row_ms']['p99']} ms")
    print(
        f"postback -> row    p50 {result['postback_to_row_ms']['p50']} ms  p99 {result['postback_to_row_ms']['p99']} ms"
    )
    print(f"rows missing: {result['rows_missing']}; stream errors: {result['stream_errors'] or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
