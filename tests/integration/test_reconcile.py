"""Reconciliation against fake broker REST servers, in-process: adapter -> ingestor -> real persist job."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from app import create_app
from app import state as state_machine
from app.brokers import rest as client_base
from app.config import load_config
from app.db import events as events_table
from app.db import orders
from app.reconcile.engine import reconcile_broker
from app.reconcile.status import read_status, read_unconfirmed
from app.redis_keys import reconcile_lock_key, reconcile_request_key, reconcile_status_key
from app.services import Services, set_services
from app.times import utc_iso
from tests.support.env import ADMIN_TOKEN, KITE_SECRET, make_env
from tests.support.fakes.rest import (
    FakeDhanRest,
    FakeKiteRest,
    FakeNorenRest,
    dhan_order,
    kite_lifecycle,
    kite_order,
    noren_order,
)
from tests.support.helpers import run_pipeline, sign_kite
from tests.support.procs import wait_until
from workers import reconcile as job

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CREDS = {
    "KITE_API_KEY": "kitekey",
    "KITE_ACCESS_TOKEN": "kitetoken",
    "DHAN_CLIENT_ID": "1000000003",
    "DHAN_ACCESS_TOKEN": "dhan.jwt.token",
    "NOREN_USER_ID": "FT0001",
    "NOREN_TOKEN": "noren-session-token",
}


@pytest.fixture
def fakes():
    started = {
        "kite": FakeKiteRest("kitekey", "kitetoken").start(),
        "dhan": FakeDhanRest("1000000003", "dhan.jwt.token").start(),
        "flattrade": FakeNorenRest("FT0001", "noren-session-token").start(),
    }
    yield started
    for fake in started.values():
        fake.close()


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(client_base, "BACKOFF_FACTOR", 0.01)
    monkeypatch.setattr(client_base, "BACKOFF_JITTER", 0.0)


def build(redis_url, sqlite_url, tmp_path, fakes, **extra) -> Services:
    env = make_env(
        redis_url,
        sqlite_url,
        tmp_path,
        KITE_API_URL=fakes["kite"].url,
        DHAN_API_URL=fakes["dhan"].url,
        NOREN_API_URL=fakes["flattrade"].url,
        **{**CREDS, **extra},
    )
    services = Services.build(load_config(env))
    set_services(services)
    return services


@pytest.fixture
def svc(redis_client, redis_url, sqlite_url, tmp_path, fakes):
    services = build(redis_url, sqlite_url, tmp_path, fakes)
    yield services
    set_services(None)
    services.engine.dispose()


@pytest.fixture
def web(svc):
    return create_app(svc.config, svc).test_client()


def state(services: Services, broker: str, order_id: str) -> dict | None:
    with services.engine.connect() as conn:
        row = conn.execute(
            sa.select(orders.c.data).where(orders.c.broker == broker, orders.c.order_id == order_id)
        ).first()
    return dict(row.data) if row else None


def stored_events(services: Services, broker: str, order_id: str) -> list[dict]:
    with services.engine.connect() as conn:
        rows = conn.execute(
            sa.select(events_table.c.data)
            .where(events_table.c.broker == broker, events_table.c.order_id == order_id)
            .order_by(events_table.c.sequence)
        )
        return [dict(r.data) for r in rows]


def reconcile(services: Services, broker: str):
    result = reconcile_broker(services, broker, reason="test")
    run_pipeline(services)
    return result


def post_kite(web, row: dict, **changes):
    payload = dict(row, user_id=row["account_id"], **changes)
    payload.pop("account_id")
    return web.post("/postbacks/kite", data=json.dumps(sign_kite(payload, KITE_SECRET)))


def is_subsequence(short: list, long: list) -> bool:
    it = iter(long)
    return all(item in it for item in short)


def test_a_missed_order_appears_with_its_history_in_time_order(svc, fakes):
    rows = kite_lifecycle("251128000000101")
    fakes["kite"].add("251128000000101", rows)
    result = reconcile(svc, "kite")
    assert result.error is None and result.orders_seen == 1 and result.updates_found >= 3
    got = state(svc, "kite", "251128000000101")
    assert got["status"] == "FILLED" and got["confirmed"] is True and got["account_id"] == "AB1234"
    stored = stored_events(svc, "kite", "251128000000101")
    assert all(e["source"] == "reconcile" for e in stored)
    assert is_subsequence([e["broker_status"] for e in stored], [r["status"] for r in rows])
    assert stored[-1]["status"] == "FILLED"

    again = reconcile(svc, "kite")
    assert again.updates_found == 0 and again.confirmations == 0
    assert len(stored_events(svc, "kite", "251128000000101")) == len(stored)
    assert fakes["kite"].requests[-1]["path"] == "/orders"  # nothing differs: no history read


def test_an_order_held_open_that_filled_becomes_filled(svc, fakes, web):
    rows = kite_lifecycle("251128000000102")
    fakes["kite"].add("251128000000102", rows)
    assert post_kite(web, rows[3]).status_code == 202  # the OPEN postback arrived; the COMPLETE one was lost
    run_pipeline(svc)
    assert state(svc, "kite", "251128000000102")["status"] == "OPEN"
    result = reconcile(svc, "kite")
    assert result.updates_found >= 1
    got = state(svc, "kite", "251128000000102")
    assert (got["status"], got["filled_quantity"], got["confirmed"]) == ("FILLED", 10, True)


def test_a_stale_book_entry_never_regresses_a_state(svc, fakes, web):
    rows = kite_lifecycle("251128000000103")
    fakes["kite"].add("251128000000103", rows[:4])  # the broker's book lags: still OPEN
    event = svc.adapters["kite"].event_from_payload(
        dict(rows[4], user_id="AB1234"), source="websocket", received_at=utc_iso(datetime.now(UTC))
    )
    svc.ingestor.submit(event, b"{}")
    run_pipeline(svc)
    result = reconcile(svc, "kite")
    assert result.updates_found == 0
    assert state(svc, "kite", "251128000000103")["status"] == "FILLED"


def test_a_genuine_postback_terminal_is_confirmed_once(svc, fakes, web):
    rows = kite_lifecycle("251128000000104")
    fakes["kite"].add("251128000000104", rows)
    assert post_kite(web, rows[-1]).status_code == 202
    run_pipeline(svc)
    shown = state(svc, "kite", "251128000000104")
    assert (shown["status"], shown["confirmed"]) == ("FILLED", False)
    assert shown["unconfirmed"]["broker_status"] == "COMPLETE"
    body = web.get("/api/orders/kite/251128000000104", headers=AUTH).get_json()
    assert body["confirmed"] is False and not [k for k in body if k.startswith("_")]

    result = reconcile(svc, "kite")
    assert result.confirmations == 1
    shown = state(svc, "kite", "251128000000104")
    assert (shown["status"], shown["confirmed"]) == ("FILLED", True) and "unconfirmed" not in shown
    assert reconcile(svc, "kite").confirmations == 0


def test_a_forged_cancel_is_overruled_by_the_broker(svc, fakes, web):
    """A genuine postback's raw with status changed to CANCELLED passes the checksum."""
    rows = kite_lifecycle("251128000000105")
    fakes["kite"].add("251128000000105", rows)
    assert post_kite(web, rows[-1], status="CANCELLED").status_code == 202  # forged
    run_pipeline(svc)
    assert (state(svc, "kite", "251128000000105")["status"], state(svc, "kite", "251128000000105")["confirmed"]) == (
        "CANCELLED",
        False,
    )
    assert post_kite(web, rows[-1]).status_code == 202  # the genuine COMPLETE that followed
    run_pipeline(svc)
    assert state(svc, "kite", "251128000000105")["status"] == "FILLED"  # latest claim shows; not final yet
    reconcile(svc, "kite")
    shown = state(svc, "kite", "251128000000105")
    assert (shown["status"], shown["confirmed"], shown["filled_quantity"]) == ("FILLED", True, 10)
    assert (
        post_kite(web, rows[-1], status="CANCELLED", exchange_update_timestamp="2026-11-28 09:16:00").status_code == 202
    )
    run_pipeline(svc)
    assert state(svc, "kite", "251128000000105")["status"] == "FILLED"  # final now: a forgery cannot move it


