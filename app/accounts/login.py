"""Daily logins by redirect: the broker's login page, then its callback, bound to the login that started it.

`start` issues a random `state` for one account, kept in Redis for STATE_TTL_SECONDS under a key that names
the signed-in browser session that asked for it, and sends the browser to the broker (Kite carries the state
in `redirect_params`, an OAuth2 broker in `state`). `callback` takes the state back once (GETDEL): unknown,
expired, used, or started by another browser session is refused before any code is exchanged. A broker that
sends no state back (Flattrade) is bound to the latest login this browser session started at that broker.
Then the broker's own login class (app/brokers/<name>/login.py) exchanges the code for the day's token, the
account gets its new session (`store.set_session`) and a reconciliation is asked for (docs/accounts.md,
docs/brokers.md "Accounts and daily logins").

A TOTP broker (Angel One) logs in without a browser: `TotpLogin.login` is its hook, which the automatic login
(app/accounts/auto_login.py) calls at each rollover and whenever the session is found expired or refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from app.accounts.model import Account
from app.accounts.store import AccountExists, AccountNotFound, CredentialsUnreadable
from app.brokers.loader import load
from app.brokers.registry import BY_NAME
from app.brokers.spec import REDIRECT
from app.config import Config
from app.reconcile import request_reconcile
from app.redis_keys import LOGIN_STATE_PREFIX

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

#: A login page left open longer than this must be started again (Kite's request_token itself lives minutes).
STATE_TTL_SECONDS = 600
STATE_BYTES = 24
#: Seconds allowed for a broker's token exchange, connect and read each.
EXCHANGE_TIMEOUT = (5.0, 15.0)
MAX_MESSAGE = 200


class LoginRefused(Exception):
    """A login step refused; `str()` is safe to show (never a secret) and says what to do."""

    def __init__(
        self, message: str, status: int = 400, account: Account | None = None, *, transient: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.account = account
        #: True when trying again later may succeed (the broker did not answer, or answered 429/5xx); False when
        #: the broker refused what it was given (app/accounts/auto_login.py then says so at once).
        self.transient = transient


@dataclass(frozen=True)
class LoginResult:
    """What a broker's token exchange gives: the day's token and the broker's own id of the user who logged in."""

    token: str
    user_id: str = ""
    #: When the broker says the token ends (None: the broker's rule, app/accounts/expiry.py).
    expires_at: datetime | None = None


class BrokerLogin:
    """One broker's redirect login: the URL of its login page and the exchange of the code it sends back."""

    broker = ""
    #: True when the broker hands our `state` back on the callback (Kite's redirect_params, OAuth2's state).
    returns_state = True

    def __init__(self, config: Config) -> None:
        self.config = config
        self.variables = config.broker(self.broker)

    def login_url(self, account: Account, state: str) -> str:
        """Where the browser logs in for `account`, carrying `state` when the broker sends it back."""
        raise NotImplementedError

    def state_of(self, query: Mapping[str, str]) -> str:
        """The state the broker sent back in the callback's query ("" when none)."""
        return query.get("state", "")

    def exchange(self, account: Account, query: Mapping[str, str]) -> LoginResult:
        """The callback's code for the day's token; LoginRefused with a readable, secret-free reason."""
        raise NotImplementedError

    def redirect_url(self) -> str:
        """The URL to register with the broker as the app's redirect (docs/interface.md "Accounts")."""
        return self.config.public_base_url.rstrip("/") + f"/brokers/{self.broker}/callback"

    def credential(self, account: Account, name: str) -> str:
        """A credential the login needs; LoginRefused naming it when the account lacks it."""
        value = account.credentials.get(name, "")
        if not value:
            raise LoginRefused(f"this {self.broker} account has no {name}: add it to the account, then log in")
        return value


class TotpLogin:
    """A broker that logs in by itself with a TOTP secret (Angel One): app/accounts/auto_login.py calls `login`."""

    broker = ""

    def __init__(self, config: Config) -> None:
        self.config = config

    def login(self, account: Account) -> LoginResult:
        """Log `account` in without a browser; LoginRefused with a readable reason."""
        raise NotImplementedError


def login_for(config: Config, broker: str) -> BrokerLogin:
    """The redirect login of `broker`; LoginRefused when it has none."""
    spec = BY_NAME.get(broker)
    declared = spec.accounts if spec is not None else None
    if declared is None or declared.login != REDIRECT or not declared.login_flow:
        raise LoginRefused(f"{broker} does not log in by redirect: paste the day's token on the Accounts page")
    return load(declared.login_flow)(config)


