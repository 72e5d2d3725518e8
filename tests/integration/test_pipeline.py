"""Ingest -> Redis -> RQ drain -> database, on SQLite and PostgreSQL, with real Redis and RQ workers."""

from __future__ import annotations

import json
import random
import threading
import time

import sqlalchemy as sa

from app import create_app
from app.db import events, orders, raw_postbacks
from app.redis_keys import GROUP, STATS_KEY, STREAM
from tests.support.env import KITE_SECRET
from tests.support.helpers import load_fixture, run_pipeline, sign_kite

SEED = load_fixture("kite_postback_complete.json")


def kite(**changes) -> bytes:
    return json.dumps(sign_kite(dict(SEED, **changes), KITE_SECRET)).encode()


def test_postback_is_stored_with_raw_log_event_and_state(db_services, db_client, admin_headers):
    sent = kite(status="OPEN", filled_quantity=0, pending_quantity=1, average_price=0)
    assert db_client.post("/postbacks/kite", data=sent).status_code == 202
    run_pipeline(db_services)
    with db_services.engine.connect() as conn:
        assert conn.execute(sa.select(raw_postbacks.c.body)).scalar_one() == sent
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 1
        assert conn.execute(sa.select(orders.c.status)).scalar_one() == "OPEN"
    detail = db_client.get("/api/orders/kite/220303000308932", headers=admin_headers).get_json()
    assert detail["status"] == "OPEN" and detail["events"][0]["sequence"] == 1
    assert db_services.redis.xlen(STREAM) == 0


def test_out_of_order_updates_end_in_the_right_state(db_services, db_client, admin_headers):
    complete = kite(
        status="COMPLETE",
        quantity=10,
        filled_quantity=10,
        average_price=101.5,
        exchange_update_timestamp="2022-03-03 09:25:00",
    )
    partial = kite(
        status="UPDATE",
        quantity=10,
        filled_quantity=4,
        average_price=101.0,
        exchange_update_timestamp="2022-03-03 09:24:50",
    )
    opened = kite(
        status="OPEN", quantity=10, filled_quantity=0, average_price=0, exchange_update_timestamp="2022-03-03 09:24:30"
    )
    for sent in (complete, partial, opened, complete):
        db_client.post("/postbacks/kite", data=sent)
    run_pipeline(db_services)
    detail = db_client.get("/api/orders/kite/220303000308932", headers=admin_headers).get_json()
    assert detail["status"] == "FILLED"
    assert detail["filled_quantity"] == 10 and detail["average_price"] == 101.5
    assert [e["sequence"] for e in detail["events"]] == [1, 2, 3]
    assert [e["broker_status"] for e in detail["events"]] == ["COMPLETE", "UPDATE", "OPEN"]


def test_fifty_concurrent_copies_give_one_202_and_one_event(db_services, db_client):
    sent = kite()
    app = create_app(db_services.config, db_services)
    codes: list[int] = []
    barrier = threading.Barrier(50)

    def post() -> None:
        test_client = app.test_client()
        barrier.wait()
        codes.append(test_client.post("/postbacks/kite", data=sent).status_code)

    threads = [threading.Thread(target=post) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [200] * 49 + [202]
    run_pipeline(db_services)
    with db_services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 1


def test_a_replayed_batch_is_stored_once(db_services, db_client):
    """A drain that died after its commit but before XACK: the next drain re-reads the entry."""
    from workers import pipeline

    db_client.post("/postbacks/kite", data=kite())
    client = db_services.redis
    pipeline.ensure_group(client)
    entries = client.xreadgroup(GROUP, "a-worker-that-dies", {STREAM: ">"}, count=10)[0][1]
    from app.store import QueuedEvent, persist_batch

    persist_batch(db_services.engine, [QueuedEvent(json.loads(f[b"e"]), f[b"b"]) for _, f in entries])
    # ... the worker dies here: the entry is still pending in the group
    run_pipeline(db_services)
    with db_services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(raw_postbacks)).scalar_one() == 1
    assert client.xlen(STREAM) == 0


