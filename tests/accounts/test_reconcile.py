"""Reconciliation per account against the fake REST books: each account with its own token, book, orders and rate
window; the scheduler following the accounts live; a refused token ending a data account's session, once."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from app import create_app
from app.accounts.model import SessionState
from app.brokers import rest as client_base
from app.config import load_config
from app.db import events as events_table
from app.db import orders
from app.reconcile import request_reconcile
from app.reconcile.clients import client_for
from app.reconcile.status import read_status
from app.redis_keys import ALERTS_STREAM, reconcile_request_key
from app.services import Services, set_services
from app.times import utc_iso
from tests.support.env import ADMIN_TOKEN, make_env
from tests.support.fakes.rest import FakeDhanRest, FakeKiteRest, dhan_order, kite_lifecycle
from tests.support.helpers import run_pipeline
from tests.support.procs import wait_until
from workers import reconcile as job

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: The environment's Dhan account (read-only, reconciled as "dhan") and the Kite app the data accounts log in with.
ENV_DHAN = ("1000000003", "env-dhan-token")
KITE_KEY = "kitekey"
TOKENS = {"1100001": "dhan-token-of-a-0123456789", "1100002": "dhan-token-of-b-9876543210"}


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    """Retries back off briefly; the scheduler re-reads the accounts every 0.3 s and ticks every 0.1 s."""
    monkeypatch.setattr(client_base, "BACKOFF_FACTOR", 0.01)
    monkeypatch.setattr(client_base, "BACKOFF_JITTER", 0.0)
    monkeypatch.setattr(job, "REFRESH_SECONDS", 0.3)
    monkeypatch.setattr(job, "TICK_SECONDS", 0.1)


@pytest.fixture
def fakes():
    started = {"dhan": FakeDhanRest(*ENV_DHAN).start(), "kite": FakeKiteRest(KITE_KEY, "env-kite-unused").start()}
    yield started
    for fake in started.values():
        fake.close()


def build(redis_url: str, database_url: str, tmp_path, fakes, *, env_dhan: bool = True, **extra: str) -> Services:
    env = make_env(
        redis_url,
        database_url,
        tmp_path,
        DHAN_API_URL=fakes["dhan"].url,
        KITE_API_URL=fakes["kite"].url,
        **(dict(zip(("DHAN_CLIENT_ID", "DHAN_ACCESS_TOKEN"), ENV_DHAN, strict=True)) if env_dhan else {}),
        TELEGRAM_BOT_TOKEN="123:fake-bot",  # alerts are queued only when they can go somewhere
        TELEGRAM_CHAT_ID="42",
        **extra,
    )
    services = Services.build(load_config(env))
    set_services(services)
    return services


@pytest.fixture
def svc(redis_client, redis_url, database_url, tmp_path, fakes):
    """Services on SQLite and on PostgreSQL, with the environment's Dhan account and the fakes' addresses."""
    services = build(redis_url, database_url, tmp_path, fakes)
    yield services
    set_services(None)
    services.engine.dispose()


@pytest.fixture
def scheduler_env(redis_client, redis_url, sqlite_url, tmp_path, fakes):
    """Services whose scheduler runs every account each second (the periodic runs are the test's clock)."""
    services = build(redis_url, sqlite_url, tmp_path, fakes, RECONCILE_INTERVAL_SECONDS="1")
    stop = threading.Event()
    yield services, stop
    stop.set()
    set_services(None)
    services.engine.dispose()


def add_dhan(svc: Services, fakes, client_id: str, token: str | None = None):
    """A Dhan account added as data, with its session, and its own book at the fake."""
    token = token or TOKENS[client_id]
    book = fakes["dhan"].add_account(client_id, token)
    return svc.accounts.create("dhan", client_id, label=f"acct {client_id}", session_token=token), book


def stored(svc: Services, order_id: str) -> list[tuple[str | None, str]]:
    with svc.engine.connect() as conn:
        rows = conn.execute(
            sa.select(events_table.c.account_id, events_table.c.source)
            .where(events_table.c.broker == "dhan", events_table.c.order_id == order_id)
            .order_by(events_table.c.sequence)
        )
        return [(row.account_id, row.source) for row in rows]


def order_account(svc: Services, broker: str, order_id: str) -> str | None:
    with svc.engine.connect() as conn:
        return conn.execute(
            sa.select(orders.c.account_id).where(orders.c.broker == broker, orders.c.order_id == order_id)
        ).scalar()


def runs(svc: Services, name: str) -> int:
    return (read_status(svc.redis, name) or {}).get("runs", 0)


def ran(svc: Services, name: str, reason: str) -> bool:
    """True once a run for `reason` has finished without an error."""
    status = read_status(svc.redis, name) or {}
    return (
        status.get("reason") == reason
        and bool(status.get("finished_at"))
        and status["finished_at"] >= status["started_at"]
        and not status.get("last_error")
    )


def login_alerts(svc: Services) -> list[str]:
    return [
        fields[b"text"].decode()
        for _, fields in svc.redis.xrange(ALERTS_STREAM)
        if fields.get(b"kind") == b"login_needed"
    ]


def claim(svc: Services, row: dict, seconds_ago: float = 30.0) -> None:
    """A postback terminal of a Dhan order (a claim: the environment's Dhan account has REST credentials)."""
    at = utc_iso(datetime.now(UTC) - timedelta(seconds=seconds_ago))
    svc.ingestor.submit(svc.adapters["dhan"].event_from_payload(row, source="postback", received_at=at), b"{}")
    run_pipeline(svc)


def test_two_dhan_accounts_each_read_with_its_own_token_and_keep_their_orders(svc, fakes):
    a, book_a = add_dhan(svc, fakes, "1100001")
    b, book_b = add_dhan(svc, fakes, "1100002")
    assert (a.reconcile_name, b.reconcile_name) == (f"dhan:{a.id}", f"dhan:{b.id}")
    row_a = dhan_order("500000000001", "TRADED", filled=5, average=3400.5, client_id="1100001")
    row_b = dhan_order("500000000002", "PENDING", client_id="1100002")
    row_b.pop("dhanClientId")  # a row naming no account: the run gives it its account's id
    book_a.add("500000000001", [row_a])
    book_b.add("500000000002", [row_b])

    first = job.run_reconcile(a.reconcile_name, "test", svc)
    second = job.run_reconcile(b.reconcile_name, "test", svc)
    run_pipeline(svc)
    assert (first.error, first.orders_seen, first.updates_found) == (None, 1, 1)
    assert (second.error, second.orders_seen, second.updates_found) == (None, 1, 1)
    assert book_a.requests and book_b.requests and book_a.auth_failures == book_b.auth_failures == 0
    assert stored(svc, "500000000001") == [("1100001", "reconcile")]
    assert stored(svc, "500000000002") == [("1100002", "reconcile")]
    assert order_account(svc, "dhan", "500000000002") == "1100002"
    assert fakes["dhan"].book() == [] and not fakes["dhan"].auth_failures  # the environment's book is not read

    status = read_status(svc.redis, a.reconcile_name)
    assert (status["account"], status["account_id"], status["runs"], status["last_error"]) == (a.id, "1100001", 1, None)
    assert read_status(svc.redis, "dhan") is None  # the environment's account did not run


def test_an_account_run_settles_its_own_claims_only(svc, fakes):
    """A claim on B's order is B's run's to settle: A's run and the environment's run do not ask their books."""
    a, book_a = add_dhan(svc, fakes, "1100001")
    b, book_b = add_dhan(svc, fakes, "1100002")
    filled = dhan_order("500000000010", "TRADED", filled=5, average=3400.0, client_id="1100002")
    book_b.add("500000000010", [filled])
    claim(svc, filled)
    with svc.engine.connect() as conn:
        shown = conn.execute(sa.select(orders.c.data).where(orders.c.order_id == "500000000010")).scalar()
    assert shown["confirmed"] is False

    for name in (a.reconcile_name, "dhan"):
        result = job.run_reconcile(name, "test", svc)
        assert (result.error, result.unconfirmed, result.confirmations) == (None, {}, 0), name
    assert all(not r["path"].endswith("500000000010") for r in [*book_a.requests, *fakes["dhan"].requests])

    settled = job.run_reconcile(b.reconcile_name, "test", svc)
    run_pipeline(svc)
    assert (settled.error, settled.confirmations, settled.resolved) == (None, 1, {"500000000010"})
    with svc.engine.connect() as conn:
        shown = conn.execute(sa.select(orders.c.data).where(orders.c.order_id == "500000000010")).scalar()
    assert (shown["status"], shown["confirmed"]) == ("FILLED", True)


def test_a_data_accounts_postback_terminal_is_a_claim_its_own_run_settles(
    redis_client, redis_url, database_url, tmp_path, fakes
):
    """No Dhan credentials in the environment: the account added as data makes its postback terminals claims, and
    its run overrules a forged CANCELLED of an order its broker shows filled; another account's stay final."""
    svc = build(redis_url, database_url, tmp_path, fakes, env_dhan=False)
    try:
        a, book_a = add_dhan(svc, fakes, "1100001")
        svc.accounts.create("dhan", "1100002", reconcile=False)
        filled = dhan_order("500000000030", "TRADED", filled=5, average=3400.0, client_id="1100001")
        book_a.add("500000000030", [filled])
        claim(svc, dict(filled, orderStatus="CANCELLED", filledQty=0))  # forged
        other = dhan_order("500000000031", "CANCELLED", client_id="1100002")
        claim(svc, other)
        with svc.engine.connect() as conn:
            shown = dict(conn.execute(sa.select(orders.c.order_id, orders.c.data)).all())
        assert (shown["500000000030"]["status"], shown["500000000030"]["confirmed"]) == ("CANCELLED", False)
        assert (shown["500000000031"]["status"], shown["500000000031"]["confirmed"]) == ("CANCELLED", True)

        result = job.run_reconcile(a.reconcile_name, "confirm postback", svc)
        run_pipeline(svc)
        assert (result.error, result.resolved) == (None, {"500000000030"})
        with svc.engine.connect() as conn:
            settled = conn.execute(sa.select(orders.c.data).where(orders.c.order_id == "500000000030")).scalar()
        assert (settled["status"], settled["confirmed"], settled["filled_quantity"]) == ("FILLED", True, 5)
    finally:
        set_services(None)
        svc.engine.dispose()


def test_a_refused_token_ends_the_session_with_one_alert(svc, fakes):
    a, book_a = add_dhan(svc, fakes, "1100001")
    book_a.expired = True
    result = job.run_reconcile(a.reconcile_name, "test", svc)
    assert result.error == "Dhan refused the session token (expired or invalid): log in again or paste a new token"
    account = svc.accounts.get(a.id)
    assert account.session.state == SessionState.EXPIRED and account.last_error == result.error
    assert login_alerts(svc) == ["login needed: dhan 1100001 (token expired)"]
    before = len(book_a.requests)
    assert job.run_reconcile(a.reconcile_name, "again", svc) is None  # no usable session: not run
    assert len(book_a.requests) == before and len(login_alerts(svc)) == 1
    assert TOKENS["1100001"] not in json.dumps(read_status(svc.redis, a.reconcile_name))


def test_the_environment_account_keeps_reporting_a_refused_token(svc, fakes):
    fakes["dhan"].expired = True
    result = job.run_reconcile("dhan", "test", svc)
    assert result.error.startswith("Dhan access token expired or invalid: refresh DHAN_ACCESS_TOKEN")
    assert login_alerts(svc) == []


def test_api_lists_each_account_and_requests_every_account_of_a_broker(svc, fakes):
    web = create_app(svc.config, svc).test_client()
    a, _ = add_dhan(svc, fakes, "1100001")
    off = svc.accounts.create("dhan", "1100009", reconcile=False, session_token="some-token-1100009")
    missing = svc.accounts.create("dhan", "1100008")
    answer = web.post("/api/reconcile?broker=dhan", headers=AUTH)
    assert answer.status_code == 202 and answer.get_json()["requested"] == ["dhan", a.reconcile_name]
    assert svc.redis.get(reconcile_request_key(a.reconcile_name)) is not None
    assert svc.redis.get(reconcile_request_key(off.reconcile_name)) is None
    assert web.post("/api/reconcile?broker=kite", headers=AUTH).status_code == 409

    job.run_reconcile(a.reconcile_name, "test", svc)
    listed = web.get("/api/reconcile", headers=AUTH).get_json()
    # Every broker with a REST client, in registry order (more join as brokers are added).
    assert [b["broker"] for b in listed["brokers"]][:3] == ["kite", "dhan", "flattrade"]
    assert listed["count"] == len(listed["brokers"])
    by_name = {entry["name"]: entry for entry in listed["accounts"]}
    entry = by_name[a.reconcile_name]
    assert (entry["account"], entry["account_id"], entry["configured"], entry["runs"]) == (a.id, "1100001", True, 1)
    assert by_name[off.reconcile_name]["note"] == "not reconciled: reconciliation is switched off for this account"
    assert by_name[missing.reconcile_name]["configured"] is False
    assert not any(token in json.dumps(listed) for token in TOKENS.values())


def test_rate_windows_are_per_account_and_per_kite_app(svc, fakes):
    a, _ = add_dhan(svc, fakes, "1100001")
    b, _ = add_dhan(svc, fakes, "1100002")
    client_a = client_for(svc.config, svc.accounts.get(a.id, secrets=True))
    client_b = client_for(svc.config, svc.accounts.get(b.id, secrets=True))
    assert client_a.limit_key != client_b.limit_key != client_for(svc.config, "dhan").limit_key
    assert "1100001" not in client_a.limit_key  # a digest of the holder, never the value
    for client in (client_a, client_b):
        client._limiter.clear(client._rate, client.limit_key)
    waits: list[float] = []
    client_a._sleep = lambda seconds: (
        waits.append(seconds),
        client_a._limiter.clear(client_a._rate, client_a.limit_key),
    )
    client_b._sleep = waits.append
    for _ in range(20):  # A's whole window for this second
        client_a.wait_turn()
    for _ in range(20):  # B is not held up by A
        client_b.wait_turn()
    assert waits == []
    client_a.wait_turn()  # A's 21st request waits for A's window
    assert len(waits) == 1

    kites = [
        svc.accounts.create(
            "kite", user, credentials={"api_key": KITE_KEY, "api_secret": "s"}, session_token=f"kite-token-{user}"
        )
        for user in ("AB1234", "CD5678")
    ]
    keys = {client_for(svc.config, svc.accounts.get(k.id, secrets=True)).limit_key for k in kites}
    assert len(keys) == 1  # one Kite Connect app: one window, whichever user


def test_the_scheduler_follows_accounts_added_expired_and_removed(scheduler_env, fakes):
    svc, stop = scheduler_env
    clock, _ = add_dhan(svc, fakes, "1100001")  # runs every second: the test's clock
    scheduler = job.start_scheduler(svc, stop)
    wait_until(lambda: runs(svc, clock.reconcile_name) >= 1, 30, message="the first account never ran")
    assert read_status(svc.redis, clock.reconcile_name)["reason"] in ("start-up", "periodic")
    wait_until(lambda: runs(svc, "dhan") >= 1, 30, message="the environment's account never ran")

    added, book = add_dhan(svc, fakes, "1100002")  # added while the scheduler runs
    book.add("500000000020", [dhan_order("500000000020", "PENDING", client_id="1100002")])
    wait_until(lambda: runs(svc, added.reconcile_name) >= 1, 30, message="the added account was never reconciled")
    first = read_status(svc.redis, added.reconcile_name)
    assert first["reason"] == "added" and first["orders_seen"] == 1 and first["last_error"] is None

    book.expired = True  # its token dies: one run ends the session, then it is left alone
    wait_until(lambda: svc.accounts.get(added.id).session.state == SessionState.EXPIRED, 30)
    wait_until(lambda: added.reconcile_name not in scheduler.accounts, 30)
    wait_until(lambda: not scheduler.running(added.reconcile_name), 30)  # a run under way ends on its own
    refused, ticks = len(book.requests), runs(svc, clock.reconcile_name)
    request_reconcile(svc.redis, added.reconcile_name, "asked while logged out")
    wait_until(lambda: runs(svc, clock.reconcile_name) >= ticks + 2, 30, message="the clock account stopped")
    assert len(book.requests) == refused and len(login_alerts(svc)) == 1

    book.token, book.expired = "a-new-dhan-token-1100002", False  # a new session: reconciled again
    svc.accounts.set_session(added.id, book.token)
    request_reconcile(svc.redis, added.reconcile_name, "new session")
    wait_until(lambda: ran(svc, added.reconcile_name, "new session"), 30, message="the new session was not reconciled")
    assert len(login_alerts(svc)) == 1

    svc.accounts.delete(added.id)  # removed: no more runs
    wait_until(lambda: added.reconcile_name not in scheduler.accounts, 30)
    wait_until(lambda: not scheduler.running(added.reconcile_name), 30)
    served, ticks = len(book.requests), runs(svc, clock.reconcile_name)
    request_reconcile(svc.redis, added.reconcile_name, "asked after removal")
    wait_until(lambda: runs(svc, clock.reconcile_name) >= ticks + 2, 30, message="the clock account stopped")
    assert len(book.requests) == served


def test_a_requested_run_of_one_account_runs_only_that_account(redis_client, redis_url, sqlite_url, tmp_path, fakes):
    svc = build(redis_url, sqlite_url, tmp_path, fakes, RECONCILE_INTERVAL_SECONDS="0")
    stop = threading.Event()
    try:
        a, _ = add_dhan(svc, fakes, "1100001")
        b, _ = add_dhan(svc, fakes, "1100002")
        job.start_scheduler(svc, stop)
        names = ("dhan", a.reconcile_name, b.reconcile_name)
        wait_until(lambda: all(runs(svc, name) == 1 for name in names), 30, message="the start-up runs never ended")
        assert read_status(svc.redis, a.reconcile_name)["reason"] == "start-up"
        request_reconcile(svc.redis, a.reconcile_name, "on demand (POST /api/accounts/<id>/reconcile)")
        wait_until(lambda: runs(svc, a.reconcile_name) == 2, 30, message="the requested run never ended")
        request_reconcile(svc.redis, a.reconcile_name, "once more")  # a second request: the tick after serves it
        wait_until(lambda: runs(svc, a.reconcile_name) == 3, 30, message="the second requested run never ended")
        assert [runs(svc, name) for name in names] == [1, 3, 1]
        assert read_status(svc.redis, a.reconcile_name)["reason"] == "once more"
    finally:
        stop.set()
        set_services(None)
        svc.engine.dispose()


def test_runs_beyond_the_cap_wait_their_turn(redis_client, redis_url, sqlite_url, tmp_path, fakes, monkeypatch):
    """One run at a time in this process: every account's start-up run is still served, each once."""
    monkeypatch.setattr(job, "MAX_RUNS", 1)
    svc = build(redis_url, sqlite_url, tmp_path, fakes, RECONCILE_INTERVAL_SECONDS="0")
    stop = threading.Event()
    try:
        made = [
            add_dhan(svc, fakes, client_id, f"token-{client_id}")[0] for client_id in ("1100001", "1100002", "1100003")
        ]
        for client_id in ("1100001", "1100002", "1100003"):
            fakes["dhan"].accounts[client_id].add(
                f"50000000{client_id[-4:]}", [dhan_order(f"50000000{client_id[-4:]}", "PENDING", client_id=client_id)]
            )
        scheduler = job.start_scheduler(svc, stop)
        names = ["dhan", *(account.reconcile_name for account in made)]
        peak = 0
        deadline = time.monotonic() + 60
        while not all(runs(svc, name) == 1 for name in names):
            assert time.monotonic() < deadline, [runs(svc, name) for name in names]
            peak = max(peak, sum(thread.is_alive() for thread in list(scheduler.threads.values())))
            time.sleep(0.01)
        assert peak <= 1
        assert all(read_status(svc.redis, name)["reason"] == "start-up" for name in names)
    finally:
        stop.set()
        set_services(None)
        svc.engine.dispose()


def test_a_kite_account_refused_with_403_is_marked_once(svc, fakes):
    made = svc.accounts.create(
        "kite", "AB1234", credentials={"api_key": KITE_KEY, "api_secret": "s"}, session_token="kite-token-ab1234"
    )
    book = fakes["kite"].add_account("kite-token-ab1234", "kite-token-ab1234")
    book.add("251128000000901", kite_lifecycle("251128000000901"))
    ok = job.run_reconcile(made.reconcile_name, "test", svc)
    run_pipeline(svc)
    assert (ok.error, ok.orders_seen) == (None, 1) and order_account(svc, "kite", "251128000000901") == "AB1234"
    book.expired = True
    refused = job.run_reconcile(made.reconcile_name, "test", svc)
    assert refused.error.startswith("Kite refused the session token")
    assert svc.accounts.get(made.id).session.state == SessionState.EXPIRED
    assert login_alerts(svc) == ["login needed: kite AB1234 (token expired)"]
