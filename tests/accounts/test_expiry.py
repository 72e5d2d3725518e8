"""When a day's session ends (06:00 IST rollover, fixed lifetimes) and the watcher that marks and announces it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from app.accounts.expiry import IST, next_rollover, session_expiry
from app.accounts.model import SessionState
from app.brokers.registry import BY_NAME
from app.config import load_config
from app.db import accounts
from app.exceptions import ConfigurationError
from app.redis_keys import ALERTS_STREAM
from app.services import Services, set_services
from tests.support.env import make_env
from tests.support.procs import Process, wait_until
from workers import sessions

KITE = BY_NAME["kite"].accounts
DHAN = BY_NAME["dhan"].accounts


def ist(*args: int) -> datetime:
    return datetime(*args, tzinfo=IST)


@pytest.mark.parametrize(
    ("logged_in", "ends"),
    [
        (ist(2026, 12, 3, 9, 0), ist(2026, 12, 4, 6, 0)),  # a morning login lasts until tomorrow's rollover
        (ist(2026, 12, 3, 5, 59, 59), ist(2026, 12, 3, 6, 0)),  # one second before the rollover: ends at it
        (ist(2026, 12, 3, 6, 0), ist(2026, 12, 4, 6, 0)),  # at the rollover: the new day's token
        (ist(2026, 12, 3, 23, 59), ist(2026, 12, 4, 6, 0)),  # late evening: the next morning
        (ist(2026, 12, 31, 10, 0), ist(2027, 1, 1, 6, 0)),  # over the year's end
        (datetime(2026, 12, 3, 0, 29, tzinfo=UTC), ist(2026, 12, 3, 6, 0)),  # 05:59 IST given in UTC
        (datetime(2026, 12, 3, 0, 30, tzinfo=UTC), ist(2026, 12, 4, 6, 0)),  # 06:00 IST given in UTC
    ],
)
def test_kite_sessions_end_at_the_next_0600_ist(logged_in, ends):
    got = session_expiry(KITE, logged_in)
    assert got == ends and got.tzinfo is not None and got.utcoffset() == timedelta(0)


def test_fixed_lifetimes_and_unknown_ones():
    start = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    assert session_expiry(DHAN, start) == start + timedelta(hours=24)
    assert session_expiry(BY_NAME["jainam"].accounts, start) is None
    assert next_rollover("06:00", ist(2026, 12, 3, 6, 0, 0)) == ist(2026, 12, 4, 6, 0)


@pytest.fixture
def alert_services(redis_client, redis_url, database_url, tmp_path):
    """Services over both databases with alerts on (a bot token and a chat), so announcements are queued."""
    env = make_env(
        redis_url,
        database_url,
        tmp_path,
        TELEGRAM_BOT_TOKEN="123:test-bot-token",
        TELEGRAM_CHAT_ID="42",
        SESSION_WARN_MINUTES="30",
    )
    built = Services.build(load_config(env))
    set_services(built)
    yield built
    set_services(None)
    built.engine.dispose()


def alert_lines(services: Services) -> list[tuple[str, str]]:
    return [(fields[b"kind"].decode(), fields[b"text"].decode()) for _, fields in services.redis.xrange(ALERTS_STREAM)]


def backdate(services: Services, account_id: str, logged_in_at: datetime, expires_at: datetime) -> None:
    with services.engine.begin() as conn:
        conn.execute(
            accounts.update()
            .where(accounts.c.id == account_id)
            .values(logged_in_at=logged_in_at, expires_at=expires_at)
        )


def test_the_watcher_marks_a_passed_expiry_and_announces_it_once(alert_services):
    store = alert_services.accounts
    kite = store.create("kite", "AB1234", credentials={"api_key": "k", "api_secret": "s"}, session_token="tok-1")
    now = datetime.now(UTC)
    backdate(alert_services, kite.id, now - timedelta(hours=20), now - timedelta(minutes=1))
    fresh = store.create("dhan", "1100001", session_token="dhan-tok")

    sessions.watch(alert_services)
    sessions.watch(alert_services)  # a second pass, or a second worker process: nothing more
    marked = store.get(kite.id)
    assert marked.session.state == SessionState.EXPIRED and marked.last_error == "token expired"
    assert store.get(fresh.id).session.state == SessionState.ACTIVE
    assert alert_lines(alert_services) == [("login_needed", "login needed: kite AB1234 (token expired)")]

    store.set_session(kite.id, "tok-2")  # a new login: active again, and its own expiry is announced in turn
    renewed = store.get(kite.id)
    assert renewed.session.state == SessionState.ACTIVE
    backdate(alert_services, kite.id, now - timedelta(hours=1), now - timedelta(seconds=1))
    assert [a.id for a in sessions.expire_passed(alert_services)] == [kite.id]
    assert [kind for kind, _ in alert_lines(alert_services)] == ["login_needed", "login_needed"]


def test_two_watchers_racing_announce_one_expiry(alert_services):
    store = alert_services.accounts
    made = store.create("dhan", "1100001", session_token="dhan-tok")
    now = datetime.now(UTC)
    backdate(alert_services, made.id, now - timedelta(hours=25), now - timedelta(hours=1))
    seen = store.expired_sessions()
    assert [a.id for a in seen] == [made.id]
    first = sessions.expire_passed(alert_services)
    second = sessions.expire_passed(alert_services)
    assert [a.id for a in first] == [made.id] and second == []
    assert len(alert_lines(alert_services)) == 1


def test_a_fixed_lifetime_session_is_announced_ahead_once_and_a_rollover_one_is_not(alert_services):
    store = alert_services.accounts
    now = datetime.now(UTC)
    dhan = store.create("dhan", "1100001", session_token="dhan-tok")
    backdate(alert_services, dhan.id, now - timedelta(hours=23, minutes=40), now + timedelta(minutes=20))
    later = store.create("dhan", "1100002", session_token="dhan-tok-2")  # ends in 24 h: not yet
    kite = store.create("kite", "AB1234", credentials={"api_key": "k", "api_secret": "s"}, session_token="tok")
    backdate(alert_services, kite.id, now - timedelta(hours=20), now + timedelta(minutes=10))

    assert [a.id for a in sessions.warn_ahead(alert_services)] == [dhan.id]
    assert sessions.warn_ahead(alert_services) == []
    lines = alert_lines(alert_services)
    assert len(lines) == 1 and lines[0][0] == "session_expiring"
    ends = (now + timedelta(minutes=20)).astimezone(IST)
    assert lines[0][1] == f"session ends soon: dhan 1100001 (at {ends:%d %b %H:%M} IST); log in again"
    assert store.get(later.id).session.state == SessionState.ACTIVE
    assert store.get(dhan.id).session.state == SessionState.ACTIVE  # announced, not ended


@pytest.fixture
def reminding(redis_client, redis_url, database_url, tmp_path):
    """Services with alerts on and the market-open reminder at its default, 08:45 IST."""
    env = make_env(
        redis_url, database_url, tmp_path, TELEGRAM_BOT_TOKEN="1:t", TELEGRAM_CHAT_ID="4", LOGIN_REMINDER_IST="08:45"
    )
    built = Services.build(load_config(env))
    yield built
    built.engine.dispose()


def test_accounts_not_logged_in_are_reminded_before_the_market_opens_once_a_day(reminding):
    store = reminding.accounts
    expired = store.create("kite", "AB1234", credentials={"api_key": "k", "api_secret": "s"}, session_token="tok")
    store.mark_session(expired.id, SessionState.EXPIRED, "token expired", session_revision=1)
    missing = store.create("dhan", "1100001")
    store.create("dhan", "1100002", session_token="dhan-tok")  # logged in: nothing to say
    unused = store.create("dhan", "1100003", feed=False, reconcile=False)  # neither feed nor reconciliation

    thursday = ist(2026, 12, 3, 8, 50)
    assert sessions.remind_before_open(reminding, ist(2026, 12, 3, 8, 44)) == []  # not yet
    assert {a.id for a in sessions.remind_before_open(reminding, thursday)} == {expired.id, missing.id}
    assert sessions.remind_before_open(reminding, thursday + timedelta(minutes=5)) == []  # once that day
    assert sessions.remind_before_open(reminding, ist(2026, 12, 3, 9, 46)) == []  # the window has passed
    assert sessions.remind_before_open(reminding, ist(2026, 12, 5, 8, 50)) == []  # a Saturday
    friday = sessions.remind_before_open(reminding, ist(2026, 12, 4, 8, 45))
    assert {a.id for a in friday} == {expired.id, missing.id}  # again the next trading day
    lines = alert_lines(reminding)
    assert ("login_needed", "login needed before the market opens: kite AB1234 (session expired)") in lines
    assert ("login_needed", "login needed before the market opens: dhan 1100001 (session missing)") in lines
    assert len(lines) == 4 and not [text for _, text in lines if unused.account_id in text]


def test_the_reminder_time_is_checked_at_start_up(redis_url, sqlite_url, tmp_path):
    for bad in ("8:45", "25:00", "08:45 IST"):
        with pytest.raises(ConfigurationError, match="LOGIN_REMINDER_IST must be a time of day"):
            load_config(make_env(redis_url, sqlite_url, tmp_path, LOGIN_REMINDER_IST=bad))
    assert (
        load_config(make_env(redis_url, sqlite_url, tmp_path, LOGIN_REMINDER_IST="off")).alerts.login_reminder_ist == ""
    )


def test_no_warning_ahead_when_it_is_turned_off(redis_client, redis_url, sqlite_url, tmp_path):
    env = make_env(
        redis_url, sqlite_url, tmp_path, TELEGRAM_BOT_TOKEN="1:t", TELEGRAM_CHAT_ID="4", SESSION_WARN_MINUTES="0"
    )
    services = Services.build(load_config(env))
    try:
        made = services.accounts.create("dhan", "1100001", session_token="dhan-tok")
        now = datetime.now(UTC)
        backdate(services, made.id, now - timedelta(hours=23, minutes=50), now + timedelta(minutes=10))
        assert sessions.warn_ahead(services) == []
        assert services.redis.xlen(ALERTS_STREAM) == 0
    finally:
        services.engine.dispose()


def test_the_watcher_survives_a_database_that_is_not_answering(alert_services, caplog):
    alert_services.engine.dispose()
    broken = Services(
        config=alert_services.config,
        redis=alert_services.redis,
        engine=sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2}),
        ingestor=alert_services.ingestor,
    )
    sessions.watch(broken)  # logged, not raised: the thread lives on
    assert "session expiry watch skipped" in caplog.text


@pytest.mark.e2e
def test_the_real_worker_process_marks_an_expired_session_and_announces_it_once(
    redis_client, redis_url, sqlite_url, tmp_path
):
    env = make_env(redis_url, sqlite_url, tmp_path, TELEGRAM_BOT_TOKEN="1:t", TELEGRAM_CHAT_ID="4")
    env["TELEGRAM_API_URL"] = "http://127.0.0.1:9"  # nothing listens: lines stay queued, nothing leaves the box
    services = Services.build(load_config(env))
    worker = None
    try:
        made = services.accounts.create("dhan", "1100001", session_token="dhan-tok")
        now = datetime.now(UTC)
        backdate(services, made.id, now - timedelta(hours=25), now - timedelta(minutes=5))
        worker = Process("worker", env, tmp_path)
        # The watcher's first pass is WATCH_SECONDS after the worker starts; start-up on a busy box adds more.
        wait_until(
            lambda: services.accounts.get(made.id).session.state == SessionState.EXPIRED,
            timeout=sessions.WATCH_SECONDS * 4,
            message="the worker did not mark the expired session",
        )
        assert services.accounts.get(made.id).last_error == "token expired"
        texts = [fields[b"text"] for _, fields in services.redis.xrange(ALERTS_STREAM)]
        assert texts.count(b"login needed: dhan 1100001 (token expired)") == 1
    finally:
        if worker is not None:
            worker.stop()
        services.engine.dispose()