def test_a_forged_cancel_of_a_working_order_is_refuted(svc, fakes, web):
    rows = kite_lifecycle("251128000000106")
    fakes["kite"].add("251128000000106", rows[:4])  # the order is OPEN at the broker
    assert post_kite(web, rows[3]).status_code == 202
    forged = dict(rows[3], user_id="AB1234", status="CANCELLED")
    earlier = utc_iso(datetime.now(UTC) - timedelta(seconds=30))
    event = svc.adapters["kite"].event_from_payload(forged, source="postback", received_at=earlier)
    svc.ingestor.submit(event, b"{}")
    run_pipeline(svc)
    assert state(svc, "kite", "251128000000106")["status"] == "CANCELLED"
    assert reconcile(svc, "kite").error is None
    shown = state(svc, "kite", "251128000000106")
    assert (shown["status"], shown["confirmed"]) == ("OPEN", True)
    again = reconcile(svc, "kite")
    assert (again.confirmations, again.updates_found) == (0, 0)


def test_a_forged_cancel_is_refuted_even_when_every_row_is_known(svc, fakes, web):
    rows = kite_lifecycle("251128000000111")
    fakes["kite"].add("251128000000111", rows[3:4])  # the broker shows one row, OPEN, which we already have
    assert post_kite(web, rows[3]).status_code == 202
    forged = dict(rows[3], user_id="AB1234", status="CANCELLED")
    earlier = utc_iso(datetime.now(UTC) - timedelta(seconds=30))
    svc.ingestor.submit(svc.adapters["kite"].event_from_payload(forged, source="postback", received_at=earlier), b"{}")
    run_pipeline(svc)
    result = reconcile(svc, "kite")
    assert (result.updates_found, result.confirmations) == (0, 1)  # a refutation under its own key
    shown = state(svc, "kite", "251128000000111")
    assert (shown["status"], shown["confirmed"]) == ("OPEN", True)


