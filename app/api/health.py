"""/healthz (the process runs) and /readyz (the service can take and store updates right now).

Readiness checks what an acknowledged postback needs, each with a sub-second deadline so a frozen
Redis or database answers 503 within about a second instead of holding a web greenlet:

* database: a write (UPDATE of alembic_version) in a transaction that is rolled back, under a
  statement timeout: a read-only, locked or unreachable database is not ready;
* redis: a SET with a short TTL (an OOM refusal at maxmemory is not ready);
* ingest: the oldest acknowledged-but-unstored update is younger than READY_MAX_BACKLOG_SECONDS;
* pipeline: the worker side has not reported the pipeline stalled (`oh:pipeline:stalled`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator

import redis
import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from app.config import Config
from app.pipeline_status import ingest_backlog, pipeline_stalled
from app.redis_conn import probe_client
from app.redis_keys import READY_KEY_PREFIX

bp = Blueprint("health", __name__)

#: Per-check deadline in seconds (the database's statement timeout is a little shorter).
CHECK_TIMEOUT_SECONDS = 0.8

_engine_lock = threading.Lock()
_engines: dict[tuple[int, str], Engine] = {}


class NotReady(Exception):
    """A check failed for a reason worth showing (no secrets, no URLs)."""


@bp.get("/healthz")
def healthz():
    """Liveness: 200 while the process serves requests."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Readiness: 200 only when every check passes; the body lists each check's result."""
    services = current_app.extensions["orderhook"]
    config: Config = services.config
    database_url = services.engine.url.render_as_string(hide_password=False)
    checks = {"database": _run(lambda: _database_writable(database_url))}
    client = probe_client(config)
    checks["redis"] = _run(lambda: _redis_writable(client))
    if checks["redis"] == "ok":
        checks["ingest"] = _run(lambda: _ingest_drained(client, _max_backlog_seconds(config)))
        checks["pipeline"] = _run(lambda: _pipeline_running(client))
    else:
        checks["ingest"] = checks["pipeline"] = "unknown: Redis unavailable"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "unavailable", checks=checks), 200 if ready else 503


def _run(check: Callable[[], None]) -> str:
    """'ok', the NotReady reason, or the failure's class name (never its message: it may hold a URL)."""
    try:
        with _deadline(CHECK_TIMEOUT_SECONDS):
            check()
    except NotReady as exc:
        return f"unavailable: {exc}"
    except _TIMEOUTS:
        return f"unavailable: no answer within {CHECK_TIMEOUT_SECONDS} s"
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure as unavailable
        return f"unavailable: {type(exc).__name__}"
    return "ok"


try:
    from gevent import Timeout as _GeventTimeout

    _TIMEOUTS: tuple[type[BaseException], ...] = (_GeventTimeout,)
except ImportError:  # pragma: no cover - gevent is a runtime dependency
    _TIMEOUTS = ()


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Under gevent (the web), cut the check at `seconds`; socket and statement timeouts bound it otherwise."""
    try:
        from gevent import Timeout, monkey
    except ImportError:  # pragma: no cover - gevent is a runtime dependency
        yield
        return
    if not monkey.is_module_patched("socket"):
        yield
        return
    timer = Timeout(seconds)  # a BaseException: no library's `except Exception` swallows or retries it
    timer.start()
    try:
        yield
    finally:
        timer.close()


def _readiness_engine(url: str) -> Engine:
    """An engine for probes only: a fresh connection each time (NullPool), short timeouts."""
    key = (os.getpid(), url)
    with _engine_lock:
        engine = _engines.get(key)
        if engine is None:
            timeout_ms = int(CHECK_TIMEOUT_SECONDS * 1000) - 100
            if url.startswith("sqlite"):
                args: dict = {"timeout": CHECK_TIMEOUT_SECONDS - 0.1}
            else:
                # libpq's connect_timeout cannot go below 2 s; under gevent _deadline cuts sooner.
                options = f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}"
                args = {"connect_timeout": 2, "options": options}
            engine = sa.create_engine(url, poolclass=NullPool, connect_args=args)
            _engines[key] = engine
        return engine


def _database_writable(url: str) -> None:
    """Take a row write lock on alembic_version and roll back: reachable, migrated and writable."""
    engine = _readiness_engine(url)
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            updated = conn.execute(sa.text("UPDATE alembic_version SET version_num = version_num")).rowcount
        finally:
            transaction.rollback()
    if not updated:
        raise NotReady("the schema is not migrated (no alembic_version row)")


def _redis_writable(client: redis.Redis) -> None:
    """SET with a 10 s TTL: Redis answers and accepts writes (an OOM refusal says so)."""
    try:
        client.set(f"{READY_KEY_PREFIX}{socket.gethostname()}:{os.getpid()}", "1", px=10_000)
    except redis.exceptions.OutOfMemoryError:
        raise NotReady("Redis refuses writes: out of memory (maxmemory reached)") from None
    except redis.exceptions.ReadOnlyError:
        raise NotReady("Redis is a read-only replica") from None
    except redis.ResponseError as exc:
        raise NotReady(f"Redis refused the write ({type(exc).__name__})") from None


def _ingest_drained(client: redis.Redis, bound: float) -> None:
    """The oldest acknowledged update not yet stored is younger than the bound."""
    age = ingest_backlog(client)["oldest_age_seconds"]
    if age is not None and age > bound:
        raise NotReady(f"the oldest unstored update is {age:.0f} s old (bound {bound:.0f} s): is the worker running?")


def _pipeline_running(client: redis.Redis) -> None:
    """The worker side has not reported a stall."""
    stalled = pipeline_stalled(client)
    if stalled is not None:
        since = f" since {stalled['since']}" if stalled.get("since") else ""
        raise NotReady(f"pipeline stalled: {stalled['reason']}{since}")


def _max_backlog_seconds(config: Config) -> float:
    """READY_MAX_BACKLOG_SECONDS (default 60): how far behind storage may be while still ready."""
    return config.web.ready_max_backlog
