"""The Redis-outage fallback lives in the database: an update acknowledged while Redis is
away survives the process (the dyno) that took it, and any process feeds it to Redis later.

Runs on SQLite and PostgreSQL (the `database_url` fixture), against a redis-server the test kills.
"""

from __future__ import annotations

import json

import pytest
import redis
import sqlalchemy as sa

from app.db import make_engine
from app.events import OrderEvent
from app.exceptions import NotDurableError
from app.ingest import Ingestor, replay_pending
from app.ingest.fallback import DatabaseFallback, ingest_fallback
from app.redis_keys import DEDUP_PREFIX, STREAM
from tests.integration.test_durability import make_event
from tests.support.procs import OwnRedis, free_port, wait_until


def fallback_rows(engine) -> int:
    """Rows waiting in ingest_fallback."""
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(ingest_fallback)).scalar_one()


@pytest.fixture
def own(tmp_path):
    """A redis-server with AOF this test may kill."""
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_redis_away_keeps_updates_in_the_database_and_another_process_replays_them(own, database_url):
    engine = make_engine(database_url)
    client = redis.Redis.from_url(own.url, socket_timeout=2)
    web = Ingestor(client, dedup_ttl=600, engine=engine)
    try:
        assert web.submit(make_event("A1"), b"a1") is True
        own.kill()
        answers = [web.submit(make_event(f"B{i}"), f"b{i}".encode()) for i in range(50)]
        assert all(answers) and web.spooling
        assert web.submit(make_event("B7"), b"b7") is False  # the same update again: a duplicate, by the table
        assert fallback_rows(engine) == 50
        raw = {"nested": [1, {"é": "\ud800"}]}
        event = OrderEvent.from_dict(dict(make_event("B99").to_dict(), raw=raw))
        assert web.submit(event, b"\x00\xff") is True  # any bytes, any JSON the queue takes
    finally:
        web.close()  # the web dyno is replaced while Redis is still away: nothing of it survives but the rows

    own.start()
    replacement = Ingestor(client, dedup_ttl=600, engine=engine)  # a new dyno: empty disk, same database
    try:
        replacement.start()
        wait_until(lambda: fallback_rows(engine) == 0, 30, 0.1, message="the kept updates were not replayed")
        entries = client.xrange(STREAM)
        order_ids = sorted(json.loads(fields[b"e"])["order_id"] for _, fields in entries)
        assert order_ids == sorted(["A1", "B99"] + [f"B{i}" for i in range(50)])
        [body] = [f[b"b"] for _, f in entries if json.loads(f[b"e"])["order_id"] == "B99"]
        assert body == b"\x00\xff"
        assert client.exists(DEDUP_PREFIX + make_event("B3").dedup_key)
        assert replacement.submit(make_event("B3"), b"b3") is False  # deduplicated against the replayed key
    finally:
        replacement.close()
        engine.dispose()


def test_the_replay_step_is_idempotent_and_callable_by_any_process(own, database_url):
    engine = make_engine(database_url)
    client = redis.Redis.from_url(own.url, socket_timeout=2)
    web = Ingestor(client, dedup_ttl=600, engine=engine)
    fallback = DatabaseFallback(engine)
    try:
        for i in range(3):
            assert fallback.keep(_update(web, f"R{i}"))
        assert replay_pending(web.queue, [fallback]) == (3, 0)
        for i in range(3):
            assert fallback.keep(_update(web, f"R{i}"))  # kept again (a crash before the delete, say)
        assert replay_pending(web.queue, [fallback]) == (0, 3)  # the dedup keys make the second feed a no-op
        assert client.xlen(STREAM) == 3 and fallback_rows(engine) == 0
        assert fallback.keep(_update(web, "R9"))
        assert web.replay_now() == (1, 0)  # the worker's entry point: the same step, synchronously
        assert client.xlen(STREAM) == 4 and fallback_rows(engine) == 0
    finally:
        web.close()
        engine.dispose()


def test_redis_and_database_both_away_answers_503(tmp_path):
    dead_redis = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    dead_db = make_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    ingestor = Ingestor(dead_redis, dedup_ttl=600, engine=dead_db)
    try:
        with pytest.raises(NotDurableError):
            ingestor.submit(make_event("X1"), b"x")
    finally:
        ingestor.close()
        dead_db.dispose()


def test_the_spool_is_an_opt_in_after_the_database(tmp_path, monkeypatch):
    from app.config import load_config
    from tests.support.env import make_env

    env = make_env("redis://127.0.0.1:1/0", "sqlite:///x", tmp_path)
    assert load_config(env).ingest.spool_dir is None  # no local disk by default
    assert load_config(dict(env, SPOOL_DIR=str(tmp_path / "spool"))).ingest.spool_dir == tmp_path / "spool"


def _update(ingestor: Ingestor, order_id: str):
    """The queued form of a minimal event."""
    from app.ingest.queue import QueuedUpdate
    from app.ingest.serialize import event_json

    event = make_event(order_id)
    return QueuedUpdate(DEDUP_PREFIX + event.dedup_key, event.id, event_json(event), b"r")


def test_a_full_redis_under_noeviction_sends_updates_to_the_database_until_it_has_room(tmp_path, sqlite_url):
    own = OwnRedis(tmp_path)
    own.start()
    engine = make_engine(sqlite_url)
    client = redis.Redis.from_url(own.url, socket_timeout=2)
    ingestor = Ingestor(client, dedup_ttl=600, engine=engine)
    try:
        client.config_set("maxmemory", "2mb")
        try:
            for i in range(400):
                client.set(f"ballast:{i}", b"x" * 10_000)
        except redis.OutOfMemoryError:
            pass  # full: writes are refused from here on
        answers = [ingestor.submit(make_event(f"M{i}"), b"m") for i in range(20)]
        assert all(answers) and ingestor.spooling  # acknowledged: kept in the database
        assert fallback_rows(engine) == 20 and client.xlen(STREAM) == 0
        client.config_set("maxmemory", "0")  # the operator makes room
        wait_until(lambda: fallback_rows(engine) == 0 and not ingestor.spooling, 30, 0.1)
        assert client.xlen(STREAM) == 20
        assert ingestor.submit(make_event("M20"), b"m") is True and client.xlen(STREAM) == 21
    finally:
        ingestor.close()
        engine.dispose()
        own.stop()
