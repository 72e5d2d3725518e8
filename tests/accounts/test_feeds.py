"""Feeds follow the accounts, live (docs/feeds.md): the real supervisor against local fake broker sockets.

In-process supervisors for the account changes, refusals and mute sockets; two `python -m workers.feeds`
processes for the sharing and the takeover after a SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from app.accounts.model import SessionState
from app.brokers.feed import add_connected_hook, remove_connected_hook
from app.redis_keys import ALERTS_STREAM, feed_lease_key
from tests.support.env import ROOT
from tests.support.fakes import FakeDhanAccounts, FakeKiteAccounts
from tests.support.fakes.harness import FAST, ServiceBuilder, api_client, feed_state, wait_state
from tests.support.fakes.socket_server import wait_until
from tests.support.fakes.sockets import dhan_order_alert
from tests.support.helpers import run_pipeline
from workers.feeds.runner import build_supervisor

#: Ticks every 0.2 s, the shortest lease, dials unpaced: a change shows within a second.
QUICK = {"FEEDS_ACCOUNTS_POLL_SECONDS": "0.2", "FEEDS_LEASE_SECONDS": "6", "FEEDS_CONNECT_RATE": "100"}
#: login_needed is always on once Telegram is configured (the sender does not run here: the line stays queued).
TELEGRAM = {"TELEGRAM_BOT_TOKEN": "123456:test-bot-token", "TELEGRAM_CHAT_ID": "42"}
CLIENT_A, TOKEN_A = "1100000011", "dhan-token-of-account-a-0123456789"
CLIENT_B, TOKEN_B = "1100000022", "dhan-token-of-account-b-9876543210"


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


async def supervised(services, stop: asyncio.Event) -> asyncio.Task:
    """The feeds supervisor of this process (FEEDS empty: the accounts only), as a task."""
    return asyncio.ensure_future(build_supervisor(services, stop, ()).run())


async def finish(task: asyncio.Task, stop: asyncio.Event) -> None:
    """Stop the supervisor and wait (bounded) for every connection to close."""
    stop.set()
    await asyncio.wait_for(task, 15)


def test_accounts_added_while_running_connect_once_each_with_their_own_token(build, admin_headers):
    """Two Dhan accounts added to a running process: each logs in once with its token, each one's orders are
    stored with its account_id, GET /api/feeds lists both, and disabling one closes it within 10 s."""
    calls: list[tuple[str, str]] = []

    async def scenario():
        async with FakeDhanAccounts({CLIENT_A: TOKEN_A, CLIENT_B: TOKEN_B}) as fake:
            services = build(**QUICK, DHAN_ORDER_WS_URL=fake.url)
            stop = asyncio.Event()
            task = await supervised(services, stop)
            await asyncio.sleep(0.5)  # running, with no account yet
            a = services.accounts.create("dhan", CLIENT_A, session_token=TOKEN_A)
            b = services.accounts.create("dhan", CLIENT_B, session_token=TOKEN_B)
            await fake.wait_for(lambda: fake.connected_clients() == {CLIENT_A, CLIENT_B}, 10, "both logged in")
            for account in (a, b):
                name = account.feed_status_name("dhan")
                await wait_state(services, name, "connected", lambda s: s.get("connected"))
            await fake.push_to(CLIENT_A, dhan_order_alert(CLIENT_A, "5225031200001"))
            await fake.push_to(CLIENT_B, dhan_order_alert(CLIENT_B, "5225031200002"))
            for account in (a, b):
                await wait_state(services, account.feed_status_name("dhan"), "its event", lambda s: s.get("events"))
            feeds = api_client(services).get("/api/feeds", headers=admin_headers).get_json()["feeds"]
            services.accounts.update(a.id, feed=False)
            switched_off = time.monotonic()
            await fake.wait_for(lambda: not fake.open_sessions(CLIENT_A), 10, "account A closed")
            closed_after = time.monotonic() - switched_off
            await asyncio.sleep(0.6)  # a few more ticks: A stays closed, B stays connected
            still = fake.connected_clients()
            await finish(task, stop)
            return services, fake, a, b, feeds, closed_after, still

    def record(name: str, reconcile: str) -> None:
        calls.append((name, reconcile))

    add_connected_hook(record)
    try:
        services, fake, a, b, feeds, closed_after, still = asyncio.run(scenario())
    finally:
        remove_connected_hook(record)
    assert sorted(fake.logins) == sorted([(CLIENT_A, TOKEN_A), (CLIENT_B, TOKEN_B)])  # once each, its own token
    assert fake.refused == []
    assert closed_after < 10 and still == {CLIENT_B}
    # Each (re)connect asks to reconcile that account, by its own name.
    assert {(f"dhan:{a.id}", f"dhan:{a.id}"), (f"dhan:{b.id}", f"dhan:{b.id}")} <= set(calls)
    by_name = {feed["name"]: feed for feed in feeds}
    for account in (a, b):
        view = by_name[f"dhan:{account.id}"]
        assert view["account"] == account.id and view["account_id"] == account.account_id
        assert view["state"] == "running" and view["connected"] is True and view["events"] == 1
    assert feed_state(services, f"dhan:{a.id}")["state"] == "stopped"
    run_pipeline(services)
    client = api_client(services)
    for order_no, account in (("5225031200001", a), ("5225031200002", b)):
        order = client.get(f"/api/orders/dhan/{order_no}", headers=admin_headers).get_json()
        assert order["account_id"] == account.account_id
    for secret in (TOKEN_A, TOKEN_B):
        assert secret not in str(feeds)


def test_a_refused_token_marks_the_session_alerts_once_stops_trying_and_a_new_session_reconnects(build):
    """Kite refuses an expired token with 403 at the handshake: the session turns refused, one login-needed line is
    queued, no second attempt follows, and a new session connects within 10 s."""

    async def scenario():
        async with FakeKiteAccounts({"kiteapikey01": "fresh-access-token-01"}) as fake:
            services = build(**QUICK, **TELEGRAM, KITE_WS_URL=fake.url)
            account = services.accounts.create(
                "kite",
                "AB1234",
                credentials={"api_key": "kiteapikey01", "api_secret": "kite-api-secret-01"},
                session_token="stale-access-token-01",
            )
            stop = asyncio.Event()
            task = await supervised(services, stop)
            name = account.feed_status_name("kite")
            await wait_until(
                lambda: services.accounts.get(account.id).session.state == SessionState.REFUSED, "refused", 10
            )
            state = await wait_state(services, name, "auth_failed", lambda s: s.get("state") == "auth_failed")
            await asyncio.sleep(2.0)  # ten ticks: nothing tries the refused token again
            attempts_while_refused = fake.attempts_by("kiteapikey01")
            services.accounts.set_session(account.id, "fresh-access-token-01")
            renewed = time.monotonic()
            await fake.wait_for(lambda: fake.open_sessions("kiteapikey01"), 10, "the new session connected")
            reconnected_after = time.monotonic() - renewed
            await wait_state(services, name, "connected", lambda s: s.get("connected"))
            await finish(task, stop)
            return services, account, state, attempts_while_refused, reconnected_after, fake

    services, account, state, attempts, reconnected_after, fake = asyncio.run(scenario())
    assert attempts == [("stale-access-token-01", False)]
    assert reconnected_after < 10
    assert fake.attempts_by("kiteapikey01") == [("stale-access-token-01", False), ("fresh-access-token-01", True)]
    assert "403" in state["last_error"] and "stale-access-token-01" not in str(state)
    lines = [fields[b"text"].decode() for _, fields in services.redis.xrange(ALERTS_STREAM)]
    assert [line for line in lines if line.startswith("login needed")] == [
        "login needed: kite AB1234 (the kite feed's login was refused)"
    ]
    stored = services.accounts.get(account.id)
    assert stored.session.state == SessionState.ACTIVE and stored.session.revision == 2


def test_a_mute_socket_is_reconnected_and_reconnecting_reconciles_that_account(build):
    """Connected but mute (the broker stops answering the keepalive ping): the feed reconnects, and every
    (re)connect asks to reconcile that account."""
    calls: list[tuple[str, str]] = []

    def record(name: str, reconcile: str) -> None:
        calls.append((name, reconcile))

    async def scenario():
        async with FakeDhanAccounts({CLIENT_A: TOKEN_A}) as fake:
            services = build(**QUICK, FEEDS_PING_SECONDS="0.3", DHAN_ORDER_WS_URL=fake.url)
            account = services.accounts.create("dhan", CLIENT_A, session_token=TOKEN_A)
            stop = asyncio.Event()
            task = await supervised(services, stop)
            await fake.wait_for(lambda: fake.open_sessions(CLIENT_A), 10, "connected")
            first = fake.by_client[CLIENT_A][0]
            await fake.wait_for(lambda: len(first.pings) >= 1, 5, "a ping answered")
            fake.mute(first)
            await fake.wait_for(lambda: len(fake.by_client[CLIENT_A]) >= 2, 10, "a new login after the mute one")
            first.ws.transport.abort()  # the fake's end of the abandoned socket (it reads nothing, so sees nothing)
            state = await wait_state(services, account.feed_status_name("dhan"), "reconnect", lambda s: s["reconnects"])
            # The hook runs in a thread after the login the fake saw: wait for it, not just for the login.
            await fake.wait_for(lambda: len(calls) >= 2, 20, "the reconnect's reconciliation request")
            await finish(task, stop)
            return account, state

    add_connected_hook(record)
    try:
        account, state = asyncio.run(scenario())
    finally:
        remove_connected_hook(record)
    assert state["reconnects"] >= 1
    assert calls[:2] == [(f"dhan:{account.id}", f"dhan:{account.id}")] * 2


# Several processes


def _spawn(env: dict[str, str]) -> subprocess.Popen:
    """`python -m workers.feeds`, as the Procfile runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "workers.feeds"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_two_feeds_processes_share_the_accounts_and_take_over_a_killed_ones(build):
    """Two processes: every account connected by exactly one of them, never twice; SIGKILL one, and the other
    has its accounts connected within 30 s (default lease and poll timings)."""
    clients = {f"11000001{n:02d}": f"dhan-token-number-{n:02d}-abcdef" for n in range(6)}

    async def scenario():
        async with FakeDhanAccounts(clients) as fake:
            services = build(DHAN_ORDER_WS_URL=fake.url)
            accounts = [services.accounts.create("dhan", c, session_token=t) for c, t in clients.items()]
            env = {**build.env, **FAST, "FEEDS": "", "DHAN_ORDER_WS_URL": fake.url}
            procs = [_spawn(env), _spawn(env)]
            doubles: list[str] = []

            async def watch() -> None:
                while True:
                    doubles.extend(c for c in clients if len(fake.open_sessions(c)) > 1)
                    await asyncio.sleep(0.02)

            watcher = asyncio.ensure_future(watch())
            try:
                await fake.wait_for(lambda: fake.connected_clients() == set(clients), 40, "all six connected")
                holders = {
                    a.id: services.redis.get(feed_lease_key(a.feed_status_name("dhan"))).decode() for a in accounts
                }
                pids = {int(holder.split(":")[1]) for holder in holders.values()}
                victim = next(p for p in procs if p.pid in pids)
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)
                killed = time.monotonic()
                orphans = {c for a, c in zip(accounts, clients, strict=True) if f":{victim.pid}:" in holders[a.id]}
                await fake.wait_for(lambda: not (orphans & fake.connected_clients()), 10, "the victim's closed")
                await fake.wait_for(lambda: fake.connected_clients() == set(clients), 40, "taken over")
                took = time.monotonic() - killed
                await asyncio.sleep(1.0)
                logins = [c for c, _ in fake.logins]
            finally:
                watcher.cancel()
                for proc in procs:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGTERM)
                for proc in procs:
                    try:
                        proc.wait(15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
            return holders, pids, orphans, took, logins, doubles, procs

    holders, pids, orphans, took, logins, doubles, procs = asyncio.run(scenario())
    assert doubles == []  # never two connections for one account
    assert len(pids) == 2  # both processes held accounts (fair shares)
    assert took < 30
    for client in clients:
        assert logins.count(client) == (2 if client in orphans else 1)
    assert procs[0].returncode is not None and procs[1].returncode is not None


def test_a_process_that_cannot_renew_closes_its_connections_before_the_lease_lapses(build):
    """Redis refuses the renewals: the holder closes the connection itself while its lease still runs, so another
    process that takes the lease once it lapses never finds the account connected twice."""

    async def scenario():
        async with FakeDhanAccounts({CLIENT_A: TOKEN_A}) as fake:
            services = build(**QUICK, DHAN_ORDER_WS_URL=fake.url)
            account = services.accounts.create("dhan", CLIENT_A, session_token=TOKEN_A)
            stop = asyncio.Event()
            supervisor = build_supervisor(services, stop, ())
            task = asyncio.ensure_future(supervisor.run())
            await fake.wait_for(lambda: fake.open_sessions(CLIENT_A), 10, "connected")

            def refuse(names):
                raise redis.ConnectionError("Redis away (test)")

            supervisor.leases.renew = refuse
            key = feed_lease_key(account.feed_status_name("dhan"))
            await fake.wait_for(lambda: not fake.open_sessions(CLIENT_A), 10, "closed by its holder")
            left_ms = services.redis.pttl(key)
            await finish(task, stop)
            return left_ms

    left_ms = asyncio.run(scenario())
    assert left_ms > 1000  # closed with more than a second of its lease left


def test_a_lease_taken_by_another_process_closes_this_connection_and_silences_its_record(build):
    """The lease names another holder (this one's lapsed and was taken): the connection closes within a tick and
    this process writes that connection's record no more."""

    async def scenario():
        async with FakeDhanAccounts({CLIENT_A: TOKEN_A}) as fake:
            services = build(**QUICK, DHAN_ORDER_WS_URL=fake.url)
            account = services.accounts.create("dhan", CLIENT_A, session_token=TOKEN_A)
            name = account.feed_status_name("dhan")
            stop = asyncio.Event()
            task = await supervised(services, stop)
            await wait_state(services, name, "connected", lambda s: s.get("connected"))
            services.redis.set(feed_lease_key(name), "another-host:1:feedbeef", px=60_000)
            services.redis.hset(f"oh:feeds:{name}", mapping={"state": "running", "connected": "1", "pid": "1"})
            await fake.wait_for(lambda: not fake.open_sessions(CLIENT_A), 10, "closed")
            await asyncio.sleep(0.6)
            record = feed_state(services, name)
            holder = services.redis.get(feed_lease_key(name))
            await finish(task, stop)
            return record, holder, len(fake.logins)

    record, holder, logins = asyncio.run(scenario())
    assert record["connected"] is True and record["pid"] == 1  # the new holder's record, untouched
    assert holder == b"another-host:1:feedbeef" and logins == 1


def test_accounts_not_connected_say_why_in_the_feeds_list(build, admin_headers):
    """Before any feeds process ran them: no session -> waiting, switched off -> stopped, refused -> auth_failed."""
    services = build()
    waiting = services.accounts.create("dhan", CLIENT_A)
    off = services.accounts.create("dhan", CLIENT_B, session_token=TOKEN_B, feed=False)
    refused = services.accounts.create("kite", "AB1234", session_token="kite-token-0123456789")
    services.accounts.mark_session(refused.id, SessionState.REFUSED, "HTTP 403", session_revision=1)
    body = api_client(services).get("/api/feeds", headers=admin_headers).get_json()
    states = {feed["name"]: (feed["state"], feed["account"]) for feed in body["feeds"]}
    assert states == {
        f"dhan:{waiting.id}": ("waiting", waiting.id),
        f"dhan:{off.id}": ("stopped", off.id),
        f"kite:{refused.id}": ("auth_failed", refused.id),
    }
    assert body["count"] == 3
