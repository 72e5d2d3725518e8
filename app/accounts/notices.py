"""What a trader is told about an account's session (docs/accounts.md): once per session, whichever process sees it.

The alert key names the account and its session revision, so the feeds process, a reconciliation run and the
expiry watcher that all notice one dead token queue one line between them (app/alerts `announce` is once per key).
"""

from __future__ import annotations

import redis

from app.accounts.model import Account
from app.alerts import announce, settings_from
from app.config import Config


def login_needed(client: redis.Redis, config: Config, account: Account, why: str) -> bool:
    """`login needed: kite AB1234 (token expired)`; True when this call queued it."""
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