def test_an_expired_token_is_recorded_plainly_and_the_claim_stays_flagged(svc, fakes, web):
    rows = kite_lifecycle("251128000000107")
    fakes["kite"].add("251128000000107", rows)
    fakes["kite"].expired = True
    post_kite(web, rows[-1], status="CANCELLED")
    run_pipeline(svc)
    result = reconcile(svc, "kite")
    assert result.error == "Kite access token expired or invalid: refresh KITE_ACCESS_TOKEN"
    assert state(svc, "kite", "251128000000107")["confirmed"] is False
    status = read_status(svc.redis, "kite")
    assert status["last_error"] == result.error and status["errors"] == 1 and status["runs"] == 1
    listed = web.get("/api/reconcile", headers=AUTH).get_json()["brokers"]
    kite = next(b for b in listed if b["broker"] == "kite")
    assert kite["last_error"] == result.error
    assert kite["unconfirmed_orders"][0]["order_id"] == "251128000000107"
    assert "kitetoken" not in json.dumps(listed)

    fakes["kite"].expired = False
    assert reconcile(svc, "kite").error is None
    assert state(svc, "kite", "251128000000107")["status"] == "FILLED"
    kite = next(b for b in web.get("/api/reconcile", headers=AUTH).get_json()["brokers"] if b["broker"] == "kite")
    assert kite["last_error"] is None and kite["unconfirmed_orders"] == []


