"""/readyz tells the truth fast: a writable database, Redis taking writes, a drained stream, no stall.

A frozen Redis under the real gunicorn web: tests/e2e/test_ops_server.py.
"""

from __future__ import annotations

import json
import socket
import time
import uuid

import psycopg
import pytest
import redis

from app import create_app
from app.config import load_config
from app.db import upgrade
from app.services import Services
from tests.support.env import PG_ADMIN_DSN, postgres_available


def app_for(env: dict[str, str]):
    """A test client and its services for an environment (caller disposes the engine)."""
    config = load_config(env)
    services = Services.build(config)
    return create_app(config, services).test_client(), services


def test_ready_when_everything_answers(client):
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok", "ingest": "ok", "pipeline": "ok"},
    }


def test_a_stalled_pipeline_is_not_ready(client, redis_client):
    redis_client.set("oh:pipeline:stalled", json.dumps({"reason": "Redis OOM", "since": "2026-11-28T10:00:00Z"}))
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert (
        answer.get_json()["checks"]["pipeline"] == "unavailable: pipeline stalled: Redis OOM since 2026-11-28T10:00:00Z"
    )


def test_an_old_unstored_update_is_not_ready_within_the_bound_it_is(client, env, redis_client):
    two_minutes_ago = int((time.time() - 120) * 1000)
    redis_client.xadd("oh:ingest", {"e": "{}", "b": ""}, id=f"{two_minutes_ago}-0")
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert "oldest unstored update is 120 s old" in answer.get_json()["checks"]["ingest"]
    relaxed, services = app_for(dict(env, READY_MAX_BACKLOG_SECONDS="600"))
    try:
        assert relaxed.get("/readyz").status_code == 200
    finally:
        services.engine.dispose()


def test_an_unmigrated_database_is_not_ready(env, tmp_path):
    client, services = app_for(dict(env, DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}"))
    try:
        answer = client.get("/readyz")
    finally:
        services.engine.dispose()
    assert answer.status_code == 503 and answer.get_json()["checks"]["database"].startswith("unavailable")


@pytest.fixture
def tiny_redis(own_redis):
    """A throwaway redis-server (tests/support/procs.py OwnRedis) whose memory limit the test may lower."""
    return own_redis.url


def test_redis_at_maxmemory_with_noeviction_is_not_ready(env, tiny_redis):
    admin = redis.Redis.from_url(tiny_redis)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", "1")  # below what Redis already uses: every write is refused with OOM
    client, services = app_for(dict(env, REDIS_URL=tiny_redis))
    try:
        answer = client.get("/readyz")
    finally:
        services.engine.dispose()
    assert answer.status_code == 503
    checks = answer.get_json()["checks"]
    assert checks["redis"] == "unavailable: Redis refuses writes: out of memory (maxmemory reached)"
    assert checks["database"] == "ok"


def test_a_frozen_redis_is_not_ready_and_the_check_gives_up_quickly(env):
    frozen = socket.socket()
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(8)  # the kernel accepts; nobody ever answers
    client, services = app_for(dict(env, REDIS_URL=f"redis://127.0.0.1:{frozen.getsockname()[1]}/0"))
    try:
        answer = client.get("/readyz")
    finally:
        services.engine.dispose()
        frozen.close()
    assert answer.status_code == 503
    checks = answer.get_json()["checks"]
    assert checks["redis"] == "unavailable: TimeoutError"
    assert checks["ingest"] == checks["pipeline"] == "unknown: Redis unavailable"


def test_a_read_only_postgresql_is_not_ready(env):
    if not postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_DSN}")
    name = f"orderhook_ro_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{PG_ADMIN_DSN.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"
    try:
        upgrade(url)
        client, services = app_for(dict(env, DATABASE_URL=url))
        try:
            assert client.get("/readyz").get_json()["checks"]["database"] == "ok"
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            answer = client.get("/readyz")
        finally:
            services.engine.dispose()
        assert answer.status_code == 503
        assert answer.get_json()["checks"]["database"].startswith("unavailable")
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
