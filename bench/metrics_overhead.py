"""What counting a postback costs: prometheus_client (single and multiprocess) against counters in Redis.

Run from the repository root:  .venv/bin/python bench/metrics_overhead.py   (about 20 seconds)

Per postback the web does what app/metrics.py does: one labelled counter increment and one histogram
observation. Measured here in a fresh interpreter per mode (prometheus_client picks its storage at
import), plus the alternative design: HINCRBY of a Redis hash and a histogram bucket per request in one
pipelined round trip, against a throwaway redis-server on a unix socket (the cheapest Redis there is).
Also the cost of one scrape that sums the files of 4 workers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUNDS = 50_000


def measure_prometheus() -> float:
    """Microseconds per counted postback with prometheus_client in whatever mode the env selects."""
    from prometheus_client import Counter, Histogram

    counter = Counter("bench_postbacks", "x", ["broker", "outcome"])
    histogram = Histogram("bench_ack_seconds", "x", buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0))
    started = time.perf_counter()
    for _ in range(ROUNDS):
        counter.labels(broker="dhan", outcome="accepted").inc()
        histogram.observe(0.004)
    return (time.perf_counter() - started) / ROUNDS * 1e6


def measure_scrape(directory: str) -> float:
    """Milliseconds for one multiprocess scrape over the files in `directory`."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    started = time.perf_counter()
    for _ in range(50):
        generate_latest(registry)
    return (time.perf_counter() - started) / 50 * 1000


def measure_redis() -> float:
    """Microseconds per counted postback as HINCRBY x2 in one pipelined round trip to a local redis-server."""
    import redis

    from bench.run import redis_server_binary

    workdir = Path(tempfile.mkdtemp(prefix="oh-metrics-bench-"))
    sock = workdir / "redis.sock"
    proc = subprocess.Popen(
        [redis_server_binary(), "--port", "0", "--unixsocket", str(sock), "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(unix_socket_path=str(sock))
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        rounds = ROUNDS // 5
        started = time.perf_counter()
        for _ in range(rounds):
            pipe = client.pipeline(transaction=False)
            pipe.hincrby("oh:metrics", "postbacks:dhan:accepted", 1)
            pipe.hincrby("oh:metrics", "ack_bucket:0.005", 1)
            pipe.execute()
        return (time.perf_counter() - started) / rounds * 1e6
    finally:
        proc.terminate()
        proc.wait(10)


def measure_hooks() -> tuple[float, float]:
    """Microseconds per request through the Flask app with and without the edge hooks (request id,
    access line, postback counting), logging to a discarded stream; Redis and the database untouched."""
    import io
    import logging

    from app import create_app
    from app.config import load_config

    workdir = Path(tempfile.mkdtemp(prefix="oh-hooks-bench-"))
    config = load_config(
        {
            "APP_ENV": "production",
            "PUBLIC_BASE_URL": "https://orderhook.example.com",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
            "INSTANCE_PATH": str(workdir),
            "KITE_API_SECRET": "bench-kite-secret-0123456789",
            "POSTBACK_TOKEN": "bench_0123456789abcdef",
        }
    )
    app = create_app(config, migrate=False)
    logging.getLogger().handlers[0].stream = io.StringIO()
    logging.getLogger().handlers[0].stream.write = lambda text: len(text)  # formatted, then discarded
    client = app.test_client()

    def per_request() -> float:
        """The best of 5 runs (a shared machine only ever adds time)."""
        for _ in range(200):
            client.get("/healthz")
        rounds, best = 2000, float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(rounds):
                client.get("/healthz")
            best = min(best, (time.perf_counter() - started) / rounds * 1e6)
        return best

    with_hooks = per_request()
    app.before_request_funcs[None] = []
    app.after_request_funcs[None] = []
    without = per_request()
    return with_hooks, without


def child(mode: str) -> None:
    """Run one measurement in this (fresh) interpreter and print its figure."""
    if mode == "hooks":
        with_hooks, without = measure_hooks()
        print(f"{with_hooks - without:.2f}")
    elif mode == "redis":
        print(f"{measure_redis():.2f}")
    elif mode == "scrape":
        directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        print(f"{measure_scrape(directory):.2f}")
    else:
        print(f"{measure_prometheus():.2f}")


def run_child(mode: str, env: dict[str, str] | None = None) -> float:
    """A figure from a fresh interpreter (prometheus_client decides its storage at import)."""
    full_env = dict(os.environ)
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    full_env.update(env or {})
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode], env=full_env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    """Print the per-postback cost of each design and a scrape's cost."""
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return 0
    directory = tempfile.mkdtemp(prefix="oh-prom-")
    single = run_child("single")
    multi = run_child("multi", {"PROMETHEUS_MULTIPROC_DIR": directory})
    for _ in range(3):  # three more workers' files, as in a 4-worker web
        run_child("multi", {"PROMETHEUS_MULTIPROC_DIR": directory})
    scrape = run_child("scrape", {"PROMETHEUS_MULTIPROC_DIR": directory})
    in_redis = run_child("redis")
    hooks = run_child("hooks")
    print(f"per postback (counter inc + histogram observe), {ROUNDS} rounds:")
    print(f"  prometheus_client, single process:      {single:8.2f} us")
    print(f"  prometheus_client, multiprocess (mmap): {multi:8.2f} us   <- what the web uses")
    print(f"  Redis HINCRBY x2, one pipelined trip:   {in_redis:8.2f} us   (unix socket, idle local Redis)")
    print(f"one /metrics scrape summing 4 workers' files: {scrape:.2f} ms")
    print(f"all edge hooks per request (request id, access line formatted, counting): {hooks:.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
