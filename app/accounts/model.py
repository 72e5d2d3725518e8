"""An account as the processes hold it, and the view of it that answers and pages may show (no secret in it)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from app.brokers.registry import BY_NAME
from app.brokers.spec import AccountSpec
from app.settings import BrokerSettings
from app.times import utc_iso

#: Where an account comes from: added as data, or a broker's environment variables (read-only).
API = "api"
ENVIRONMENT = "environment"
#: The credential name that, given with an account, is its day's session token (docs/interface.md "Accounts").
SESSION_CREDENTIAL = "access_token"


class SessionState:
    """Values of `session.state` (docs/interface.md "Accounts")."""

    ACTIVE = "active"
    #: The known expiry passed, or the broker said the token is no longer valid.
    EXPIRED = "expired"
    #: The broker refused the token outright (handshake 401/403, a refusing login answer).
    REFUSED = "refused"
    #: No session was ever given.
    MISSING = "missing"


@dataclass(frozen=True)
class Session:
    """The day's session: the token (never shown), its state, when it began and when it ends."""

    token: str = ""
    state: str = SessionState.MISSING
    logged_in_at: datetime | None = None
    expires_at: datetime | None = None
    #: Grows with every new session, so a refusal of an old token never marks a newer one.
    revision: int = 0

    @property
    def usable(self) -> bool:
        """True when a feed or a reconciliation may use the token."""
        return self.state == SessionState.ACTIVE and bool(self.token)


@dataclass(frozen=True)
class Account:
    """One login at one broker; `credentials` and `session.token` are the clear values, held in memory only."""

    id: str
    broker: str
    account_id: str
    label: str = ""
    source: str = API
    feed: bool = True
    reconcile: bool = True
    credentials: dict[str, str] = field(default_factory=dict, repr=False)
    session: Session = field(default_factory=Session, repr=False)
    last_error: str = ""
    last_error_at: datetime | None = None
    #: Grows with every change: a feeds process restarts the account's connection when it moves.
    revision: int = 1
    #: True when the account has its own postback path token (never the token itself).
    has_postback_token: bool = False
    created_at: datetime | None = None

    @property
    def spec(self) -> AccountSpec:
        """What an account of this broker is (app/brokers/<broker>/spec.py)."""
        spec = BY_NAME[self.broker].accounts
        if spec is None:
            raise KeyError(f"accounts of {self.broker} are not supported")
        return spec

    @property
    def read_only(self) -> bool:
        """The environment's account changes only with the environment."""
        return self.source == ENVIRONMENT

    def with_session(self, session: Session) -> Account:
        """A copy holding another session."""
        return replace(self, session=session)

    def variables(self, base: BrokerSettings) -> BrokerSettings:
        """The broker's variables as this account's connector and REST client read them: the environment's
        settings (URLs, heartbeats...) with this account's id, credentials and day's token in place."""
        spec = self.spec
        values = dict(base)
        for credential in spec.credentials:
            if credential.variable and credential.name in self.credentials:
                values[credential.variable] = self.credentials[credential.name]
        if spec.account_variable:
            values[spec.account_variable] = self.account_id
        if spec.session_variable:
            values[spec.session_variable] = self.session.token if self.session.usable else ""
        return base.with_values(values)

    def secrets(self) -> list[str]:
        """Every secret value this account holds, for redaction."""
        spec = self.spec
        values = [v for k, v in self.credentials.items() if (c := spec.credential(k)) is None or c.secret]
        return [v for v in [*values, self.session.token] if v]

    def feed_status_name(self, feed: str) -> str:
        """The name of this account's connection of `feed` in GET /api/feeds and its status hash: the feed's own
        name for the environment's account (as before accounts were data), `<feed>:<id>` for the others."""
        return feed if self.read_only else f"{feed}:{self.id}"

    @property
    def reconcile_name(self) -> str:
        """What reconciliation keys this account's runs, requests, locks and status by: the broker for the
        environment's account (as before), `<broker>:<id>` for the others (app/reconcile)."""
        return self.broker if self.read_only else f"{self.broker}:{self.id}"

    def describe(self) -> str:
        """How alerts and logs name it: `kite AB1234`, the label when there is no client id yet."""
        return f"{self.broker} {self.account_id or self.label or self.id}"


def view(account: Account, **live: Any) -> dict[str, Any]:
    """The account as /api/accounts shows it (docs/interface.md "Accounts"): never a credential or token.
    `live` adds what other stores know (feed_state, last_message_at, last_reconcile)."""
    session = account.session
    spec = BY_NAME[account.broker].accounts
    return {
        "id": account.id,
        "broker": account.broker,
        "account_id": account.account_id,
        "label": account.label,
        "source": account.source,
        "feed": account.feed,
        "reconcile": account.reconcile,
        "session": {
            "state": session.state,
            "logged_in_at": _iso(session.logged_in_at),
            "expires_at": _iso(session.expires_at),
            "login": spec.login if spec else None,
        },
        "credentials_set": sorted(account.credentials),
        "postback_token": account.has_postback_token,
        "feed_state": live.get("feed_state"),
        "last_message_at": live.get("last_message_at"),
        "last_reconcile": live.get("last_reconcile"),
        "last_error": account.last_error or None,
        "last_error_at": _iso(account.last_error_at),
        "read_only": account.read_only,
        "created_at": _iso(account.created_at),
    }


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC, or None."""
    return utc_iso(value) if value is not None else None
