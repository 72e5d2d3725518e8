"""Automatic logins (docs/accounts.md "Automatic logins"): an account whose broker logs in by TOTP gets its day's
session by itself, from its stored credentials, with no browser and nobody awake.

Every PASS_SECONDS (in the worker process, beside the expiry watcher of workers/sessions.py), each account added as
data, of a broker whose AccountSpec declares `login=TOTP` and a `login_flow` (a `TotpLogin`), with its feed or its
reconciliation on, is *due* when its session is not active (missing, refused, expired) or its known expiry has
passed (the daily rollover). A due account is logged in through its broker's `TotpLogin.login`; the new session
is stored (`set_session`: its feed reconnects within 10 s) and a reconciliation asked for. Generic: a later Noren
QuickAuth broker declares the same two fields and needs nothing here.

Failures back off per account (BACKOFF_BASE doubling to BACKOFF_MAX, kept in Redis so every worker sees it; after the
broker refused the credentials, only until they are given again: a digest tells new ones from the refused), and so
does a session that the broker refused again within SHORT_SESSION of our login (a loop of login, refusal, login
would otherwise hammer the broker and can lock the account). Trouble is announced once per session through
`login_needed(..., automatic=True)`: at once when the broker refused the credentials (a wrong PIN or TOTP secret
stays wrong), else after NOTICE_AFTER failures in a row. Any number of workers may run this: a Redis lock per account
lets one of them log it in at a time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import redis
from sqlalchemy.exc import SQLAlchemyError

from app.accounts.login import LoginRefused, TotpLogin
from app.accounts.model import Account, SessionState
from app.accounts.notices import login_needed
from app.accounts.store import AccountExists, AccountNotFound, CredentialsUnreadable
from app.brokers.loader import load
from app.brokers.registry import SPECS
from app.brokers.spec import TOTP
from app.db import utcnow
from app.reconcile import request_reconcile
from app.redis_keys import AUTO_LOGIN_PREFIX

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

#: How often due accounts are looked for (one query per TOTP broker); an account added without a token logs in
#: within this.
PASS_SECONDS = 5.0
#: The first wait after a failure, doubled per failure up to BACKOFF_MAX.
BACKOFF_BASE = 30.0
BACKOFF_MAX = 1800.0
#: Failures in a row (transient ones, or sessions refused soon after the login) before a trader is told.
NOTICE_AFTER = 3
#: A session refused sooner than this after our login did not last: the next login waits as after a failure.
SHORT_SESSION = 600.0
#: Held while one process logs an account in (longer than a login's timeouts).
LOCK_SECONDS = 60


@dataclass(frozen=True)
class Outcome:
    """What one automatic login of one account did: `ok`, or the reason it failed (never a secret)."""

    account: str
    ok: bool
    error: str = ""


def totp_flows() -> dict[str, str]:
    """broker -> "module:Class" of its TotpLogin, for every broker that logs in by TOTP."""
    return {
        spec.name: spec.accounts.login_flow
        for spec in SPECS
        if spec.accounts is not None and spec.accounts.login == TOTP and spec.accounts.login_flow
    }


def is_due(account: Account, now: datetime) -> bool:
    """In use, and without a usable session: none yet, refused, expired, or past its known expiry."""
    if not (account.feed or account.reconcile):
        return False
    session = account.session
    if session.state != SessionState.ACTIVE:
        return True
    return session.expires_at is not None and session.expires_at <= now


def run_pass(services: Services, now: datetime | None = None) -> list[Outcome]:
    """Log in every due account whose backoff allows it (and no other process is logging it in)."""
    flows = totp_flows()
    if not flows:
        return []
    now = now or utcnow()
    outcomes = []
    for broker, flow in flows.items():
        for account in services.accounts.list(broker=broker):  # the TOTP brokers' rows only
            if is_due(account, now):
                outcome = attempt(services, account, flow)
                if outcome is not None:
                    outcomes.append(outcome)
    return outcomes


def attempt(services: Services, account: Account, flow: str) -> Outcome | None:
    """One login of `account` now, unless it is backing off or locked (None then)."""
    client = services.redis
    key = AUTO_LOGIN_PREFIX + account.id
    record = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
    clock = time.time()
    if clock < float(record.get("next_at") or 0) and not _credentials_changed(services, account, record):
        return None
    if not client.set(key + ":lock", "1", nx=True, ex=LOCK_SECONDS):
        return None
    try:
        return _login(services, account, flow, record, clock)
    finally:
        client.delete(key + ":lock")


def _credentials_changed(services: Services, account: Account, record: dict[str, str]) -> bool:
    """After the broker refused the credentials: True once they were given again (the backoff is then over)."""
    refused = record.get("refused_credentials")
    if not refused:
        return False
    try:
        current = credentials_digest(services.accounts.get(account.id, secrets=True))
    except (AccountNotFound, CredentialsUnreadable):
        return False
    if hmac.compare_digest(current, refused):
        return False
    services.redis.hset(AUTO_LOGIN_PREFIX + account.id, mapping={"failures": 0, "refused_credentials": ""})
    return True


def credentials_digest(account: Account) -> str:
    """A digest of an account's credentials (read with secrets): tells new ones from the refused ones, holds none."""
    return hashlib.sha256(json.dumps(account.credentials, sort_keys=True).encode()).hexdigest()


