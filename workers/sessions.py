"""The expiry watcher, run in the `worker` process: a day's session that reaches its known end is marked and
announced, and one that lasts a fixed time is announced ahead (docs/accounts.md, docs/alerts.md).

Every WATCH_SECONDS: each active session whose `expires_at` has passed becomes `expired` ("token expired") and
`login needed: …` is queued. Any number of worker processes may run this without a lock: `mark_session` is
conditional on the session still being active at that revision, so only the process whose update changed the
row announces, and the alert itself is once per session (app/accounts/notices.py). SESSION_WARN_MINUTES
before the end of a session of a broker whose tokens last a fixed time (Dhan's 24 h), `session ends soon: …`
is queued, once per session; a daily-rollover broker (Kite at 06:00 IST) gets no warning ahead, since a login
before the rollover ends at that same rollover: its `login needed` comes at the rollover, before the market
opens. Environment accounts have no known expiry (their token's start is unknown) and are not watched.

At LOGIN_REMINDER_IST on weekdays (default 08:45, 30 minutes before NSE opens), and for the hour after it,
every account added as data with its feed or reconciliation on whose session is not active is announced
once that day: the 06:00 alert may have come while the trader slept.

Beside the watcher runs the automatic login (app/accounts/auto_login.py): an account of a TOTP broker (Angel One)
whose session ends or is refused logs in again by itself, so its expiry is marked here but not announced (its
automatic login announces when it cannot log in).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

import redis
from sqlalchemy.exc import SQLAlchemyError

from app.accounts.auto_login import start_auto_login
from app.accounts.expiry import IST
from app.accounts.model import Account, SessionState
from app.accounts.notices import login_needed, login_reminder, session_expiring
from app.db import utcnow

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

WATCH_SECONDS = 30.0
EXPIRED_WHY = "token expired"
#: How long after LOGIN_REMINDER_IST a worker that was not running at that minute still reminds.
REMINDER_WINDOW = timedelta(hours=1)
#: Monday..Friday (datetime.weekday); exchange holidays are not known here.
TRADING_WEEKDAYS = range(5)


def expire_passed(services: Services, now: datetime | None = None) -> list[Account]:
    """Mark every session whose known expiry passed; the accounts this call marked (each announced once)."""
    marked = []
    for account in services.accounts.expired_sessions(now):
        if services.accounts.mark_session(
            account.id, SessionState.EXPIRED, EXPIRED_WHY, session_revision=account.session.revision
        ):
            login_needed(services.redis, services.config, account, EXPIRED_WHY)
            marked.append(account)
    return marked


def warn_ahead(services: Services, now: datetime | None = None) -> list[Account]:
    """Announce the sessions of fixed-lifetime brokers that end within SESSION_WARN_MINUTES (once per session)."""
    minutes = services.config.alerts.session_warn_minutes
    if not minutes:
        return []
    now = now or utcnow()
    warned = []
    for account in services.accounts.expired_sessions(now + timedelta(minutes=minutes)):
        ends = account.session.expires_at
        if ends is None or ends <= now or account.spec.rollover_ist:
            continue
        if session_expiring(services.redis, services.config, account, f"at {ends.astimezone(IST):%d %b %H:%M} IST"):
            warned.append(account)
    return warned


def remind_before_open(services: Services, now: datetime | None = None) -> list[Account]:
    """In the reminder's window on a weekday, announce each account in use that is not logged in (once a day)."""
    at = services.config.alerts.login_reminder_ist
    if not at:
        return []
    local = (now or utcnow()).astimezone(IST)
    hours, minutes = (int(part) for part in at.split(":"))
    start = datetime.combine(local.date(), time(hours, minutes), tzinfo=IST)
    if local.weekday() not in TRADING_WEEKDAYS or not start <= local < start + REMINDER_WINDOW:
        return []
    reminded = []
    for account in services.accounts.list():
        if (account.feed or account.reconcile) and account.session.state != SessionState.ACTIVE:
            if login_reminder(services.redis, services.config, account, local.date().isoformat()):
                reminded.append(account)
    return reminded


def watch(services: Services, now: datetime | None = None) -> None:
    """One pass; failures are logged and the next pass tries again."""
    try:
        for account in expire_passed(services, now):
            log.info("%s: session expired; login needed", account.describe())
        warn_ahead(services, now)
        remind_before_open(services, now)
    except (redis.RedisError, SQLAlchemyError) as exc:
        log.warning("session expiry watch skipped this pass (%s)", type(exc).__name__)


def start_session_watcher(services: Services, stop: threading.Event) -> threading.Thread:
    """Run `watch` every WATCH_SECONDS until `stop` is set, and the automatic logins beside it (their own thread)."""
    start_auto_login(services, stop)

    def loop() -> None:
        while not stop.wait(WATCH_SECONDS):
            watch(services)

    thread = threading.Thread(target=loop, name="session-expiry", daemon=True)
    thread.start()
    return thread