def test_noren_history_newest_first_is_stored_oldest_first(svc, fakes):
    rows = [
        noren_order("24112800000201", "PENDING", at="10:30:00 28-11-2026", report="NewAck"),
        noren_order("24112800000201", "OPEN", at="10:30:01 28-11-2026", report="New"),
        noren_order("24112800000201", "OPEN", filled=20, average="1400.00", at="10:30:05 28-11-2026", report="Fill"),
        noren_order(
            "24112800000201", "COMPLETE", filled=50, average="1400.10", at="10:31:00 28-11-2026", report="Fill"
        ),
    ]
    fakes["flattrade"].add("24112800000201", rows)
    result = reconcile(svc, "flattrade")
    assert result.error is None
    stored = stored_events(svc, "flattrade", "24112800000201")
    assert [e["status"] for e in stored] == ["PENDING", "OPEN", "PARTIALLY_FILLED", "FILLED"]
    assert state(svc, "flattrade", "24112800000201")["filled_quantity"] == 50
    form = fakes["flattrade"].requests[-1]["body"].decode()
    assert "jKey=noren-session-token" in form


def test_dhan_order_filled_since_is_caught_up_and_an_empty_book_is_fine(svc, fakes):
    assert reconcile(svc, "dhan").orders_seen == 0
    fakes["dhan"].add("112111182301", [dhan_order("112111182301", "PENDING")])
    reconcile(svc, "dhan")
    assert state(svc, "dhan", "112111182301")["status"] == "OPEN"
    fakes["dhan"].append(
        "112111182301", dhan_order("112111182301", "TRADED", filled=5, average=3400.5, at="2026-11-28 10:05:00")
    )
    result = reconcile(svc, "dhan")
    assert result.updates_found == 1
    got = state(svc, "dhan", "112111182301")
    assert (got["status"], got["filled_quantity"], got["average_price"]) == ("FILLED", 5, 3400.5)
    assert all("access-token" in r["headers"] for r in fakes["dhan"].requests)


def test_a_flaky_broker_is_retried_within_the_run(svc, fakes):
    fakes["kite"].add("251128000000108", kite_lifecycle("251128000000108"))
    fakes["kite"].fail_next = [503, 429]
    assert reconcile(svc, "kite").error is None
    assert state(svc, "kite", "251128000000108")["status"] == "FILLED"


def test_a_broker_that_stays_down_is_an_error_not_an_exception(svc, fakes):
    fakes["dhan"].fail_next = [503] * 20
    result = reconcile(svc, "dhan")
    assert result.error and "503" in result.error
    assert read_status(svc.redis, "dhan")["last_error"] == result.error


def test_api_requests_runs_and_refuses_plainly(svc, web, redis_url, sqlite_url, tmp_path, fakes):
    assert web.post("/api/reconcile").status_code == 401
    answer = web.post("/api/reconcile?broker=kite", headers=AUTH)
    assert answer.status_code == 202 and answer.get_json()["requested"] == ["kite"]
    assert svc.redis.get(reconcile_request_key("kite")) is not None
    everything = web.post("/api/reconcile", headers=AUTH)
    assert everything.status_code == 202 and everything.get_json()["requested"] == ["kite", "dhan", "flattrade"]
    assert web.post("/api/reconcile?broker=nope", headers=AUTH).status_code == 400
    listed = web.get("/api/reconcile", headers=AUTH).get_json()
    assert {"kite", "dhan", "flattrade"} <= {b["broker"] for b in listed["brokers"]}  # every broker with a client
    assert all(b["runs"] == 0 and b["last_error"] is None for b in listed["brokers"])
    reconcile_broker(svc, "kite", reason="test")
    assert svc.redis.hget(reconcile_status_key("kite"), "runs") == b"1"