def test_updates_stored_in_separate_batches_build_on_the_stored_state(db_services, db_client, admin_headers):
    """Each update drained on its own: the state read back from the database must take the next one."""
    steps = [
        kite(
            status="OPEN",
            quantity=10,
            filled_quantity=0,
            average_price=0,
            exchange_update_timestamp="2022-03-03 09:24:30",
        ),
        kite(
            status="UPDATE",
            quantity=10,
            filled_quantity=4,
            average_price=470.0,
            exchange_update_timestamp="2022-03-03 09:24:40",
        ),
        kite(
            status="CANCELLED",
            quantity=10,
            filled_quantity=4,
            average_price=470.0,
            exchange_update_timestamp="2022-03-03 09:24:50",
        ),
    ]
    for sent in steps:
        assert db_client.post("/postbacks/kite", data=sent).status_code == 202
        run_pipeline(db_services)
    detail = db_client.get("/api/orders/kite/220303000308932", headers=admin_headers).get_json()
    assert (detail["status"], detail["filled_quantity"]) == ("CANCELLED", 4)
    assert [e["sequence"] for e in detail["events"]] == [1, 2, 3]
    assert db_services.redis.xlen("oh:ingest:dead") == 0


def test_the_body_is_stored_once_and_raw_is_rebuilt_from_it_without_the_checksum(db_services, db_client, admin_headers):
    sent = kite(status="OPEN", filled_quantity=0, pending_quantity=1, average_price=0)
    assert db_client.post("/postbacks/kite", data=sent).status_code == 202
    run_pipeline(db_services)
    with db_services.engine.connect() as conn:
        (data,) = conn.execute(sa.select(events.c.data)).one()
    assert "raw" not in data  # raw_postbacks.body is the one copy
    shown = db_client.get("/api/orders/kite/220303000308932", headers=admin_headers).get_json()["events"][0]
    expected = dict(json.loads(sent), checksum="")  # redacted: blanked (app/brokers redact_raw)
    assert shown["raw"] == expected
    assert db_services.redis.hget(STATS_KEY, "events_stored") == b"1"


def test_raw_view_parses_leniently_and_keeps_text_that_is_not_json():
    from app.rawlog import raw_view

    assert raw_view("dhan", b'{"legName": , "orderNo": "1"}') == {"legName": None, "orderNo": "1"}
    assert raw_view("kite", b'{"order_id": "1", "checksum": "abc"}') == {"order_id": "1", "checksum": ""}
    assert raw_view("kite", b'{"type": "order", "data": {"checksum": "abc", "x": 1}}') == {
        "type": "order",
        "data": {"checksum": "", "x": 1},
    }
    assert raw_view("flattrade", b"norenordno=1&status=OPEN") == "norenordno=1&status=OPEN"
    assert raw_view("dhan", b"") == ""


def test_a_stored_batch_carries_the_new_state_of_each_order_to_the_observer(db_services, db_client, monkeypatch):
    from app import observers

    seen = []
    monkeypatch.setattr(observers, "after_store", lambda services, batch: seen.append(batch))
    db_client.post("/postbacks/kite", data=kite(status="OPEN", filled_quantity=0, average_price=0))
    run_pipeline(db_services)
    assert len(seen) == 1
    state = seen[0].states[("kite", "220303000308932")]
    assert state["status"] == "OPEN" and state["event_count"] == 1
    assert not any(key.startswith("_") for key in state)


def test_parallel_workers_keep_each_orders_sequence_dense(db_services):
    """Several loops store batches of the same orders at once: sequence stays 1..n with no gap or repeat."""
    from app.events import OrderEvent
    from workers.pipeline import Pipeline, ensure_group

    client = db_services.redis
    ensure_group(client)
    ingestor = db_services.ingestor
    orders_n, updates_n = 6, 40
    for step in range(updates_n):
        for n in range(orders_n):
            event = OrderEvent(
                broker="kite",
                source="postback",
                order_id=f"PAR{n}",
                status="OPEN",
                broker_status="OPEN",
                received_at="2026-11-28T10:00:00Z",
                raw={"step": step},
                quantity=1000,
                filled_quantity=step,
                exchange_time=f"2026-11-28T10:{step // 60:02d}:{step % 60:02d}Z",
            )
            assert ingestor.submit(event, json.dumps({"step": step}).encode())
    loops = [Pipeline(db_services, consumer=f"par-{i}", claim_idle_ms=60_000) for i in range(3)]
    for loop in loops:
        loop.step = _small_batches(loop)
    _drain_in_parallel(loops, timeout=60)
    with db_services.engine.connect() as conn:
        rows = conn.execute(sa.select(events.c.order_id, events.c.sequence)).all()
        counts = dict(conn.execute(sa.select(orders.c.order_id, orders.c.event_count)).all())
    per_order: dict[str, list[int]] = {}
    for order_id, sequence in rows:
        per_order.setdefault(order_id, []).append(sequence)
    assert {k: sorted(v) for k, v in per_order.items()} == {
        f"PAR{n}": list(range(1, updates_n + 1)) for n in range(orders_n)
    }
    assert counts == {f"PAR{n}": updates_n for n in range(orders_n)}
    assert client.xlen(STREAM) == 0


