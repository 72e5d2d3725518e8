"""Nothing acknowledged is lost when Redis, a worker or the database dies (docs/ingest.md, docs/pipeline.md).

The end-to-end tests start the Procfile's own web and worker commands on loopback and kill real
processes: a redis-server with AOF that the test owns, the worker's process group, a throwaway
PostgreSQL started with initdb/pg_ctl on its own port. The spool tests at the top run in-process.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import redis
import requests

from app.events import OrderEvent
from app.exceptions import NotDurableError
from app.ingest import Ingestor
from app.redis_keys import DEDUP_PREFIX, GROUP, STREAM
from app.spool import SpoolRecord, SpoolWriter, claim_file, replay_claimed, spool_files
from tests.support.env import ADMIN_TOKEN, KITE_SECRET, make_env
from tests.support.helpers import load_fixture
from tests.support.procs import OwnRedis, Process, free_port, procfile_command, start_web, wait_until
from workers import pipeline

SEED = load_fixture("kite_postback_complete.json")
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TEMPLATE = json.dumps(dict(SEED, order_id="@ID@", checksum="@SUM@", status="OPEN", filled_quantity=0, average_price=0))


# Helpers:


def kite_body(order_id: str) -> bytes:
    """A distinct, validly signed Kite postback for a new order."""
    checksum = hashlib.sha256((order_id + SEED["order_timestamp"] + KITE_SECRET).encode()).hexdigest()
    return TEMPLATE.replace("@ID@", order_id).replace("@SUM@", checksum).encode()


def post(port: int, body: bytes, timeout: float = 10.0) -> int:
    """POST /postbacks/kite over a fresh connection; the status, or 0 when the connection failed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/postbacks/kite", body=body, headers={"Content-Type": "application/json"})
        answer = conn.getresponse()
        answer.read()
        return answer.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def kite_update(order_id: str, status: str, filled: int) -> bytes:
    """A validly signed Kite postback for one step of an order of 10."""
    payload = dict(SEED, order_id=order_id, status=status, quantity=10, filled_quantity=filled)
    payload["pending_quantity"] = 10 - filled
    payload["checksum"] = hashlib.sha256((order_id + SEED["order_timestamp"] + KITE_SECRET).encode()).hexdigest()
    return json.dumps(payload).encode()


#: An order's three updates: open, partly filled, complete.
STEPS = (("OPEN", 0), ("OPEN", 4), ("COMPLETE", 10))


def interleaved_updates(prefix: str, width: int = 20) -> Callable[[int], tuple[str, bytes]]:
    """The index-th postback of a stream of three-update orders, `width` orders interleaved at a time."""

    def make(index: int) -> tuple[str, bytes]:
        block, within = divmod(index, width * len(STEPS))
        step, column = divmod(within, width)
        order_id = f"{prefix}{block * width + column:06d}"
        status, filled = STEPS[step]
        return f"{order_id}/{step}", kite_update(order_id, status, filled)

    return make


class Stream:
    """Steady postbacks at `rate`/s from a few threads; remembers every answer by order id (or `make`'s key)."""

    def __init__(
        self,
        port: int,
        prefix: str,
        rate: float,
        seconds: float,
        threads: int = 8,
        make: Callable[[int], tuple[str, bytes]] | None = None,
    ) -> None:
        self.port, self.prefix, self.rate, self.seconds = port, prefix, rate, seconds
        self.make = make or (lambda index: (f"{prefix}{index:06d}", kite_body(f"{prefix}{index:06d}")))
        self.answers: dict[str, int] = {}
        self.lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="stream")
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Stream:
        """Begin sending."""
        self.started = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        """Schedule one postback every 1/rate seconds (open loop, bounded by `seconds`)."""
        total = int(self.rate * self.seconds)
        for index in range(total):
            delay = self.started + index / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._pool.submit(self._send, index)

    def _send(self, index: int) -> None:
        """One postback; its answer is kept."""
        key, body = self.make(index)
        status = post(self.port, body)
        with self.lock:
            self.answers[key] = status

    def join(self, timeout: float = 60.0) -> None:
        """Wait for every send to be answered."""
        self._thread.join(timeout)
        self._pool.shutdown(wait=True)

    def acked(self) -> list[str]:
        """Order ids that got a 2xx."""
        with self.lock:
            return sorted(oid for oid, status in self.answers.items() if 200 <= status < 300)