def test_without_credentials_nothing_is_reconciled_and_terminals_stay_sticky(
    redis_client, redis_url, sqlite_url, tmp_path, fakes
):
    env = make_env(redis_url, sqlite_url, tmp_path)
    services = Services.build(load_config(env))
    set_services(services)
    try:
        web = create_app(services.config, services).test_client()
        assert web.post("/api/reconcile?broker=kite", headers=AUTH).status_code == 409
        assert web.post("/api/reconcile", headers=AUTH).status_code == 409
        rows = kite_lifecycle("251128000000109")
        post_kite(web, rows[-1], status="CANCELLED")
        post_kite(web, rows[-1])
        run_pipeline(services)
        shown = state(services, "kite", "251128000000109")
        assert (shown["status"], shown["confirmed"]) == ("CANCELLED", True)  # today's behaviour: sticky
        assert reconcile_broker(services, "kite", reason="test").error.startswith("kite has no REST credentials")
    finally:
        set_services(None)
        services.engine.dispose()


def test_kite_account_id_rows_and_order_dicts(svc, fakes):
    fakes["kite"].add("251128000000110", [kite_order("251128000000110", "REJECTED", message="RMS: margin exceeds")])
    reconcile(svc, "kite")
    got = state(svc, "kite", "251128000000110")
    assert (got["status"], got["reason"], got["account_id"]) == ("REJECTED", "RMS: margin exceeds", "AB1234")


def test_missed_order_and_forged_cancel_on_both_databases(redis_client, redis_url, database_url, tmp_path, fakes):
    services = build(redis_url, database_url, tmp_path, fakes)
    try:
        web = create_app(services.config, services).test_client()
        rows = kite_lifecycle("251128000000120")
        fakes["kite"].add("251128000000120", rows)
        fakes["kite"].add("251128000000121", kite_lifecycle("251128000000121", end="REJECTED"))
        post_kite(web, rows[-1], status="CANCELLED")
        run_pipeline(services)
        assert state(services, "kite", "251128000000120")["confirmed"] is False
        result = reconcile(services, "kite")
        assert result.error is None and result.orders_seen == 2
        assert state(services, "kite", "251128000000121")["status"] == "REJECTED"
        shown = state(services, "kite", "251128000000120")
        assert (shown["status"], shown["confirmed"]) == ("FILLED", True)
    finally:
        set_services(None)
        services.engine.dispose()


def test_scheduler_serves_requests_interval_and_claims(svc, fakes, web, monkeypatch):
    from app.reconcile import request_reconcile
    from workers import reconcile as job

    scheduler = job.Scheduler(svc)
    assert scheduler.brokers == ("kite", "dhan", "flattrade") and scheduler.interval == 300
    now = time.monotonic()
    assert scheduler.due("kite", now) is None
    request_reconcile(svc.redis, "kite", "feed reconnected")
    assert scheduler.due("kite", now) == "feed reconnected"
    assert svc.redis.get(reconcile_request_key("kite")) is None
    assert scheduler.due("kite", now + 301) == "periodic"

    rows = kite_lifecycle("251128000000130")
    fakes["kite"].add("251128000000130", rows)
    post_kite(web, rows[-1])
    run_pipeline(svc)
    scheduler.scan_claims()
    assert "kite" in scheduler.due_claims and "dhan" not in scheduler.due_claims
    assert scheduler.due("kite", scheduler.due_claims["kite"] + 0.1) == "confirm postback"

    svc.redis.set(reconcile_lock_key("kite"), "someone-else", px=5000)
    assert job.run_reconcile("kite", "again", svc) is None  # another process runs it: the request is kept
    assert svc.redis.get(reconcile_request_key("kite")) == b"again"
    svc.redis.delete(reconcile_lock_key("kite"))
    result = job.run_reconcile("kite", "again", svc)
    assert result is not None and result.confirmations == 1
    assert svc.redis.get(reconcile_lock_key("kite")) is None


