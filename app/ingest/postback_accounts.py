"""Which account a postback belongs to: an account's own path token, or the Kite app whose api_key it names.

Both are looked up in the accounts table (app/accounts/store.py) and kept in this process for a few
seconds, so a burst of postbacks costs one lookup, and a rotated token or a changed secret stops working
within TOKEN_CACHE_SECONDS / APP_CACHE_SECONDS (docs/accounts.md "Postbacks").
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from math import ceil
from typing import TYPE_CHECKING

import sqlalchemy as sa

from app.accounts.store import POSTBACK_TOKEN_BYTES, CredentialsUnreadable, token_digest
from app.events import OrderEvent
from app.exceptions import AccountsUnavailableError, PostbackError

if TYPE_CHECKING:
    from app.accounts.model import Account
    from app.accounts.store import AccountStore

log = logging.getLogger(__name__)

#: How long an account token's lookup is kept: a rotated or removed token stops working within this.
TOKEN_CACHE_SECONDS = 2.0
#: At most this many tokens are kept (a flood of distinct ones empties the cache instead of growing it).
TOKEN_CACHE_SIZE = 10_000
#: How long the Kite data apps' secrets are kept: a changed api_secret or a removed account takes effect within it.
APP_CACHE_SECONDS = 5.0
#: An app_id that no data account holds reloads the apps at most this often (a flood of made-up app_ids
#: costs one database read per interval, not one per postback).
APP_MISS_INTERVAL_SECONDS = 1.0
#: What `new_postback_token` makes (token_urlsafe: URL-safe base64 without padding); nothing else is looked up.
ACCOUNT_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{{ceil(POSTBACK_TOKEN_BYTES * 4 / 3)}}}")
#: A credential that names the trading account when it differs from the client id (Flattrade's
#: NOREN_ACCOUNT_ID, app/brokers/flattrade/spec.py): a postback naming it is that account's too.
ALIAS_CREDENTIAL = "account"


class AccountMismatchError(PostbackError):
    """The body names another account than the one its URL (or its app's secret) belongs to (403)."""

    status_code = 403


def match_key(account_id: str) -> str:
    """How a broker's client id is compared: surrounding space dropped, ASCII letters in any case
    (client ids are ASCII; a non-ASCII one is compared exactly, so no two distinct ids fold together)."""
    text = account_id.strip()
    return text.upper() if text.isascii() else text


@dataclass(frozen=True)
class PostbackOwner:
    """The account(s) a postback was let in for, and how its account_id is checked against them."""

    #: match_key -> the account_id as the account holds it (what the stored event carries).
    accounts: dict[str, str]
    #: The account_id a body naming none is taken as (None: such a body is refused).
    default: str | None
    #: How refusals name what let the postback in (never a credential: a Kite api_key is one).
    gate: str
    #: What to do about a body naming another account.
    hint: str = "post each account's updates to its own postback URL"

    def claim(self, event: OrderEvent) -> OrderEvent:
        """The event as this owner's: its account_id checked (403 when it names another), a blank one filled in."""
        if not self.accounts:
            raise AccountMismatchError(
                f"no client id is known for {self.gate}, so the account a postback names cannot be checked: "
                "log the account in (the login names it) or add it with its account_id"
            )
        if event.account_id is None:
            if self.default is None:
                raise AccountMismatchError(f"the body names no account, and {self.gate} are several: name one")
            return replace(event, account_id=self.default)
        held = self.accounts.get(match_key(event.account_id))
        if held is None:
            raise AccountMismatchError(f"the body names another account than {self.gate}: {self.hint}")
        return event if held == event.account_id else replace(event, account_id=held)


@dataclass(frozen=True)
class KiteApp:
    """One Kite Connect app as the data accounts hold it: its api_secret and the users added with it."""

    api_key: str
    api_secret: str
    owner: PostbackOwner


def account_ids(account: Account, alias: str = "") -> dict[str, str]:
    """match_key -> account_id for the ids an account goes by (its client id, and its trading account's)."""
    ids = {match_key(value): value.strip() for value in (alias, account.account_id) if value and value.strip()}
    return ids


def token_owner(account: Account, alias: str = "") -> PostbackOwner:
    """The owner of an account's own postback URL: its ids; a body naming none is this account's."""
    ids = account_ids(account, alias)
    return PostbackOwner(accounts=ids, default=account.account_id.strip() or None, gate="this URL's account")


def kite_apps(accounts: Iterable[Account]) -> dict[str, list[KiteApp]]:
    """api_key -> the apps (one per distinct api_secret) of the Kite accounts added as data."""
    grouped: dict[tuple[str, str], list[Account]] = {}
    for account in accounts:
        api_key, api_secret = account.credentials.get("api_key", ""), account.credentials.get("api_secret", "")
        if api_key and api_secret:
            grouped.setdefault((api_key, api_secret), []).append(account)
    apps: dict[str, list[KiteApp]] = {}
    for (api_key, api_secret), members in grouped.items():
        ids: dict[str, str] = {}
        for account in members:
            ids |= account_ids(account)
        # One user on the app: a body naming no user is theirs; several: the body must say which.
        default = next(iter(ids.values())) if len(ids) == 1 and len(members) == 1 else None
        owner = PostbackOwner(
            accounts=ids,
            default=default,
            gate="the accounts of the Kite app whose api_secret signed it",
            hint="add that user's account with this app's api_key and api_secret",
        )
        apps.setdefault(api_key, []).append(KiteApp(api_key, api_secret, owner))
    return apps


class PostbackAccounts:
    """The accounts' postback gates, read through the store and kept for seconds (thread- and greenlet-safe)."""

    def __init__(self, store: AccountStore, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self._tokens: dict[str, tuple[float, str, PostbackOwner]] = {}
        self._apps: dict[str, list[KiteApp]] = {}
        self._apps_loaded_at: float | None = None
        self._apps_lock = threading.Lock()

    # Path tokens

    def by_token(self, broker: str, token: str) -> PostbackOwner | None:
        """The owner of an account's own token for this broker's route, or None (unknown, or another broker's)."""
        if not ACCOUNT_TOKEN.fullmatch(token):
            return None  # never made by new_postback_token: no lookup (hostile or mistyped paths cost nothing)
        digest = token_digest(token)
        now = self.clock()
        cached = self._tokens.get(digest)
        if cached is not None and cached[0] > now:
            _, cached_broker, owner = cached
            return owner if cached_broker == broker else None
        found = self._load_token(token)
        if found is None:
            self._tokens.pop(digest, None)
            return None
        account_broker, owner = found
        if len(self._tokens) >= TOKEN_CACHE_SIZE:
            self._tokens.clear()
        self._tokens[digest] = (now + TOKEN_CACHE_SECONDS, account_broker, owner)
        return owner if account_broker == broker else None

    def _load_token(self, token: str) -> tuple[str, PostbackOwner] | None:
        """(broker, owner) of the account holding this token, from the database."""
        try:
            account = self.store.by_postback_token(token)
            if account is None:
                return None
            alias = ""
            if ALIAS_CREDENTIAL in account.credentials:  # names only: decrypt just when there is an alias
                alias = self.store.get(account.id, secrets=True).credentials.get(ALIAS_CREDENTIAL, "")
        except sa.exc.SQLAlchemyError:
            log.exception("postback token lookup failed")
            raise AccountsUnavailableError(
                "this postback URL's account cannot be looked up now (database unavailable); retry"
            ) from None
        except CredentialsUnreadable:
            log.warning("postback token of an account whose stored credentials do not decrypt")
            raise AccountsUnavailableError(
                "this postback URL's account cannot be read now (its stored credentials do not decrypt with "
                "the configured key); retry once the key is restored"
            ) from None
        return account.broker, token_owner(account, alias)

    # Kite apps

    def kite_apps(self, app_id: str) -> list[KiteApp]:
        """The data accounts' apps whose api_key is `app_id` (reloaded after APP_CACHE_SECONDS, or on a miss
        at most once per APP_MISS_INTERVAL_SECONDS)."""
        now = self.clock()
        loaded_at = self._apps_loaded_at
        fresh = loaded_at is not None and now - loaded_at < APP_CACHE_SECONDS
        if fresh and app_id in self._apps:
            return self._apps[app_id]
        if fresh and now - loaded_at < APP_MISS_INTERVAL_SECONDS:
            return []
        with self._apps_lock:
            if self._apps_loaded_at == loaded_at:  # nobody reloaded while this one waited
                try:
                    self._apps = kite_apps(self._kite_accounts())
                except AccountsUnavailableError:
                    if loaded_at is None:
                        raise
                    return self._apps.get(app_id, [])  # what was read last, until the database answers
                self._apps_loaded_at = self.clock()
        return self._apps.get(app_id, [])

    def _kite_accounts(self) -> list[Account]:
        """The Kite accounts with clear credentials; one whose credentials do not decrypt is left out."""
        try:
            try:
                return self.store.list(broker="kite", secrets=True)
            except CredentialsUnreadable:
                readable = []
                for account in self.store.list(broker="kite"):
                    try:
                        readable.append(self.store.get(account.id, secrets=True))
                    except CredentialsUnreadable:
                        log.warning("kite account %s: credentials do not decrypt; postbacks refused", account.id)
                return readable
        except sa.exc.SQLAlchemyError:
            log.exception("kite apps lookup failed")
            raise AccountsUnavailableError(
                "the Kite accounts cannot be looked up now (database unavailable); retry"
            ) from None