def stored_count_sqlite(url: str) -> int:
    """Events stored in a SQLite database (read-only)."""
    path = url.split("///", 1)[1]
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    except sqlite3.Error:
        return 0


def sqlite_rows(url: str, query: str) -> list[tuple]:
    """Rows of a read-only query on a SQLite database."""
    path = url.split("///", 1)[1]
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
        return conn.execute(query).fetchall()


def events_via_api(port: int, order_id: str) -> int:
    """How many events the admin API lists for a Kite order (0 when it does not know the order)."""
    answer = requests.get(f"http://127.0.0.1:{port}/api/orders/kite/{order_id}", headers=AUTH, timeout=5)
    if answer.status_code == 404:
        return 0
    answer.raise_for_status()
    return len(answer.json()["events"])


def assert_stored_once_via_api(port: int, order_ids: list[str]) -> None:
    """Every order is readable through the admin API with exactly one event."""
    counts = {oid: events_via_api(port, oid) for oid in order_ids}
    missing = [oid for oid, n in counts.items() if n == 0]
    doubled = [oid for oid, n in counts.items() if n > 1]
    assert not missing, f"{len(missing)} acknowledged postbacks were not stored, e.g. {missing[:5]}"
    assert not doubled, f"{len(doubled)} postbacks were stored more than once, e.g. {doubled[:5]}"


def wait_for_worker(worker: Process) -> None:
    """Until the worker's dispatcher runs."""
    wait_until(lambda: "worker up" in worker.log(), 60, message=f"worker did not start:\n{worker.log()}")


def loop_consumers(worker: Process) -> set[str]:
    """The consumer names of a worker's pipeline loops: `<host>-<pid>` of each child process."""
    host, children = socket.gethostname(), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == worker.popen.pid:
            children.add(f"{host}-{stat.parent.name}")
    return children