def _login(services: Services, account: Account, flow: str, record: dict[str, str], clock: float) -> Outcome:
    """The login proper, with its bookkeeping: failures, the next allowed time, the notice."""
    failures = int(services.redis.hget(AUTO_LOGIN_PREFIX + account.id, "failures") or 0)
    last_login = float(record.get("last_login") or 0)
    refused_soon = account.session.state in (SessionState.REFUSED, SessionState.EXPIRED) and (
        0 < clock - last_login < SHORT_SESSION
    )
    if refused_soon:
        failures += 1  # the session our last login made was refused at once: it counts as a failure
    full: Account | None = None
    try:
        full = services.accounts.get(account.id, secrets=True)
        login: TotpLogin = load(flow)(services.config)
        result = login.login(full)
        if not result.token:
            raise LoginRefused(f"{account.broker} answered the login without a token", transient=True)
        updated = services.accounts.set_session(
            account.id, result.token, expires_at=result.expires_at, account_ref=result.user_id
        )
    except (LoginRefused, CredentialsUnreadable, AccountExists) as exc:
        transient = getattr(exc, "transient", False)
        refused = credentials_digest(full) if full is not None and not transient else ""
        return _failed(services, account, failures + 1, str(exc), transient=transient, refused=refused)
    except AccountNotFound:
        return Outcome(account.id, False, "the account was removed")
    _save(services, account, failures=failures if refused_soon else 0, clock=clock, last_login=clock)
    services.redis.hset(AUTO_LOGIN_PREFIX + account.id, "refused_credentials", "")
    if refused_soon and failures >= NOTICE_AFTER:
        why = f"the broker keeps refusing the automatic login's sessions ({failures} in a row)"
        login_needed(services.redis, services.config, updated, why, automatic=True)
    request_reconcile(services.redis, updated.reconcile_name, "automatic login")
    log.info("%s logged in automatically (session %d)", updated.describe(), updated.session.revision)
    return Outcome(account.id, True)


def _failed(
    services: Services, account: Account, failures: int, error: str, *, transient: bool, refused: str = ""
) -> Outcome:
    """Record a failed login: on the account (the Accounts page shows it), the backoff (over early once credentials
    the broker refused are given again), and the notice when due."""
    message = f"automatic login failed: {error}"[:500]
    log.warning("%s: %s (failure %d)", account.describe(), message, failures)
    _save(services, account, failures=failures, clock=time.time())
    services.redis.hset(AUTO_LOGIN_PREFIX + account.id, "refused_credentials", refused)
    try:
        services.accounts.note_error(account.id, message)
    except AccountNotFound:
        pass
    if not transient or failures >= NOTICE_AFTER:
        login_needed(services.redis, services.config, account, message, automatic=True)
    return Outcome(account.id, False, message)


def _save(
    services: Services, account: Account, *, failures: int, clock: float, last_login: float | None = None
) -> None:
    """The account's backoff: failures so far and when the next login may start."""
    fields = {"failures": failures, "next_at": clock + backoff_seconds(failures)}
    if last_login is not None:
        fields["last_login"] = last_login
    services.redis.hset(AUTO_LOGIN_PREFIX + account.id, mapping=fields)


def backoff_seconds(failures: int) -> float:
    """No wait before a first try; BACKOFF_BASE after one failure, doubling, at most BACKOFF_MAX."""
    if failures <= 0:
        return 0.0
    return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(failures - 1, 20))


def watch(services: Services) -> list[Outcome]:
    """One pass; the database or Redis away skips it (the next pass tries again)."""
    try:
        return run_pass(services)
    except (redis.RedisError, SQLAlchemyError) as exc:
        log.warning("automatic logins skipped this pass (%s)", type(exc).__name__)
        return []


def start_auto_login(services: Services, stop: threading.Event) -> threading.Thread:
    """Run `watch` every PASS_SECONDS until `stop` is set (the first pass one period after start-up, as the expiry
    watcher's, while the processes started beside it settle)."""

    def loop() -> None:
        while not stop.wait(PASS_SECONDS):
            watch(services)

    thread = threading.Thread(target=loop, name="auto-login", daemon=True)
    thread.start()
    return thread