def test_interval_setting(redis_client, redis_url, sqlite_url, tmp_path, fakes):
    from workers.reconcile import Scheduler

    for raw, expected in (("0", 0.0), ("45", 45.0), ("", 300.0), ("soon", 300.0)):
        services = build(redis_url, sqlite_url, tmp_path, fakes, RECONCILE_INTERVAL_SECONDS=raw)
        try:
            assert Scheduler(services).interval == expected
        finally:
            set_services(None)
            services.engine.dispose()


def forge_cancel(svc: Services, row: dict, seconds_ago: float) -> None:
    """A forged CANCELLED of a working order, received `seconds_ago` (a claim: Kite has REST credentials)."""
    forged = dict(row, user_id="AB1234", status="CANCELLED")
    forged.pop("account_id")
    earlier = utc_iso(datetime.now(UTC) - timedelta(seconds=seconds_ago))
    svc.ingestor.submit(svc.adapters["kite"].event_from_payload(forged, source="postback", received_at=earlier), b"{}")
    run_pipeline(svc)


def test_repeated_runs_over_an_unconfirmed_claim_store_one_event(svc, fakes, web, monkeypatch):
    """A broker read that refutes nothing (the claim is still within its grace) is not stored: the same book row
    is stored once, by the read that settles the claim."""
    order_id = "251128000000140"
    rows = kite_lifecycle(order_id)
    fakes["kite"].add(order_id, rows[3:4])  # the broker shows the order OPEN, which we already have
    assert post_kite(web, rows[3]).status_code == 202
    run_pipeline(svc)
    forge_cancel(svc, rows[3], seconds_ago=30)
    stored = len(stored_events(svc, "kite", order_id))
    monkeypatch.setattr(state_machine, "CLAIM_GRACE_SECONDS", 3600.0)  # every read falls within the claim's grace
    for _ in range(3):
        result = reconcile(svc, "kite")
        assert (result.error, result.updates_found, result.confirmations) == (None, 0, 0)
    assert len(stored_events(svc, "kite", order_id)) == stored
    assert state(svc, "kite", order_id)["confirmed"] is False
    assert [item["order_id"] for item in read_unconfirmed(svc.redis, "kite")] == [order_id]

    monkeypatch.setattr(state_machine, "CLAIM_GRACE_SECONDS", 5.0)  # the claim is now older than its grace
    confirmations = [reconcile(svc, "kite").confirmations for _ in range(3)]
    assert confirmations == [1, 0, 0]
    assert len(stored_events(svc, "kite", order_id)) == stored + 1
    shown = state(svc, "kite", order_id)
    assert (shown["status"], shown["confirmed"]) == ("OPEN", True)
    assert read_unconfirmed(svc.redis, "kite") == []


def test_a_missed_price_change_is_recovered(svc, fakes, web):
    """Status and fill unchanged, the price modified at the broker: the book row differs, the history is read."""
    order_id = "251128000000150"
    opened = kite_order(order_id, "OPEN", at="2026-11-28 09:15:00")
    assert post_kite(web, opened).status_code == 202
    run_pipeline(svc)
    modified = dict(kite_order(order_id, "MODIFIED", at="2026-11-28 09:20:00"), price=1490.0, trigger_price=0)
    reopened = dict(kite_order(order_id, "OPEN", at="2026-11-28 09:20:01"), price=1490.0)
    fakes["kite"].add(order_id, [opened, modified, reopened])  # the modification's postbacks were lost
    result = reconcile(svc, "kite")
    assert result.error is None and result.updates_found == 2
    got = state(svc, "kite", order_id)
    assert (got["status"], got["price"]) == ("OPEN", 1490.0)
    again = reconcile(svc, "kite")
    assert again.updates_found == 0 and fakes["kite"].requests[-1]["path"] == "/orders"  # settled: no history read