def _drain_in_parallel(loops, *, timeout: float) -> None:
    """Each loop drains the stream in its own thread until it finds nothing; then all are closed, and any
    exception a loop raised fails the test."""
    errors: list[BaseException] = []

    def drain(loop) -> None:
        try:
            while loop.step(50):
                pass
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(loop,)) for loop in loops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    for loop in loops:
        loop.close()
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads), f"a loop was still draining after {timeout} s"


def _small_batches(loop, count: int = 7):
    """The loop's step reading `count` entries at a time, so the workers interleave on the same orders."""
    from workers import pipeline

    def step(block_ms):
        reply = loop.client.xreadgroup(GROUP, loop.consumer, {STREAM: ">"}, count=count, block=block_ms)
        entries = reply[0][1] if reply else []
        return loop.store_and_forward(entries) if entries else 0

    assert pipeline.GROUP == GROUP
    return step


def test_parallel_loops_number_each_orders_events_in_arrival_order(db_services, monkeypatch):
    """Three loops race on many interleaved orders, their commits shuffled: `sequence` is arrival order.

    Arrival is the ingest stream's entry id (docs/pipeline.md); for every order the events sorted by
    sequence must be 1, 2, 3 ... in that order, redeliveries taking no number, and the order's state
    folded in it (created_at is the first arrival's receipt, updated_at the last's).
    """
    from app.events import OrderEvent
    from workers import pipeline
    from workers.pipeline import Pipeline, ensure_group

    client = db_services.redis
    ensure_group(client)
    rng = random.Random(20261128)
    orders_n, updates_n = 40, 12
    left = {n: updates_n for n in range(orders_n)}
    received: dict[str, str] = {}
    for index in range(orders_n * updates_n):
        n = rng.choice(sorted(o for o, k in left.items() if k))
        step = updates_n - left[n]
        left[n] -= 1
        event = OrderEvent(
            broker="kite",
            source="postback",
            order_id=f"ARR{n}",
            status="OPEN",
            broker_status="OPEN",
            received_at=f"2026-11-28T10:{index // 60:02d}:{index % 60:02d}.000000Z",
            raw={"step": step},
            quantity=1000,
            filled_quantity=step,
            exchange_time=f"2026-11-28T09:{step:02d}:00Z",
        )
        assert db_services.ingestor.submit(event, json.dumps({"step": step}).encode())
        received[event.id] = event.received_at
        if rng.random() < 0.2:  # a redelivery: a duplicate never reaches the stream, so takes no number
            assert not db_services.ingestor.submit(event, json.dumps({"step": step}).encode())
    arrival = {json.loads(fields[b"e"])["id"]: position for position, (_, fields) in enumerate(client.xrange(STREAM))}
    real_persist = pipeline.persist_batch

    def shuffled_commit(*args, **kwargs):
        """A loop that read first may commit last, as under load on a busy machine."""
        time.sleep(rng.uniform(0, 0.012))
        return real_persist(*args, **kwargs)

    monkeypatch.setattr(pipeline, "persist_batch", shuffled_commit)
    loops = [Pipeline(db_services, consumer=f"arr-{i}", claim_idle_ms=60_000) for i in range(3)]
    for loop in loops:
        loop.step = _small_batches(loop, count=5)
    _drain_in_parallel(loops, timeout=120)
    with db_services.engine.connect() as conn:
        rows = conn.execute(sa.select(events.c.order_id, events.c.sequence, events.c.id).order_by(events.c.sequence))
        states = {row.order_id: row.data for row in conn.execute(sa.select(orders.c.order_id, orders.c.data))}
        per_order: dict[str, list[tuple[int, str]]] = {}
        for order_id, sequence, event_id in rows:
            per_order.setdefault(order_id, []).append((sequence, event_id))
    assert sorted(per_order) == sorted(f"ARR{n}" for n in range(orders_n))
    misnumbered, misfolded = {}, []
    for order_id, numbered in per_order.items():
        assert [sequence for sequence, _ in numbered] == list(range(1, updates_n + 1)), order_id
        by_arrival = sorted((event_id for _, event_id in numbered), key=arrival.__getitem__)
        if [event_id for _, event_id in numbered] != by_arrival:
            misnumbered[order_id] = [arrival[event_id] for _, event_id in numbered]
        state = states[order_id]
        if (state["created_at"], state["updated_at"]) != (received[by_arrival[0]], received[by_arrival[-1]]):
            misfolded.append(order_id)
    assert not misnumbered, f"{len(misnumbered)} orders numbered out of arrival order: {misnumbered}"
    assert not misfolded, f"{len(misfolded)} order states not folded in arrival order: {misfolded}"
    assert client.xlen(STREAM) == 0


