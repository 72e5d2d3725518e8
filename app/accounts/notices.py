"""What a trader is told about an account's session (docs/accounts.md): once per session, whichever process sees it.

The alert key names the account and its session revision, so the feeds process, a reconciliation run and the
expiry watcher that all notice one dead token queue one line between them (app/alerts `announce` is once per key).
An account that logs in by itself (a TOTP broker's, app/accounts/auto_login.py) is not announced for a dead token:
its automatic login tries first and announces (`automatic=True`) only when it cannot log in.
"""

from __future__ import annotations

import redis

from app.accounts.model import Account
from app.alerts import announce, settings_from
from app.brokers.spec import TOTP
from app.config import Config


def login_needed(client: redis.Redis, config: Config, account: Account, why: str, *, automatic: bool = False) -> bool:
    """`login needed: kite AB1234 (token expired)`; True when this call queued it. For an account that logs in by
    itself only the automatic login's own notice (`automatic=True`) is queued."""
    if logs_in_by_itself(account) and not automatic:
        return False
    key = f"login_needed:{account.id}:{account.session.revision}"
    return announce(client, settings_from(config), "login_needed", key, f"login needed: {account.describe()} ({why})")


def session_expiring(client: redis.Redis, config: Config, account: Account, when: str) -> bool:
    """`session ends soon: kite AB1234 (at 06:00 IST); log in again`; once per session."""
    key = f"session_expiring:{account.id}:{account.session.revision}"
    text = f"session ends soon: {account.describe()} ({when}); log in again"
    return announce(client, settings_from(config), "session_expiring", key, text)


def login_reminder(client: redis.Redis, config: Config, account: Account, day: str) -> bool:
    """`login needed before the market opens: kite AB1234 (session expired)`; once per account and day."""
    key = f"login_reminder:{account.id}:{day}"
    text = f"login needed before the market opens: {account.describe()} (session {account.session.state})"
    return announce(client, settings_from(config), "login_needed", key, text)


def logs_in_by_itself(account: Account) -> bool:
    """An account added as data whose broker declares a TOTP login flow: the service keeps its session itself."""
    spec = account.spec
    return not account.read_only and spec.login == TOTP and bool(spec.login_flow)