def test_a_missed_quantity_and_trigger_change_is_recovered_from_the_dhan_book(svc, fakes):
    order_id = "112111182310"
    fakes["dhan"].add(order_id, [dhan_order(order_id, "PENDING")])
    reconcile(svc, "dhan")
    assert state(svc, "dhan", order_id)["quantity"] == 5
    fakes["dhan"].append(
        order_id, dict(dhan_order(order_id, "PENDING", quantity=8, at="2026-11-28 10:02:00"), triggerPrice=3380.0)
    )
    assert reconcile(svc, "dhan").updates_found == 1
    got = state(svc, "dhan", order_id)
    assert (got["quantity"], got["trigger_price"], got["pending_quantity"]) == (8, 3380.0, 8)
    requests_before = len(fakes["dhan"].requests)
    assert reconcile(svc, "dhan").updates_found == 0
    assert len(fakes["dhan"].requests) == requests_before + 1  # the book only


@pytest.mark.parametrize("first_open_shares_the_time", [False, True])
def test_a_modification_sharing_one_exchange_time_keeps_the_new_price(svc, fakes, first_open_shares_the_time):
    """Kite history MODIFY PENDING -> MODIFIED -> OPEN at the new price, one exchange timestamp for the last rows
    (docs/brokers.md §3.4): the latest row of the history, in its documented order, gives the order's values."""
    ids = [f"2511280000002{n:02d}" for n in range(8)]  # several ids: a tie broken by anything but order shows
    first_at = "2026-11-28 09:20:00" if first_open_shares_the_time else "2026-11-28 09:15:00"
    for order_id in ids:
        rows = [kite_order(order_id, "OPEN", at=first_at)]
        rows += [
            dict(kite_order(order_id, word, at="2026-11-28 09:20:00"), price=price)
            for word, price in (("MODIFY PENDING", 1500.5), ("MODIFIED", 1490.0), ("OPEN", 1490.0))
        ]
        fakes["kite"].add(order_id, rows)
    assert reconcile(svc, "kite").error is None
    for order_id in ids:
        got = state(svc, "kite", order_id)
        assert (got["status"], got["price"]) == ("OPEN", 1490.0), order_id
        assert [e["broker_status"] for e in stored_events(svc, "kite", order_id)][-1] == "OPEN"


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_dripping_broker_ends_the_run_by_its_deadline_and_keeps_the_lease(
    redis_client, redis_url, sqlite_url, tmp_path, fakes, monkeypatch, where
):
    """One byte every 2 s keeps every socket read alive: only a whole-answer deadline ends it. The lease (6 s
    here) outlives the run, so no second run starts meanwhile, and the request that came in is served after."""
    monkeypatch.setattr(job, "LOCK_SECONDS", 6.0)
    services = build(redis_url, sqlite_url, tmp_path, fakes, RECONCILE_ANSWER_SECONDS="3")
    try:
        kite = fakes["kite"]
        kite.add("251128000000170", kite_lifecycle("251128000000170"))
        kite.drip = (where, 2.0)
        outcome: dict = {}
        first = threading.Thread(target=lambda: outcome.update(first=job.run_reconcile("kite", "first", services)))
        first.start()
        wait_until(lambda: kite.requests, 30, message="the run never asked the broker")
        while first.is_alive():
            assert job.run_reconcile("kite", "second", services) is None  # the lease holds: no second run
            first.join(0.5)
        result = outcome["first"]
        assert result.error == (
            "Kite REST did not answer within 3 s (RECONCILE_ANSWER_SECONDS); will retry at the next run"
        )
        assert services.redis.get(reconcile_lock_key("kite")) is None  # released, not lapsed
        assert services.redis.get(reconcile_request_key("kite")) == b"second"  # kept for after the run

        kite.drip = None
        scheduler = job.Scheduler(services)
        reason = scheduler.due("kite", time.monotonic())
        assert reason == "second"
        scheduler.launch("kite", reason)
        scheduler.threads["kite"].join(60)
        status = read_status(services.redis, "kite")
        assert (status["runs"], status["reason"], status["last_error"]) == (2, "second", None)
        run_pipeline(services)
        assert state(services, "kite", "251128000000170")["status"] == "FILLED"
    finally:
        set_services(None)
        services.engine.dispose()