def _queue_orders(services, prefix: str, n: int) -> list[str]:
    """n single-update orders on the ingest stream; their event ids."""
    from app.events import OrderEvent

    ids = []
    for i in range(n):
        event = OrderEvent(
            broker="kite",
            source="postback",
            order_id=f"{prefix}{i}",
            status="OPEN",
            broker_status="OPEN",
            received_at="2026-11-28T10:00:00Z",
            raw={"i": i},
        )
        assert services.ingestor.submit(event, b"{}")
        ids.append(event.id)
    return ids


def _stored(services) -> int:
    with services.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()


def test_a_live_consumer_keeps_its_entries_and_a_dead_ones_are_taken_over_at_once(db_services):
    """Liveness, not idle time: entries of a consumer whose key is alive stay its own however long they
    wait; once its key is gone another loop stores them at its next look, each once (two loops race)."""
    from app.redis_keys import alive_key
    from workers.liveness import TAKEOVER_MIN_IDLE_MS, Liveness
    from workers.pipeline import Pipeline, ensure_group

    client = db_services.redis
    ensure_group(client)
    _queue_orders(db_services, "HELD", 6)
    slow = Liveness(client, "slow-but-alive", 3000)
    slow.refresh()
    assert len(client.xreadgroup(GROUP, "slow-but-alive", {STREAM: ">"}, count=10)[0][1]) == 6
    time.sleep(TAKEOVER_MIN_IDLE_MS / 1000 + 0.3)
    watcher = Pipeline(db_services, consumer="watcher", claim_idle_ms=60_000)
    loops = [watcher] + [Pipeline(db_services, consumer=f"racer-{i}", claim_idle_ms=60_000) for i in range(2)]
    try:
        assert watcher.step(None) == 0  # a first step looks for dead holders: there is none
        assert _stored(db_services) == 0
        assert client.xpending(STREAM, GROUP)["pending"] == 6
        client.delete(alive_key("slow-but-alive"))  # its worker was killed: the key lapsed
        stored: list[int] = []
        racers = loops[1:]  # first steps: both look for dead holders at once
        threads = [threading.Thread(target=lambda loop=loop: stored.append(loop.step(None))) for loop in racers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sum(stored) == 6 and _stored(db_services) == 6
        assert client.xpending(STREAM, GROUP)["pending"] == 0
    finally:
        for loop in loops:
            loop.close()


def test_a_restart_that_reuses_the_consumer_name_stores_what_it_held_at_once(db_services):
    """A worker restarted with the same `<host>-<pid>` (a container's pids repeat): its own pending entries
    are not handed out by `>` again, so the new loop reads its own history first."""
    from workers.pipeline import Pipeline, ensure_group

    client = db_services.redis
    ensure_group(client)
    _queue_orders(db_services, "MINE", 3)
    assert len(client.xreadgroup(GROUP, "host-1", {STREAM: ">"}, count=10)[0][1]) == 3  # ... then killed
    loop = Pipeline(db_services, consumer="host-1", claim_idle_ms=60_000)
    try:
        assert loop.step(None) == 3
    finally:
        loop.close()
    assert client.xpending(STREAM, GROUP)["pending"] == 0 and _stored(db_services) == 3
