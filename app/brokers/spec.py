"""What a broker package declares about itself, as plain data every registry is derived from.

Specs import nothing from the rest of the app (app/config.py and app/events.py read them at import
time), so statuses are spelled as strings here; tests/unit/test_registry.py checks them against OrderStatus.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Postback route kinds: the broker signs its body (Kite), or the secret POSTBACK_TOKEN in the path gates it.
SIGNED = "signed"
PATH_TOKEN = "path_token"
#: A status map value meaning "a modification of a live order": a flag, never a resting state (docs/brokers.md §2).
MODIFIED = "MODIFIED"


#: Variable kinds (app/settings.py parses each): text, a URL, seconds (> 0), a positive number, one of `choices`,
#: `key:value,...` pairs.
TEXT = "text"
URL = "url"
SECONDS = "seconds"
NUMBER = "number"
CHOICE = "choice"
PAIRS = "pairs"
KINDS = (TEXT, URL, SECONDS, NUMBER, CHOICE, PAIRS)


@dataclass(frozen=True)
class Variable:
    """One environment variable a broker package reads: its kind, default (as .env.example spells it), doc line."""

    name: str
    default: str = ""
    secret: bool = False
    doc: str = ""
    kind: str = TEXT
    #: The accepted values of a CHOICE ("" among them when unset is allowed).
    choices: tuple[str, ...] = ()


#: How an account's day's session is obtained (docs/interface.md "Accounts"): the broker's redirect login, a TOTP
#: login the service does itself, or a token the trader pastes.
REDIRECT = "redirect"
TOTP = "totp"
PASTE = "paste"
LOGINS = (REDIRECT, TOTP, PASTE)


@dataclass(frozen=True)
class Credential:
    """One field an account of a broker holds (its API key, its secret...), and where the environment's one lives."""

    name: str
    #: The environment variable that holds it for the broker's environment account ("" = accounts as data only).
    variable: str = ""
    secret: bool = True
    doc: str = ""
    #: False when an account may be added without it (it is then taken from the environment or not used).
    required: bool = True


@dataclass(frozen=True)
class AccountSpec:
    """What an account of this broker is: its credentials, how its day's session is obtained and when it ends."""

    credentials: tuple[Credential, ...] = ()
    #: The variable holding the environment account's client id (its `account_id`), "" when the environment
    #: does not name it (Kite: the postbacks and the login answer carry it).
    account_variable: str = ""
    #: The variable holding the environment account's day's token ("" when the broker has none).
    session_variable: str = ""
    #: REDIRECT, TOTP or PASTE.
    login: str = PASTE
    #: "module:Class" of the broker's login (app/brokers/<name>/login.py) for REDIRECT and TOTP logins.
    login_flow: str | None = None
    #: A session ends at this time of day in India (HH:MM IST) after it began, when the broker rolls tokens over daily.
    rollover_ist: str | None = None
    #: Else it lasts this many hours from the login (None: no known expiry).
    session_hours: float | None = None
    #: The broker's docs on the session's lifetime (docs/brokers.md section).
    session_docs: str = ""
    #: A *polled* broker (its push cannot be used): the variable (SECONDS) holding how often each of its accounts'
    #: order books is read; every change then arrives with source "reconcile" (docs/reconcile.md "Polled order
    #: books"). "" for a broker reconciled only every RECONCILE_INTERVAL_SECONDS and on demand.
    poll_variable: str = ""

    @property
    def polled(self) -> bool:
        """True when this broker's accounts are polled instead of pushed to."""
        return bool(self.poll_variable)

    def credential(self, name: str) -> Credential | None:
        """A declared credential by name, or None."""
        return next((c for c in self.credentials if c.name == name), None)


@dataclass(frozen=True)
class FeedSpec:
    """One WebSocket connector, as named in FEEDS; the connector class takes its names and variables from here."""

    name: str
    #: "module:Class" of the connector (imported by the feeds runner only).
    connector: str
    #: The variable holding the socket URL.
    url_variable: str
    #: Variables that must be set for the connector to start (its broker's, declared in `variables`).
    required: tuple[str, ...] = ()
    #: Variables whose values must never appear in the feed's logs or published state (declared secret).
    secret_variables: tuple[str, ...] = ()
    #: True when the feed logs in with an account's credentials (one connection per account); False for a feed
    #: that has its own login (dhan_web's stored browser frame), run once from FEEDS.
    per_account: bool = True


@dataclass(frozen=True)
class BrokerSpec:
    """A broker: its adapter, postback route, feeds, variables, status words and what never leaves the service."""

    name: str
    #: "module:Class" of the adapter.
    adapter: str
    #: SIGNED, PATH_TOKEN, or None when the broker has no HTTP postback.
    postback: str | None
    #: Raw status word (upper case, "_" read as a space) -> normalized status (Jainam also uses MODIFIED).
    status_map: dict[str, str]
    #: Status words that announce a modification of a live order: the event's `modified` flag.
    modify_statuses: frozenset[str] = frozenset()
    feeds: tuple[FeedSpec, ...] = ()
    #: "module:Class" of the REST order-book client (app/brokers/<name>/rest.py), None until it has one.
    rest: str | None = None
    variables: tuple[Variable, ...] = ()
    #: Keys (any spelling that folds to them) whose non-blank values are blanked in every `raw` we show or send.
    redact_keys: tuple[str, ...] = ()
    #: The broker's fields the event's dedup key is computed from (documentation and the registry test).
    key_fields: tuple[str, ...] = ()
    #: The section of docs/brokers.md with this broker's facts.
    docs: str = ""
    #: How /openapi.json sums up the postback route (app/api/openapi.py), when the broker has one.
    postback_summary: str = ""
    #: What an account of this broker is (docs/interface.md "Accounts"); None: accounts cannot be added.
    accounts: AccountSpec | None = None

    @property
    def postback_route(self) -> str | None:
        """The route a trader registers with the broker, or None."""
        return self.postback_path("<POSTBACK_TOKEN>")

    def postback_path(self, token: str) -> str | None:
        """The postback route with `token` as its POSTBACK_TOKEN segment (a signed route has none), or None."""
        if self.postback == SIGNED:
            return f"/postbacks/{self.name}"
        if self.postback == PATH_TOKEN:
            return f"/postbacks/{self.name}/{token}"
        return None


def status_word(raw: object) -> str:
    """A broker status word as compared and keyed: upper case, "_" as a space, runs of spaces folded."""
    return " ".join(str(raw).upper().replace("_", " ").split())
