"""The request path alone: `POST /postbacks/kite` against a bare Flask handler, same server command.

Run from the repository root:  .venv/bin/python bench/ingest.py   (options: --help)

1. In-process: both WSGI apps called directly (no server, no sockets besides Redis) with a prebuilt
   environ, µs per request, then a cProfile top-20 of Orderhook's handler.
2. Over the real server: a throwaway redis-server (AOF, appendfsync everysec) on a unix socket, then
   the Procfile's web command (`gunicorn -c gunicorn.conf.py wsgi:app`, bound to 127.0.0.1) serving
   bench/bare_app.py and Orderhook in turn, each driven by bench/loadgen.py with distinct validly
   signed Kite postbacks; req/s of both and the ratio (goal >= 0.85). `--sync` repeats the
   comparison with gunicorn's sync workers (no gevent) to show what the worker class costs.

Everything lives in a temporary directory that is removed at the end; only loopback is used.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import LoadGenerator  # noqa: E402
from bench.run import (  # noqa: E402
    ADMIN_TOKEN,
    FORWARD_SECRET,
    KITE_SECRET,
    CpuMeter,
    KitePostbacks,
    Proc,
    free_port,
    procfile_command,
    redis_server_binary,
    wait_for,
)

GOAL = 0.85


# In-process:


def production_env(redis_url: str, workdir: Path) -> dict[str, str]:
    """A production configuration over the throwaway Redis and a SQLite file."""
    return {
        "APP_ENV": "production",
        "PUBLIC_BASE_URL": "https://orderhook.example.com",
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{workdir / 'orderhook.sqlite3'}",
        "INSTANCE_PATH": str(workdir / "instance"),
        "KITE_API_SECRET": KITE_SECRET,
        "POSTBACK_TOKEN": "bench_" + "0123456789abcdef",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "FORWARD_SECRET": FORWARD_SECRET,
    }


def environ_for(body: bytes) -> dict:
    """A WSGI environ of one POST /postbacks/kite, as gunicorn builds it."""
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/postbacks/kite",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def call_app(app: Callable, body: bytes) -> str:
    """One request through the WSGI app; its status line."""
    status: list[str] = []
    for _ in app(environ_for(body), lambda s, h, e=None: status.append(s)):
        pass
    return status[0]


def in_process(redis_url: str, workdir: Path, count: int, top: int) -> dict[str, float]:
    """µs per request of both apps called directly, then cProfile's top of Orderhook's handler."""
    os.environ.update(production_env(redis_url, workdir))
    import bench.bare_app
    from app import create_app

    bare = bench.bare_app.app
    ours = create_app()
    postbacks = KitePostbacks("P")
    figures = {}
    for name, app in (("bare", bare), ("orderhook", ours)):
        for i in range(300):  # warm caches and the Redis connection
            call_app(app, postbacks.body(900_000_000 + i))
        bodies = [postbacks.body(i + (0 if name == "bare" else count)) for i in range(count)]
        started = time.perf_counter()
        statuses = {call_app(app, body) for body in bodies}
        figures[name] = (time.perf_counter() - started) / count * 1e6
        print(f"  in-process {name:9s} {figures[name]:7.1f} us/request  statuses {sorted(statuses)}", flush=True)
    bodies = [postbacks.body(i + 2 * count) for i in range(count)]
    profiler = cProfile.Profile()
    profiler.enable()
    for body in bodies:
        call_app(ours, body)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    print(f"\n  cProfile of {count} Orderhook requests, top {top} by own time:", flush=True)
    print("\n".join("    " + line for line in out.getvalue().splitlines() if line.strip()), flush=True)
    return figures


# Over the real server:


class Redis:
    """A throwaway redis-server on a unix socket, as production runs it (AOF, noeviction)."""

    def __init__(self, workdir: Path) -> None:
        self.sock = workdir / "redis.sock"
        self.url = f"unix://{self.sock}"
        command = [
            redis_server_binary(), "--port", "0", "--unixsocket", str(self.sock), "--unixsocketperm", "700",
            "--dir", str(workdir), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--maxmemory-policy", "noeviction", "--logfile", str(workdir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: self.command("PING") is True, 15, "redis-server")

    def command(self, *args: str):
        """One command (None on failure)."""
        import redis

        client = redis.Redis(unix_socket_path=str(self.sock), socket_timeout=10)
        try:
            return client.execute_command(*args)
        except (redis.RedisError, OSError):
            return None
        finally:
            client.close()

    def stop(self) -> None:
        """Terminate the server."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def serve(command: str, module: str, env: dict[str, str], workdir: Path, name: str) -> tuple[Proc, int]:
    """Start `command` serving `module` on a free loopback port; (process, port) once it listens."""
    import socket

    port = free_port()
    line = command.replace("0.0.0.0", "127.0.0.1").replace("wsgi:app", module)
    proc = Proc(name, ["bash", "-c", "exec " + line], dict(env, PORT=str(port)), workdir)

    def listening() -> bool:
        if proc.popen.poll() is not None:
            raise SystemExit(f"{name} exited:\n{proc.log()[-3000:]}")
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    wait_for(listening, 60, f"{name} to listen")
    return proc, port


