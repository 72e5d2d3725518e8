"""The automatic (TOTP) daily login against a fake Angel One login API: logs in by itself when the session is missing,
expired or refused, backs off on failure, says so once when it cannot, and never twice at a time."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from app.accounts import auto_login
from app.accounts.expiry import IST
from app.accounts.login import LoginRefused
from app.accounts.model import SessionState
from app.accounts.notices import login_needed
from app.brokers.angel.login import AngelLogin
from app.config import load_config
from app.redis_keys import ALERTS_STREAM, AUTO_LOGIN_PREFIX, reconcile_request_key
from app.services import Services, set_services
from tests.support.env import make_env
from tests.support.fakes.angel import FakeAngelRest
from tests.support.procs import wait_until
from workers import sessions

CLIENT = "R52269012"
API_KEY = "angel-api-key-01"
PIN = "4321"
SECRET = pyotp.random_base32()
CREDENTIALS = {"api_key": API_KEY, "pin": PIN, "totp_secret": SECRET}


@pytest.fixture
def fake():
    started = FakeAngelRest(CLIENT, API_KEY, PIN, SECRET).start()
    yield started
    started.close()


@pytest.fixture
def svc(redis_client, redis_url, database_url, tmp_path, fake):
    """Services on SQLite and PostgreSQL whose Angel One is the fake; alerts are queued (a Telegram chat is set)."""
    env = make_env(
        redis_url,
        database_url,
        tmp_path,
        ANGEL_API_URL=fake.url,
        TELEGRAM_BOT_TOKEN="123:fake-bot",
        TELEGRAM_CHAT_ID="42",
    )
    services = Services.build(load_config(env))
    set_services(services)
    yield services
    set_services(None)
    services.engine.dispose()


def add(svc: Services, **credentials: str):
    return svc.accounts.create("angel", CLIENT, label="angel main", credentials=CREDENTIALS | credentials)


def alerts(svc: Services) -> list[str]:
    return [f[b"text"].decode() for _, f in svc.redis.xrange(ALERTS_STREAM) if f.get(b"kind") == b"login_needed"]


def backoff(svc: Services, account_id: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in svc.redis.hgetall(AUTO_LOGIN_PREFIX + account_id).items()}


def allow_now(svc: Services, account_id: str) -> None:
    """The account's backoff over (the test's clock)."""
    svc.redis.hset(AUTO_LOGIN_PREFIX + account_id, "next_at", 0)


# The broker's login


def test_the_login_sends_the_client_code_pin_and_a_current_totp(svc, fake):
    account = svc.accounts.get(add(svc).id, secrets=True)
    result = AngelLogin(svc.config).login(account)
    assert result.token in fake.issued and result.user_id == CLIENT
    [body], [headers] = fake.logins, fake.login_headers
    assert body["clientcode"] == CLIENT and body["password"] == PIN
    assert pyotp.TOTP(SECRET).verify(body["totp"], valid_window=1)
    assert headers["X-PrivateKey"] == API_KEY and headers["X-UserType"] == "USER" and headers["X-SourceID"] == "WEB"


@pytest.mark.parametrize(
    ("credentials", "words"),
    [({"pin": "0000"}, "Invalid clientcode or password"), ({"totp_secret": pyotp.random_base32()}, "Invalid totp")],
)
def test_refused_credentials_are_a_refusal_that_names_no_secret(svc, fake, credentials, words):
    account = svc.accounts.get(add(svc, **credentials).id, secrets=True)
    with pytest.raises(LoginRefused) as refused:
        AngelLogin(svc.config).login(account)
    assert words in str(refused.value) and refused.value.transient is False
    assert all(value not in str(refused.value) for value in (*credentials.values(), PIN, SECRET))


def test_a_broker_error_is_transient_and_a_bad_secret_is_named(svc, fake):
    fake.login_fail_next = [503, 503, 503, 503, 503]
    with pytest.raises(LoginRefused) as refused:
        AngelLogin(svc.config).login(svc.accounts.get(add(svc).id, secrets=True))
    assert refused.value.transient is True
    other = svc.accounts.create("angel", "S1234567", credentials=CREDENTIALS | {"totp_secret": "not base32 !"})
    with pytest.raises(LoginRefused, match="totp_secret is not a base32"):
        AngelLogin(svc.config).login(svc.accounts.get(other.id, secrets=True))


# The automatic login


def test_an_account_added_without_a_token_logs_in_by_itself(svc, fake):
    account = add(svc)
    [outcome] = auto_login.run_pass(svc)
    assert outcome.ok
    logged_in = svc.accounts.get(account.id, secrets=True)
    assert logged_in.session.state == SessionState.ACTIVE and logged_in.session.token == fake.token
    ends = logged_in.session.expires_at.astimezone(IST)
    assert (ends.hour, ends.minute) == (0, 0) and ends - datetime.now(IST) <= timedelta(days=1)
    assert svc.redis.get(reconcile_request_key(logged_in.reconcile_name)) == b"automatic login"
    assert auto_login.run_pass(svc) == []  # active: nothing due
    assert len(fake.logins) == 1 and alerts(svc) == []


def test_a_session_past_its_rollover_or_refused_logs_in_again(svc, fake):
    account = add(svc)
    svc.accounts.set_session(account.id, "yesterdays-jwt", expires_at=datetime.now(UTC) - timedelta(minutes=1))
    assert svc.accounts.get(account.id).session.state == SessionState.EXPIRED
    assert [o.ok for o in auto_login.run_pass(svc)] == [True]
    first = svc.accounts.get(account.id, secrets=True).session
    svc.accounts.mark_session(account.id, SessionState.REFUSED, "refused", session_revision=first.revision)
    svc.redis.hset(AUTO_LOGIN_PREFIX + account.id, "last_login", time.time() - auto_login.SHORT_SESSION - 1)
    assert [o.ok for o in auto_login.run_pass(svc)] == [True]  # the last session lasted: no backoff
    again = svc.accounts.get(account.id, secrets=True).session
    assert again.state == SessionState.ACTIVE and again.revision == first.revision + 1 and again.token != first.token
    assert alerts(svc) == []


def test_refused_credentials_back_off_and_are_announced_at_once(svc, fake):
    account = add(svc, pin="0000")
    [outcome] = auto_login.run_pass(svc)
    assert not outcome.ok and "Invalid clientcode or password" in outcome.error
    assert alerts(svc) == [
        f"login needed: angel {CLIENT} (automatic login failed: Angel One refused the login: "
        "Invalid clientcode or password (AB1011))"
    ]
    state = backoff(svc, account.id)
    assert state["failures"] == "1" and float(state["next_at"]) - time.time() > auto_login.BACKOFF_BASE - 5
    assert auto_login.run_pass(svc) == [] and len(fake.logins) == 1  # backing off: no second try yet
    assert "automatic login failed" in svc.accounts.get(account.id).last_error
    assert PIN not in json.dumps(alerts(svc)) and "0000" not in svc.accounts.get(account.id).last_error


def test_transient_failures_are_announced_after_a_few_and_the_backoff_doubles(svc, fake):
    account = add(svc)
    fake.login_fail_next = [503] * 40  # urllib3 retries nothing here: each pass is one or more 503s
    waits = []
    for _ in range(auto_login.NOTICE_AFTER):
        allow_now(svc, account.id)
        [outcome] = auto_login.run_pass(svc)
        assert not outcome.ok
        waits.append(float(backoff(svc, account.id)["next_at"]) - time.time())
    assert waits[0] < waits[1] < waits[2] <= auto_login.BACKOFF_MAX
    assert len(alerts(svc)) == 1  # after NOTICE_AFTER failures, once for this session
    fake.login_fail_next = []
    allow_now(svc, account.id)
    assert [o.ok for o in auto_login.run_pass(svc)] == [True]
    assert backoff(svc, account.id)["failures"] == "0"


def test_a_session_refused_soon_after_its_login_counts_as_a_failure(svc, fake):
    account = add(svc)
    for _ in range(auto_login.NOTICE_AFTER + 1):
        allow_now(svc, account.id)
        [outcome] = auto_login.run_pass(svc)
        assert outcome.ok
        session = svc.accounts.get(account.id).session
        svc.accounts.mark_session(account.id, SessionState.REFUSED, "refused", session_revision=session.revision)
    assert int(backoff(svc, account.id)["failures"]) == auto_login.NOTICE_AFTER
    assert float(backoff(svc, account.id)["next_at"]) > time.time()  # not at once again: the loop is slowed
    assert len(alerts(svc)) == 1 and "keeps refusing" in alerts(svc)[0]


def test_one_process_at_a_time_logs_an_account_in(svc, fake):
    account = add(svc)
    svc.redis.set(AUTO_LOGIN_PREFIX + account.id + ":lock", "1", ex=60)
    assert auto_login.run_pass(svc) == [] and fake.logins == []


def test_accounts_not_in_use_and_other_brokers_are_left_alone(svc, fake):
    svc.accounts.create("angel", CLIENT, credentials=CREDENTIALS, feed=False, reconcile=False)
    svc.accounts.create("dhan", "1100000001")
    assert auto_login.run_pass(svc) == [] and fake.logins == []


def test_a_dead_token_of_an_account_that_logs_in_by_itself_is_not_announced(svc):
    angel = add(svc)
    dhan = svc.accounts.create("dhan", "1100000001")
    assert login_needed(svc.redis, svc.config, angel, "token expired") is False
    assert login_needed(svc.redis, svc.config, dhan, "token expired") is True
    assert login_needed(svc.redis, svc.config, angel, "automatic login failed: x", automatic=True) is True


def test_the_worker_runs_the_automatic_login_beside_the_expiry_watcher(svc, fake, monkeypatch):
    monkeypatch.setattr(auto_login, "PASS_SECONDS", 0.1)
    account = add(svc)
    stop = threading.Event()
    try:
        sessions.start_session_watcher(svc, stop)
        wait_until(lambda: svc.accounts.get(account.id).session.state == SessionState.ACTIVE, timeout=20)
        session = svc.accounts.get(account.id).session
        svc.accounts.mark_session(account.id, SessionState.EXPIRED, "token expired", session_revision=session.revision)
        svc.redis.hset(AUTO_LOGIN_PREFIX + account.id, "last_login", 0)
        wait_until(lambda: svc.accounts.get(account.id).session.revision == session.revision + 1, timeout=20)
    finally:
        stop.set()
    assert len(fake.logins) == 2


def test_new_credentials_end_the_backoff_of_refused_ones(svc, fake):
    """A wrong PIN fixed on the Accounts page (PATCH credentials) is tried at the next pass, not after the backoff."""
    account = add(svc, pin="0000")
    assert [o.ok for o in auto_login.run_pass(svc)] == [False]
    assert auto_login.run_pass(svc) == []  # backing off
    svc.accounts.update(account.id, credentials={"label_only": None})  # nothing changed: still backing off
    assert auto_login.run_pass(svc) == []
    svc.accounts.update(account.id, credentials={"pin": PIN})
    assert [o.ok for o in auto_login.run_pass(svc)] == [True]
    assert backoff(svc, account.id)["failures"] == "0" and len(fake.logins) == 2
    assert "0000" not in json.dumps(backoff(svc, account.id)) and PIN not in json.dumps(backoff(svc, account.id))


def test_transient_failures_wait_even_with_the_same_credentials(svc, fake):
    account = add(svc)
    fake.login_fail_next = [503]
    assert [o.ok for o in auto_login.run_pass(svc)] == [False]
    svc.accounts.update(account.id, label="renamed")
    assert auto_login.run_pass(svc) == [] and len(fake.logins) == 1