def test_a_retry_after_past_the_answer_deadline_is_not_waited(svc, fakes):
    """A broker's Retry-After is honoured only within RECONCILE_ANSWER_SECONDS: an hour is not slept."""
    fakes["kite"].fail_next = [429] * 5
    fakes["kite"].retry_after = "3600"
    result = reconcile(svc, "kite")
    assert result.error == "Kite REST did not answer within 30 s (RECONCILE_ANSWER_SECONDS); will retry at the next run"
    assert len(fakes["kite"].requests) == 1


def test_a_run_stops_at_its_deadline(redis_client, redis_url, sqlite_url, tmp_path, fakes):
    services = build(redis_url, sqlite_url, tmp_path, fakes, RECONCILE_RUN_SECONDS="2.5")
    try:
        kite = fakes["kite"]
        for n in range(10):
            kite.add(f"2511280000003{n:02d}", kite_lifecycle(f"2511280000003{n:02d}"))
        kite.history_delay = 1.0  # each history answers in 1 s: 10 would take 10 s
        result = reconcile(services, "kite")
        assert result.error and "RECONCILE_RUN_SECONDS" in result.error
        histories = [r for r in kite.requests if r["path"] != "/orders"]
        assert 1 <= len(histories) < 10
        assert read_status(services.redis, "kite")["last_error"] == result.error
    finally:
        set_services(None)
        services.engine.dispose()


def test_a_huge_book_is_refused_plainly_without_being_read_whole(svc, fakes):
    kite = fakes["kite"]
    kite.add("251128000000180", kite_lifecycle("251128000000180"))
    kite.huge_rows = 100_000  # 84 MB of JSON, streamed without a length
    result = reconcile(svc, "kite")
    assert result.error == "Kite REST answered more than RECONCILE_MAX_ANSWER_BYTES (33554432 bytes); not reconciled"
    assert kite.bytes_sent < 48 * 1024 * 1024  # the client stopped reading near its 32 MiB cap
    assert state(svc, "kite", "251128000000180") is None


def test_a_book_with_too_many_rows_is_refused_plainly(redis_client, redis_url, sqlite_url, tmp_path, fakes):
    services = build(redis_url, sqlite_url, tmp_path, fakes, RECONCILE_MAX_ROWS="50")
    try:
        fakes["dhan"].add("112111182320", [dhan_order("112111182320", "PENDING")])
        fakes["dhan"].huge_rows = 51
        result = reconcile(services, "dhan")
        assert result.error == "Dhan REST answered 51 rows, more than RECONCILE_MAX_ROWS (50); not reconciled"
        fakes["dhan"].huge_rows = 50
        assert reconcile(services, "dhan").error is None
    finally:
        set_services(None)
        services.engine.dispose()


def test_traversal_shaped_order_ids_never_leave_the_order_route(svc, fakes):
    """A book (or a forged postback) naming `../../user/margins` must not make the client GET /user/margins."""
    kite = fakes["kite"]
    for hostile in ("../../user/margins", "a/b", "%2e%2e", "..", "a\nb"):
        kite.add(hostile, [kite_order("251128000000190", "OPEN") | {"order_id": hostile}])
    kite.add("251128000000191", kite_lifecycle("251128000000191"))
    result = reconcile(svc, "kite")
    assert result.error is None
    paths = [r["path"] for r in kite.requests]
    assert all(path == "/orders" or path.count("/") == 2 and path.startswith("/orders/") for path in paths), paths
    assert "/orders/%252e%252e" in paths  # escaped: one segment, the literal id
    assert state(svc, "kite", "251128000000191")["status"] == "FILLED"