def freeze_holding_batch(client: redis.Redis, worker: Process, loops: set[str], timeout: float = 30) -> None:
    """Stop the worker's process group (SIGSTOP) at a moment its loops hold T entries, so that a kill right
    after lands while they are held: a loop stores and acks a batch in milliseconds, faster than a poll and a
    kill on a busy machine (the kill used to land after the ack)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if event_ids_of(client, pending_of(client, loops), "T"):
            os.killpg(worker.popen.pid, signal.SIGSTOP)
            if event_ids_of(client, pending_of(client, loops), "T"):
                return
            os.killpg(worker.popen.pid, signal.SIGCONT)
        time.sleep(0.001)
    raise AssertionError("the worker never held a batch of T entries")


def pending_of(client: redis.Redis, consumers: set[str]) -> list[bytes]:
    """Entry ids pending in the group for these consumers."""
    return [
        item["message_id"]
        for name in consumers
        for item in client.xpending_range(STREAM, GROUP, "-", "+", 10_000, consumername=name)
    ]


def event_ids_of(client: redis.Redis, entry_ids: list[bytes], prefix: str = "") -> set[str]:
    """The event ids queued in these stream entries (of orders whose id starts with `prefix`)."""
    found = set()
    for entry_id in entry_ids:
        for _, fields in client.xrange(STREAM, entry_id, entry_id):
            event = json.loads(fields[b"e"])
            if event["order_id"].startswith(prefix):
                found.add(event["id"])
    return found


def stored_ids_sqlite(url: str, event_ids: set[str]) -> set[str]:
    """Which of these event ids are stored."""
    rows = sqlite_rows(url, "SELECT id FROM events")
    return event_ids & {row[0] for row in rows}


# The spool, in-process:


def make_event(order_id: str) -> OrderEvent:
    """A minimal normalized event."""
    return OrderEvent(
        broker="kite",
        source="postback",
        order_id=order_id,
        status="OPEN",
        broker_status="OPEN",
        received_at="2026-01-01T00:00:00Z",
        raw={"order_id": order_id},
    )


def test_spool_records_round_trip_and_a_torn_tail_is_skipped(tmp_path):
    writer = SpoolWriter(tmp_path)
    records = [SpoolRecord(f"k{i}", f"evt_{i}", json.dumps({"i": i, "s": "é"}), bytes([i, 0, 255])) for i in range(3)]
    for record in records:
        writer.append(record)
    path = writer.rotate()
    assert path is not None and path.exists()
    with open(path, "ab") as stream:
        stream.write(records[0].encode()[:25])  # a crash in the middle of a write
    taken: list[SpoolRecord] = []
    fd = claim_file(path)
    assert fd is not None
    assert replay_claimed(fd, path, taken.extend) == 3
    assert taken == records
    assert not path.exists()


def test_a_file_held_by_a_live_writer_cannot_be_claimed(tmp_path):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only writes and waits
        try:
            writer = SpoolWriter(tmp_path)
            writer.append(SpoolRecord("k", "evt", "{}", b""))
            os.write(write_end, b"x")
            time.sleep(30)
        finally:
            os._exit(0)
    try:
        assert os.read(read_end, 1) == b"x"
        [path] = spool_files(tmp_path)
        assert claim_file(path) is None  # the writer process holds its lock
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    fd = claim_file(path)  # its writer is dead: anyone may replay it now
    assert fd is not None
    assert replay_claimed(fd, path, lambda chunk: None) == 1


def test_redis_away_spools_then_replays_once_it_returns(tmp_path):
    own = OwnRedis(tmp_path)
    own.start()
    client = redis.Redis.from_url(own.url, socket_timeout=2)
    ingestor = Ingestor(client, dedup_ttl=600, spool_dir=tmp_path / "spool")
    try:
        assert ingestor.submit(make_event("A1"), b"a1") is True
        own.kill()
        started = time.monotonic()
        answers = [ingestor.submit(make_event(f"B{i}"), f"b{i}".encode()) for i in range(200)]
        assert time.monotonic() - started < 5, "a dead Redis must not stall each request"
        assert all(answers) and ingestor.spooling
        assert ingestor.submit(make_event("B7"), b"b7") is False  # a duplicate of a spooled update
        assert ingestor.submit(make_event("A1"), b"a1") is True  # unknown while Redis is away: kept again
        own.start()
        wait_until(lambda: not ingestor.spooling and not spool_files(tmp_path / "spool"), 20)
        entries = client.xrange(STREAM)
        order_ids = sorted(json.loads(fields[b"e"])["order_id"] for _, fields in entries)
        assert order_ids == sorted(["A1"] + [f"B{i}" for i in range(200)])  # A1 once: the dedup key held
        assert ingestor.submit(make_event("C1"), b"c1") is True and client.xlen(STREAM) == 202
        assert client.exists(DEDUP_PREFIX + make_event("B3").dedup_key)
    finally:
        own.stop()


def test_spool_failure_answers_not_durable(tmp_path):
    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the spool directory should be")
    ingestor = Ingestor(dead, dedup_ttl=600, spool_dir=blocker / "spool")
    with pytest.raises(NotDurableError):
        ingestor.submit(make_event("X1"), b"x")
    without_spool = Ingestor(dead, dedup_ttl=600)
    with pytest.raises(NotDurableError):
        without_spool.submit(make_event("X2"), b"x")


def test_spooled_records_of_a_dead_process_are_replayed_at_start(tmp_path):
    own = OwnRedis(tmp_path)
    own.start()
    spool = tmp_path / "spool"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - a web process that spooled and died
        writer = SpoolWriter(spool)
        for i in range(5):
            event = make_event(f"D{i}")
            writer.append(SpoolRecord(DEDUP_PREFIX + event.dedup_key, event.id, json.dumps(event.to_dict()), b"d"))
        os._exit(0)
    os.waitpid(pid, 0)
    client = redis.Redis.from_url(own.url, socket_timeout=2)
    ingestor = Ingestor(client, dedup_ttl=600, spool_dir=spool)
    try:
        ingestor.start()  # ingest (Redis outage): the replayer starts in the serving process, not at build
        wait_until(lambda: client.xlen(STREAM) == 5 and not spool_files(spool), 20)
    finally:
        ingestor.close()
        own.stop()


def test_the_queued_payload_is_the_event_as_to_dict_gives_it(redis_client):
    event = make_event("E1")
    event = OrderEvent.from_dict(dict(event.to_dict(), raw={"nested": [1, {"é": "\ud800"}]}, quantity=7, price=1.5))
    Ingestor(redis_client, dedup_ttl=600).submit(event, b"raw")
    [(_, fields)] = redis_client.xrange(STREAM)
    assert json.loads(fields[b"e"]) == json.loads(json.dumps(event.to_dict()))
    assert fields[b"b"] == b"raw"


def test_a_forked_process_adopts_the_spool_of_a_dead_one_on_its_first_update(tmp_path):
    own = OwnRedis(tmp_path)
    own.start()
    spool = tmp_path / "spool"
    client = redis.Redis.from_url(own.url, socket_timeout=2)
    ingestor = Ingestor(client, dedup_ttl=600, spool_dir=spool)  # built before the fork, as gunicorn --preload does
    dead = os.fork()
    if dead == 0:  # pragma: no cover - a web worker that spooled and died
        event = make_event("F0")
        record = SpoolRecord(DEDUP_PREFIX + event.dedup_key, event.id, json.dumps(event.to_dict()), b"")
        SpoolWriter(spool).append(record)
        os._exit(0)
    os.waitpid(dead, 0)
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - the replacement worker
            code = 1
            try:
                ingestor.submit(make_event("F1"), b"f1")
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and (client.xlen(STREAM) < 2 or spool_files(spool)):
                    time.sleep(0.05)
                code = 0 if client.xlen(STREAM) == 2 and not spool_files(spool) else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.WEXITSTATUS(status) == 0, "the forked process did not replay the dead process's spool"
    finally:
        own.stop()


# End to end, with real processes:


@pytest.fixture
def procs() -> Iterator[list[Process]]:
    """Processes a test started; all stopped at the end, whatever happened."""
    started: list[Process] = []
    yield started
    for proc in reversed(started):
        proc.stop(timeout=20)


@pytest.mark.e2e
def test_redis_dies_for_two_seconds_mid_stream(own_redis, sqlite_url, tmp_path, procs):
    # One RQ child: when Redis drops under a running job RQ quits that worker, and the worker
    # process must start another one, not carry on with none.
    env = make_env(own_redis.url, sqlite_url, tmp_path, WORKER_PROCESSES="1")
    port = free_port()
    procs.append(start_web(env, tmp_path, port))
    worker = Process("worker", env, tmp_path)
    procs.append(worker)
    wait_for_worker(worker)

    stream = Stream(port, "R", rate=100, seconds=7).start()
    time.sleep(2.0)
    own_redis.kill()
    time.sleep(2.0)
    own_redis.start()
    stream.join()

    sent, acked = len(stream.answers), stream.acked()
    assert sent == 700
    assert len(acked) >= 0.99 * sent, f"only {len(acked)}/{sent} acknowledged: {sorted(set(stream.answers.values()))}"
    web_log = procs[0].log()
    assert "SPOOLING" in web_log, "Redis was away but nothing was spooled"
    wait_until(
        lambda: stored_count_sqlite(sqlite_url) >= len(acked),
        90,
        0.2,
        message=f"stored {stored_count_sqlite(sqlite_url)}/{len(acked)}\nweb:\n{web_log[-3000:]}\n"
        f"worker:\n{worker.log()[-3000:]}",
    )
    assert_stored_once_via_api(port, acked)
    # ingest (Redis outage): the fallback is the database, not the dyno's disk; emptied after replay.
    assert "SPOOLING postbacks to the database" in web_log
    assert not (Path(env["INSTANCE_PATH"]) / "spool").exists(), "something was written to the local disk"
    wait_until(lambda: sqlite_rows(sqlite_url, "SELECT count(*) FROM ingest_fallback") == [(0,)], 30, 0.2)


@pytest.mark.e2e
def test_a_worker_killed_while_holding_work_is_redone_exactly_once(
    redis_client, redis_url, sqlite_url, tmp_path, procs
):
    env = make_env(redis_url, sqlite_url, tmp_path, PERSIST_BATCH="200")
    port = free_port()
    procs.append(start_web(env, tmp_path, port))
    total = 3000
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda i: post(port, kite_body(f"K{i:06d}")), range(total)))
    assert statuses.count(202) == total
    assert redis_client.xlen(STREAM) == total

    worker = Process("worker", env, tmp_path)
    procs.append(worker)

    def holds_pending() -> bool:
        try:
            return redis_client.xpending(STREAM, pipeline.GROUP)["pending"] > 0
        except redis.ResponseError:
            return False  # the group does not exist yet

    wait_until(holds_pending, 60, 0.002, message=f"the worker never read a batch:\n{worker.log()}")
    worker.kill_group()
    worker.popen.wait(10)
    pending = redis_client.xpending(STREAM, pipeline.GROUP)["pending"]
    stored_at_kill = stored_count_sqlite(sqlite_url)
    assert pending > 0 and stored_at_kill < total, "the kill did not land while the worker held work"

    dead = set(_holders(redis_client))
    held = event_ids_of(redis_client, pending_of(redis_client, dead))
    replacement = Process("worker-2", env, tmp_path, command=procfile_command("worker"))
    procs.append(replacement)
    wait_for_worker(replacement)
    up = time.monotonic()
    wait_until(
        lambda: stored_ids_sqlite(sqlite_url, held) == held and not pending_of(redis_client, dead),
        60,
        0.1,
        message=replacement.log()[-3000:],
    )
    took = time.monotonic() - up
    print(f"\nthe restarted worker stored what the killed one held {took:.1f}s after it was up")
    # Not the 20 s idle time (PIPELINE_CLAIM_IDLE_MS): the killed loops' liveness keys are gone.
    assert took < 10, f"the killed worker's entries were taken over only after {took:.1f}s"
    wait_until(
        lambda: stored_count_sqlite(sqlite_url) >= total,
        90,
        0.2,
        message=f"stored {stored_count_sqlite(sqlite_url)}/{total}\n{replacement.log()[-3000:]}",
    )
    wait_until(lambda: redis_client.xpending(STREAM, pipeline.GROUP)["pending"] == 0, 30)
    assert sqlite_rows(sqlite_url, "SELECT count(*), count(DISTINCT order_id) FROM events") == [(total, total)]
    assert sqlite_rows(sqlite_url, "SELECT count(*) FROM raw_postbacks") == [(total,)]
    assert sqlite_rows(sqlite_url, "SELECT max(event_count) FROM orders") == [(1,)]
    assert_stored_once_via_api(port, [f"K{i:06d}" for i in range(0, total, 30)])


def _holders(client: redis.Redis) -> list[str]:
    """Names of the consumers holding pending entries."""
    return [c["name"].decode() for c in client.xpending(STREAM, GROUP)["consumers"] if c["pending"]]


@pytest.mark.e2e
def test_a_killed_worker_is_taken_over_by_the_live_one_within_seconds(
    redis_client, redis_url, sqlite_url, tmp_path, procs
):
    """Two worker processes; one is SIGKILLed mid-stream while it holds entries (PIPELINE_CLAIM_IDLE_MS at
    its 20 s default): the other stores them within seconds, each once, every order numbered in arrival order.

    The T orders have one update each, so only the takeover can store a T entry the killed worker held
    (no later update of its order makes another loop take it in first); the U orders have three each.
    """
    env = make_env(redis_url, sqlite_url, tmp_path, PERSIST_BATCH="50")
    port = free_port()
    procs.append(start_web(env, tmp_path, port))
    doomed = Process("worker", env, tmp_path)
    procs.append(doomed)
    wait_for_worker(doomed)
    survivor = Process("worker-2", env, tmp_path, command=procfile_command("worker"))
    procs.append(survivor)
    wait_for_worker(survivor)
    doomed_loops = loop_consumers(doomed)
    assert len(doomed_loops) == 2, doomed_loops

    streams = [
        Stream(port, "T", rate=120, seconds=8).start(),
        Stream(port, "U", rate=60, seconds=8, threads=4, make=interleaved_updates("U")).start(),
    ]
    time.sleep(2.0)
    freeze_holding_batch(redis_client, doomed, doomed_loops)
    doomed.kill_group()
    killed = time.monotonic()
    doomed.popen.wait(10)
    held = event_ids_of(redis_client, pending_of(redis_client, doomed_loops))
    assert event_ids_of(redis_client, pending_of(redis_client, doomed_loops), "T"), "the kill did not land in time"

    def taken_over() -> bool:
        """Stored, and no longer pending for the killed loops (it may have stored one but not acked it)."""
        return stored_ids_sqlite(sqlite_url, held) == held and not pending_of(redis_client, doomed_loops)

    wait_until(taken_over, 60, 0.05, message=survivor.log()[-3000:])
    took = time.monotonic() - killed
    print(f"\n{len(held)} entries the killed worker held were stored and taken over {took:.1f}s after the kill")
    assert took < 10, f"taken over only after {took:.1f}s (the idle-time fallback is 20 s)"
    assert "liveness key is gone" in survivor.log()

    acked = []
    for stream in streams:
        stream.join()
        acked += stream.acked()
        assert len(stream.acked()) >= 0.99 * len(stream.answers), sorted(set(stream.answers.values()))
    wait_until(
        lambda: stored_count_sqlite(sqlite_url) >= len(acked),
        60,
        0.2,
        message=f"stored {stored_count_sqlite(sqlite_url)}/{len(acked)}\n{survivor.log()[-3000:]}",
    )
    assert sqlite_rows(sqlite_url, "SELECT count(*), count(DISTINCT id) FROM events") == [(len(acked), len(acked))]
    rows = sqlite_rows(sqlite_url, "SELECT order_id, sequence, arrival FROM events ORDER BY order_id, sequence")
    numbered: dict[str, list[tuple[int, tuple[int, int]]]] = {}
    for order_id, sequence, arrival in rows:
        ms, seq = arrival.split("-")
        numbered.setdefault(order_id, []).append((sequence, (int(ms), int(seq))))
    for order_id, events_of in numbered.items():
        assert [sequence for sequence, _ in events_of] == list(range(1, len(events_of) + 1)), order_id
        assert [at for _, at in events_of] == sorted(at for _, at in events_of), f"{order_id} not in arrival order"


@pytest.mark.e2e
def test_fifty_concurrent_copies_over_http_give_one_202_and_one_event(
    redis_client, redis_url, sqlite_url, tmp_path, procs
):
    env = make_env(redis_url, sqlite_url, tmp_path)
    port = free_port()
    procs.append(start_web(env, tmp_path, port, workers=4))
    body = kite_body("DUP000001")
    barrier = threading.Barrier(50)

    def send(_: int) -> int:
        barrier.wait(10)
        return post(port, body)

    with ThreadPoolExecutor(max_workers=50) as pool:
        codes = sorted(pool.map(send, range(50)))
    assert codes == [200] * 49 + [202]
    worker = Process("worker", env, tmp_path)
    procs.append(worker)
    wait_until(lambda: events_via_api(port, "DUP000001") >= 1, 60, 0.2, message=worker.log()[-3000:])
    time.sleep(1.0)
    assert events_via_api(port, "DUP000001") == 1
    assert redis_client.xlen(STREAM) == 0


@pytest.mark.e2e
def test_sigterm_to_web_and_worker_mid_stream_loses_nothing(redis_client, redis_url, sqlite_url, tmp_path, procs):
    env = make_env(redis_url, sqlite_url, tmp_path)
    port = free_port()
    web = start_web(env, tmp_path, port)
    procs.append(web)
    worker = Process("worker", env, tmp_path)
    procs.append(worker)
    wait_for_worker(worker)

    stream = Stream(port, "G", rate=150, seconds=5).start()
    time.sleep(2.5)
    web.signal(signal.SIGTERM)
    worker.signal(signal.SIGTERM)
    assert web.popen.wait(30) == 0, web.log()[-3000:]
    assert worker.popen.wait(60) == 0, worker.log()[-3000:]
    stream.join()
    acked = stream.acked()
    assert len(acked) > 200, "the stream did not run before the shutdown"
    pending = redis_client.xpending(STREAM, pipeline.GROUP)["pending"]
    assert pending == 0, "the worker stopped with a batch read but not stored"

    web2_port = free_port()
    procs.append(start_web(env, tmp_path, web2_port))
    replacement = Process("worker-2", env, tmp_path, command=procfile_command("worker"))
    procs.append(replacement)
    wait_until(
        lambda: stored_count_sqlite(sqlite_url) >= len(acked),
        60,
        0.2,
        message=f"stored {stored_count_sqlite(sqlite_url)}/{len(acked)}\n{replacement.log()[-3000:]}",
    )
    assert_stored_once_via_api(web2_port, acked)


# The database away for 30 s: a throwaway PostgreSQL this test starts, stops and starts again.

PG_DIRS = ("/usr/local/bin", *sorted(str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")))


def pg_binary(name: str) -> str | None:
    """initdb / pg_ctl from PATH, /usr/local/bin or /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    for directory in PG_DIRS:
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    return None


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary directory on its own port (never the machine's server)."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = pg_binary("initdb"), pg_binary("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            pytest.skip("PostgreSQL's initdb/pg_ctl are not installed: the database-outage test did not run")
        self.root = Path(tempfile.mkdtemp(prefix="oh-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            runuser = shutil.which("runuser")
            if runuser is None:
                pytest.skip("running as root without runuser: cannot start a throwaway PostgreSQL")
            shutil.chown(self.root, "postgres", "postgres")
            self.as_user = [runuser, "-u", "postgres", "--"]

    def run(self, *command: str, timeout: float = 60) -> None:
        """A PostgreSQL tool as the cluster's owner."""
        subprocess.run([*self.as_user, *command], check=True, capture_output=True, timeout=timeout)

    def init(self) -> None:
        """initdb with trust auth for loopback."""
        self.run(self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        """Listen on 127.0.0.1:port only, its socket in its own directory."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self.run(self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "pg.log"), "-w", "start")

    def stop(self) -> None:
        """Fast shutdown: connections are cut."""
        self.run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        """Stop (if running) and remove the cluster."""
        try:
            self.run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=30)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def query(self, sql: str) -> list[tuple]:
        """Rows of one query."""
        with psycopg.connect(self.url, connect_timeout=5) as conn:
            return conn.execute(sql).fetchall()


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A started throwaway PostgreSQL, destroyed afterwards."""
    server = ThrowawayPostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.mark.e2e
def test_database_away_for_thirty_seconds(redis_client, redis_url, throwaway_postgres, tmp_path, procs):
    pg = throwaway_postgres
    env = make_env(redis_url, pg.url, tmp_path)
    worker = Process("worker", env, tmp_path)  # runs the migrations first
    procs.append(worker)
    wait_for_worker(worker)
    port = free_port()
    procs.append(start_web(env, tmp_path, port))
    base = f"http://127.0.0.1:{port}"
    assert requests.get(f"{base}/readyz", timeout=10).status_code == 200

    before = Stream(port, "P", rate=50, seconds=1).start()
    before.join()
    wait_until(lambda: pg.query("SELECT count(*) FROM events")[0][0] == 50, 30, 0.2, message=worker.log()[-3000:])

    pg.stop()
    outage_started = time.monotonic()
    outage = Stream(port, "Q", rate=20, seconds=28).start()
    readiness = []
    for _ in range(3):
        time.sleep(5)
        readiness.append(requests.get(f"{base}/readyz", timeout=15).status_code)
    outage.join()
    assert readiness == [503, 503, 503]
    assert "database unavailable" in worker.log(), "the worker did not back off and retry"
    time.sleep(max(0.0, 30.0 - (time.monotonic() - outage_started)))
    pg.start()

    acked = before.acked() + outage.acked()
    assert len(outage.acked()) == len(outage.answers) == 560, "postbacks must be acknowledged while the DB is away"
    wait_until(
        lambda: pg.query("SELECT count(*) FROM events")[0][0] >= len(acked),
        90,
        0.5,
        message=f"stored {pg.query('SELECT count(*) FROM events')[0][0]}/{len(acked)}\n{worker.log()[-3000:]}",
    )
    assert pg.query("SELECT count(*), count(DISTINCT order_id) FROM events") == [(len(acked), len(acked))]
    assert pg.query("SELECT max(event_count) FROM orders") == [(1,)]
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=10).status_code == 200, 30, 0.5)
    assert_stored_once_via_api(port, acked[::10])
