"""Redis at maxmemory under noeviction: the worker backs off instead of crash-looping, says the
pipeline is stalled in `oh:pipeline:stalled`, keeps draining the stream (its reads, acks and deletes need
no memory), and carries on by itself once memory frees."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
import redis
from rq import Worker

from app.events import OrderEvent
from app.ingest import Ingestor
from app.redis_keys import STALLED_KEY, STREAM
from tests.support.env import make_env
from tests.support.procs import Process, wait_until
from workers.pipeline import ensure_group

pytestmark = pytest.mark.e2e


def event(n: int) -> OrderEvent:
    """A distinct update."""
    return OrderEvent(
        broker="dhan",
        source="postback",
        order_id=f"OOM{n:05d}",
        status="OPEN",
        broker_status="PENDING",
        received_at="2026-11-28T10:00:00Z",
        raw={"orderNo": f"OOM{n:05d}"},
    )


def stored(url: str) -> int:
    """Events in the SQLite database."""
    path = url.split("///", 1)[1]
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_worker_backs_off_under_redis_oom_says_so_and_resumes_by_itself(own_redis, sqlite_url, tmp_path):
    client = redis.Redis.from_url(own_redis.url, socket_timeout=5)
    ensure_group(client)  # a worker ran before (creating a group is refused at maxmemory)
    ingestor = Ingestor(client, dedup_ttl=600)
    for n in range(200):
        assert ingestor.submit(event(n), json.dumps({"orderNo": f"OOM{n:05d}", "pad": "x" * 2000}).encode())
    client.set("ballast", b"x" * 8_000_000)  # memory the pipeline cannot free by itself
    client.close()  # the 8 MB query buffer of this connection is memory too, until it is gone
    client = redis.Redis.from_url(own_redis.url, socket_timeout=5)
    time.sleep(0.5)
    # Full even once the stream is drained (its 200 entries hold well under 3 MB).
    client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) - 3_000_000))
    ingestor = Ingestor(client, dedup_ttl=600)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set("probe", "1")

    env = make_env(own_redis.url, sqlite_url, tmp_path, WORKER_PROCESSES="2")
    worker = Process("worker", env, tmp_path)
    try:
        wait_until(lambda: client.exists(STALLED_KEY), 30, message=f"not marked stalled:\n{worker.log()[-3000:]}")
        marker = json.loads(client.get(STALLED_KEY))
        assert "out of memory" in marker["reason"] and marker["since"].endswith("Z")
        assert 0 < client.pttl(STALLED_KEY) <= 30_000
        # Draining needs no memory: what was acknowledged before the OOM is stored meanwhile.
        wait_until(lambda: stored(sqlite_url) == 200, 60, message="the stream was not drained under OOM")
        # The entries are deleted right after the commit that stored them: wait for that too.
        wait_until(lambda: client.xlen(STREAM) == 0, 30, message="stored entries were not deleted from the stream")
        time.sleep(6)  # idle loops write nothing: the marker must stay while Redis is still full
        assert client.exists(STALLED_KEY), worker.log()[-3000:]
        assert worker.popen.poll() is None and "exited with code" not in worker.log(), "the worker crash-looped"

        client.delete("ballast")  # memory frees
        wait_until(lambda: not client.exists(STALLED_KEY), 30, message=f"still stalled:\n{worker.log()[-3000:]}")
        wait_until(lambda: len(Worker.all(connection=client)) == 2, 30, message=worker.log()[-3000:])
        assert ingestor.submit(event(999), b'{"orderNo": "OOM00999"}')
        wait_until(lambda: stored(sqlite_url) == 201, 30, message=worker.log()[-3000:])
        assert "exited with code" not in worker.log()
    finally:
        worker.stop()