def start(services: Services, account: Account, browser_sid: str) -> str:
    """Begin a login of `account` from this browser session: the broker URL to send the browser to."""
    if account.read_only:
        raise LoginRefused(
            "this account comes from the environment: change its token there, or add the account on the "
            "Accounts page to log in from the browser",
            status=409,
        )
    flow = login_for(services.config, account.broker)
    state = secrets.token_urlsafe(STATE_BYTES)
    url = flow.login_url(account, state)
    owner = _owner(browser_sid)
    record = json.dumps({"account": account.id, "broker": account.broker, "state": state})
    pipe = services.redis.pipeline(transaction=True)
    pipe.set(_state_key(owner, state), record, ex=STATE_TTL_SECONDS)
    if not flow.returns_state:
        pipe.set(_latest_key(owner, account.broker), state, ex=STATE_TTL_SECONDS)
    pipe.execute()
    return url


def callback(services: Services, broker: str, query: Mapping[str, str], browser_sid: str | None) -> Account:
    """Finish a login: check the state, exchange the code, store the new session, ask for a reconciliation."""
    flow = login_for(services.config, broker)
    record = _take_state(services, flow, query, browser_sid)
    store = services.accounts
    try:
        account = store.get(record["account"], secrets=True)
    except AccountNotFound:
        raise LoginRefused("the account this login was for no longer exists", status=404) from None
    except CredentialsUnreadable as exc:
        raise LoginRefused(str(exc), status=409) from None
    try:
        result = flow.exchange(account, query)
    except LoginRefused as exc:
        _note(services, account, f"login failed: {exc}")
        exc.account = account
        raise
    if not result.token:
        _note(services, account, f"login failed: {broker} answered without a token")
        raise LoginRefused(f"{broker} answered the login without a token; try again", status=502, account=account)
    if account.account_id and result.user_id and not _same(account.account_id, result.user_id):
        why = (
            f"login refused: {broker} says user {result.user_id[:40]} logged in, but this account is "
            f"{account.account_id}; log in with that account's user id"
        )
        _note(services, account, why)
        raise LoginRefused(why, status=409, account=account)
    try:
        updated = store.set_session(account.id, result.token, expires_at=result.expires_at, account_ref=result.user_id)
    except AccountExists:
        why = (
            f"login refused: {broker} user {result.user_id[:40]} is already another account here; log in there, "
            "or remove one of the two"
        )
        _note(services, account, why)
        raise LoginRefused(why, status=409, account=account) from None
    request_reconcile(services.redis, updated.reconcile_name, "new session")
    log.info("%s logged in (session %d)", updated.describe(), updated.session.revision)
    return updated


def _take_state(services: Services, flow: BrokerLogin, query: Mapping[str, str], browser_sid: str | None) -> dict:
    """The started login this callback belongs to, taken once; LoginRefused (403) for any other."""
    if not browser_sid:
        raise LoginRefused(
            "no signed-in session came with this login: sign in on this browser, then press Log in again", status=403
        )
    owner = _owner(browser_sid)
    state = flow.state_of(query)
    if not state and not flow.returns_state:
        state = (services.redis.getdel(_latest_key(owner, flow.broker)) or b"").decode()
    raw = services.redis.getdel(_state_key(owner, state)) if _plausible(state) else None
    if raw is None:
        raise LoginRefused(
            "this login was not started from this browser's session, was used already, or expired "
            f"({STATE_TTL_SECONDS // 60} minutes): press Log in on the Accounts page again",
            status=403,
        )
    record = json.loads(raw)
    if record.get("broker") != flow.broker or not hmac.compare_digest(str(record.get("state", "")), state):
        raise LoginRefused(f"this login was started for {record.get('broker')}, not {flow.broker}", status=403)
    return record


def _note(services: Services, account: Account, error: str) -> None:
    """Keep the failure on the account, where the Accounts page shows it."""
    services.accounts.note_error(account.id, error[:500])


def _owner(browser_sid: str) -> str:
    """The browser session as login keys name it: a digest, so Redis keys never hold a session id."""
    return hashlib.sha256(browser_sid.encode()).hexdigest()[:32]


def _state_key(owner: str, state: str) -> str:
    """Where one started login waits."""
    return f"{LOGIN_STATE_PREFIX}{owner}:{state}"


def _latest_key(owner: str, broker: str) -> str:
    """The latest login this browser session started at a broker that sends no state back."""
    return f"{LOGIN_STATE_PREFIX}{owner}:latest:{broker}"


def _plausible(state: str) -> bool:
    """A state we could have issued (URL-safe, bounded): anything else is not looked up."""
    return 0 < len(state) <= 64 and all(c.isalnum() or c in "-_" for c in state)


def _same(expected: str, given: str) -> bool:
    """The broker's user id is the account's (case-insensitive, constant time)."""
    return hmac.compare_digest(expected.strip().upper().encode(), given.strip().upper().encode())


def safe_message(text: object, *hidden: str) -> str:
    """A broker's error text fit to show: one line, bounded, with every given secret blanked."""
    message = " ".join(str(text or "").split())[:MAX_MESSAGE]
    for value in hidden:
        if value:
            message = message.replace(value, "***")
    return message