def over_server(command: str, label: str, redis: Redis, workdir: Path, args: argparse.Namespace) -> dict[str, float]:
    """req/s of the bare app and Orderhook under `command`, alternating, `args.rounds` rounds; medians."""
    env = production_env(redis.url, workdir)
    if args.web_workers:
        env["WEB_CONCURRENCY"] = str(args.web_workers)
    rates: dict[str, list[float]] = {"bare": [], "orderhook": []}
    cpu: dict[str, list[float]] = {"bare": [], "orderhook": []}
    for round_number in range(args.rounds):
        for name, module in (("bare", "bench.bare_app:app"), ("orderhook", "wsgi:app")):
            postbacks = KitePostbacks(f"S{label[0]}{round_number}{name[0]}")
            proc, port = serve(command, module, env, workdir, f"{label}-{name}")
            try:
                LoadGenerator(port, lambda i, p=postbacks: p.request(i + 500_000_000)).closed_loop(
                    concurrency=args.concurrency, duration=1.0
                )
                meter = CpuMeter({"web": proc.pid, "redis": redis.proc.pid})
                run = LoadGenerator(port, postbacks.request).closed_loop(
                    concurrency=args.concurrency, duration=args.seconds
                )
                used = meter.stop()
            finally:
                proc.stop()
            if "SPOOLING" in proc.log():  # the figure would not be the Redis path's
                print(f"  warning: {label}-{name} sent updates to its fallback (Redis refused them):", flush=True)
                print("    " + next(line for line in proc.log().splitlines() if "SPOOLING" in line)[:300], flush=True)
            redis.command("FLUSHALL")
            codes: dict[int, int] = {}
            for result in run.results:
                codes[result.status] = codes.get(result.status, 0) + 1
            rates[name].append(run.rate)
            web_us = used["web"] / max(len(run.results), 1) * 1e6
            redis_us = used["redis"] / max(len(run.results), 1) * 1e6
            cpu[name].append(web_us + redis_us)
            print(
                f"  {label} round {round_number + 1}: {name:9s} {run.rate:7.0f} req/s  "
                f"CPU us/request: web {web_us:4.0f}, redis {redis_us:3.0f}  statuses {codes}  "
                f"other processes {used['other'] / max(used['wall'], 1e-9):.2f} cores",
                flush=True,
            )
    bare, ours = statistics.median(rates["bare"]), statistics.median(rates["orderhook"])
    # CPU per request (web + Redis) hardly depends on what else runs on a shared machine; req/s does.
    cpu_ratio = statistics.median(cpu["bare"]) / max(statistics.median(cpu["orderhook"]), 1e-9)
    return {"bare": bare, "orderhook": ours, "ratio": ours / bare if bare else 0.0, "cpu_ratio": cpu_ratio}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each server round")
    parser.add_argument("--rounds", type=int, default=2, help="server rounds per app (medians are compared)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--count", type=int, default=3000, help="in-process requests per app")
    parser.add_argument("--top", type=int, default=20, help="cProfile rows")
    parser.add_argument("--web-workers", type=int, default=0, help="WEB_CONCURRENCY (default: gunicorn.conf.py's)")
    parser.add_argument("--sync", action="store_true", help="also compare with gunicorn's sync workers (no gevent)")
    parser.add_argument("--no-server", action="store_true", help="in-process figures and profile only")
    parser.add_argument("--no-profile", action="store_true", help="server figures only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Print in-process figures, the profile, and req/s of both apps under the real server command."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="oh-bench-ingest-") as tmp:
        workdir = Path(tmp)
        redis = Redis(workdir)
        try:
            results = {}
            if not args.no_server:
                command = procfile_command("web")
                print(f"server: {command}", flush=True)
                results["gevent"] = over_server(command, "gevent", redis, workdir, args)
                if args.sync:
                    workers = args.web_workers or 2
                    sync = f"gunicorn --workers {workers} --worker-class sync --bind 0.0.0.0:$PORT wsgi:app"
                    print(f"server: {sync}", flush=True)
                    results["sync"] = over_server(sync, "sync", redis, workdir, args)
            if not args.no_profile:
                print("in-process (WSGI app called directly):", flush=True)
                figures = in_process(redis.url, workdir, args.count, args.top)
                print(f"  in-process ratio of costs: orderhook/bare = {figures['orderhook'] / figures['bare']:.2f}")
            for label, figures in results.items():
                verdict = "meets" if figures["ratio"] >= GOAL else "misses"
                print(
                    f"{label}: bare {figures['bare']:.0f} req/s, orderhook {figures['orderhook']:.0f} req/s, "
                    f"ratio {figures['ratio']:.2f} ({verdict} the {GOAL} goal); "
                    f"CPU per request (web + Redis) bare/orderhook {figures['cpu_ratio']:.2f}",
                    flush=True,
                )
        finally:
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
