"""The shared WebSocket connector: connect, log in, keep alive, normalize, queue, reconnect.

Every broker's feed.py (app/brokers/<name>/) fills in a few hooks (URL, login frames, keepalive, how a frame holds order
updates); this class owns the rest, the same for all:

- each order update goes through the broker adapter's `event_from_payload` (source "websocket") and
  `ingestor.submit`, the one atomic dedup + enqueue step a postback also takes, so the same update by
  postback and by WebSocket is one event (docs/interface.md);
- after any drop it reconnects with exponential backoff and jitter; an authentication refusal (HTTP
  401/403 at the handshake, a refusing login answer, or a policy/auth close code) stops the retries and
  says so, since retrying a refused token only gets an account locked; an account added as data has its
  session marked refused (one alert asks for a login) and is tried again at most every
  FEEDS_AUTH_RETRY_SECONDS until a new session replaces the connector (docs/feeds.md);
- a connector serves one account (`account=`): the broker's variables with that account's id,
  credentials and token in place (Account.variables), its own status name and reconciliation name;
- dials are paced per broker (`connect_rate`, FEEDS_CONNECT_RATE), so 500 accounts reconnecting after an
  outage never exceed the broker's limit on logins;
- tokens, URLs with tokens and login frames are never logged: every error text is redacted first and
  the `websockets` library logger is held at WARNING (its DEBUG lines carry the request line and frames);
- state goes to a Redis hash per connector (app/brokers/feed_status.py) for `GET /api/feeds`.

docs/brokers.md §1: there is no replay after a reconnect; reconciling against the REST order
book is not done here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.accounts.model import Account, SessionState
from app.accounts.notices import login_needed
from app.brokers.feed_status import FeedState, StatusPublisher
from app.brokers.registry import FEED_BROKERS
from app.brokers.spec import FeedSpec
from app.config import FeedSettings
from app.exceptions import NotDurableError, PostbackError
from app.times import utc_now_iso

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger("workers.feeds")

# The library's DEBUG output includes the handshake request line (Kite's token is in the query) and
# frame contents (the Dhan web login frame): keep it at WARNING whatever the root level is.
WIRE_LOG = logging.getLogger("workers.feeds.wire")
WIRE_LOG.setLevel(logging.WARNING)

#: HTTP answers to the WebSocket handshake that mean "these credentials are refused".
AUTH_HTTP_STATUSES = frozenset({401, 403})
#: Close codes that mean the same: 1008 policy violation and the customary 4001/4003/4401/4403.
AUTH_CLOSE_CODES = frozenset({1008, 4001, 4003, 4401, 4403})
#: A session that lasted this long resets the backoff to its base.
STABLE_SESSION_SECONDS = 60.0
MAX_ERROR_LENGTH = 300
#: RFC 6455 code for a connection lost without a close frame.
ABNORMAL_CLOSURE = 1006


#: Called as hook(status_name, reconcile_name) in a worker thread after every (re)connect: brokers never replay
#: what was missed while a feed was down (docs/brokers.md §1), so reconciliation of that account hangs here
#: (add_connected_hook). For the environment's account the names are the feed and the broker (`kite`, `kite`).
_CONNECTED_HOOKS: list[Callable[[str, str], object]] = []

#: broker -> the loop time before which its next dial may not start (pace_connect).
_NEXT_DIAL: dict[str, float] = {}


def add_connected_hook(hook: Callable[[str, str], object]) -> None:
    """Run `hook(status_name, reconcile_name)` after each successful (re)connect and login of any feed here."""
    _CONNECTED_HOOKS.append(hook)


def remove_connected_hook(hook: Callable[[str, str], object]) -> None:
    """Undo add_connected_hook (tests, shutdown)."""
    if hook in _CONNECTED_HOOKS:
        _CONNECTED_HOOKS.remove(hook)


async def pace_connect(broker: str, rate: float) -> None:
    """Wait for this broker's next dial slot: at most `rate` dials per second from this process (docs/feeds.md)."""
    now = asyncio.get_running_loop().time()
    slot = max(now, _NEXT_DIAL.get(broker, 0.0))
    if slot - now > 3600:  # a slot from another event loop's clock (tests run several loops)
        slot = now
    _NEXT_DIAL[broker] = slot + 1.0 / rate
    if slot > now:
        await asyncio.sleep(slot - now)


class FeedAuthError(Exception):
    """The broker refused the credentials: retrying cannot help until they change."""


class FeedDisconnected(Exception):
    """The connection ended (closed by the broker, keepalive unanswered...): reconnect."""


def backoff_delay(attempt: int, base: float, maximum: float) -> float:
    """Exponential backoff with "equal jitter": half the capped delay fixed, half random."""
    cap = min(maximum, base * (2 ** min(attempt, 32)))
    return cap / 2 + random.uniform(0, cap / 2)


def with_query(url: str, **params: str) -> str:
    """The URL with query parameters added (existing ones kept; ours win on a clash)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def json_text(value: Any) -> str:
    """Compact JSON, as the brokers' docs spell their frames (docs/brokers.md)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def parse_json(message: str | bytes) -> Any:
    """A frame's JSON (text or UTF-8 bytes); ValueError when it is not JSON."""
    text = message.decode("utf-8") if isinstance(message, bytes) else message
    return json.loads(text)


class FeedConnector:
    """One broker WebSocket: subclasses declare their spec and fill in the hooks below."""

    #: The feed's declaration in its broker's spec.py; the names and variables below are derived from it.
    spec: ClassVar[FeedSpec | None] = None
    #: Connector name, as listed in FEEDS.
    name: ClassVar[str] = ""
    #: Adapter that normalizes this feed's updates (services.adapters key): the broker whose spec lists the feed.
    broker: ClassVar[str] = ""
    #: The variable holding the WebSocket URL (defaults to the broker's real address, its spec.py).
    url_variable: ClassVar[str] = ""
    #: Variables that must be set for the connector to start.
    required: ClassVar[tuple[str, ...]] = ()
    #: Variables whose values must never appear in logs or in the published state.
    secret_variables: ClassVar[tuple[str, ...]] = ()
    #: websockets' own ping interval (None: the connector keeps the connection alive itself); the settings'
    #: FEEDS_PING_SECONDS replaces the figure. A ping unanswered that long closes a mute socket (reconnect).
    ping_interval: ClassVar[float | None] = 20.0
    #: Origin header to send (the Dhan web feed expects its web app's).
    origin: ClassVar[str | None] = None
    #: What the user must do after an authentication refusal.
    auth_hint: ClassVar[str] = "renew the credentials and restart the feeds process"
    #: Dials (handshake + login) per second this process makes to the broker, unless FEEDS_CONNECT_RATE says
    #: otherwise: a conservative figure where the broker documents none (docs/feeds.md "Pacing").
    connect_rate: ClassVar[float] = 10.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Take the names and variables from the spec a subclass declares, and its broker from the registry."""
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is None:
            return
        if spec.name not in FEED_BROKERS:
            raise TypeError(f"{cls.__name__}: the {spec.name!r} feed is in no spec of app/brokers/registry.py SPECS")
        cls.name = spec.name
        cls.broker = FEED_BROKERS[spec.name]
        cls.url_variable = spec.url_variable
        cls.required = spec.required
        cls.secret_variables = spec.secret_variables

    def __init__(
        self,
        services: Services,
        stop: asyncio.Event,
        settings: FeedSettings | None = None,
        *,
        account: Account | None = None,
    ) -> None:
        self.services = services
        self.config = services.config
        self.stop = stop
        self.settings = settings or services.config.feed_settings
        #: The account this connection logs in as (None: the broker's environment variables, as before accounts).
        self.account = account
        base = services.config.broker(self.broker)
        #: This broker's declared variables, typed (app/brokers/<name>/spec.py), with the account's values in place.
        self.variables = account.variables(base) if account is not None else base
        #: The connection's name in GET /api/feeds and its status hash (`kite`, or `kite:acc_…` for a data account).
        self.status_name = account.feed_status_name(self.name) if account is not None else self.name
        #: What a (re)connect asks to reconcile: the account (`kite:acc_…`), or the broker for the environment's.
        self.reconcile_name = account.reconcile_name if account is not None else self.broker
        self.status = StatusPublisher(services.redis, self.status_name, self.broker, self._identity())
        #: Set to drop the current connection and reconnect at once (dhan_web: a new login frame).
        self.wake = asyncio.Event()
        self.attempt = 0
        self._runtime_secrets: set[str] = set(account.secrets()) if account is not None else set()
        self.load_settings()

    @property
    def library_ping(self) -> float | None:
        """The library ping's interval and timeout: FEEDS_PING_SECONDS, or None where the connector pings itself."""
        return None if self.ping_interval is None else self.settings.ping_seconds

    def _identity(self) -> dict[str, str]:
        """The status hash's fields naming the feed and, for an account's connection, the account."""
        identity = {"feed": self.name}
        if self.account is not None:
            identity |= {"account": self.account.id, "account_id": self.account.account_id}
        return identity

    @property
    def label(self) -> str:
        """How logs name this connection: the feed, and the account for a data account's (never a secret)."""
        return self.status_name

    @property
    def data_account(self) -> Account | None:
        """The account when it is one added as data (its session can be marked refused), else None."""
        return self.account if self.account is not None and not self.account.read_only else None

    # Subclass implementation:

    def load_settings(self) -> None:
        """Take connector-specific settings from `self.variables` (load_config checked them)."""

    async def url(self) -> str:
        """The URL to connect to (may call the broker first, as Jainam's token does)."""
        return self.variables[self.url_variable]

    async def login(self, ws: ClientConnection) -> None:
        """Send the login/subscribe frames and wait for an acknowledgement where the broker sends one."""

    def keepalives(self, ws: ClientConnection) -> list[Coroutine[Any, Any, None]]:
        """Coroutines that keep the connection alive while it is open (heartbeats, pings)."""
        return []

    def order_payloads(self, message: str | bytes) -> list[dict[str, Any]]:
        """The order updates a frame carries ([] for acks, market data, other types); ValueError if garbled."""
        raise NotImplementedError(f"{type(self).__name__} must implement order_payloads()")

    async def prepare(self) -> bool:
        """Before each attempt: False to skip it (the hook waited for what was missing)."""
        return True

    async def after_auth_failure(self) -> bool:
        """After a refusal: True to try again (the hook waited for new credentials), False to stop."""
        return False

    # Shared steps:

    @property
    def adapter(self):
        """This feed's broker adapter."""
        return self.services.adapters[self.broker]

    def missing_settings(self) -> list[str]:
        """Required variables that are not set."""
        return [name for name in self.required if not self.variables[name]]

    def add_secret(self, value: str) -> None:
        """Redact a value learnt at run time (e.g. a session token) from every message."""
        if value:
            self._runtime_secrets.add(value)

    def redact(self, text: str) -> str:
        """The text with every known secret replaced by ***."""
        secrets = {self.variables[name] for name in self.secret_variables} | self._runtime_secrets
        spellings = {form for s in secrets if len(s) >= 4 for form in (s, quote(s, safe=""), quote_plus(s))}
        for secret in sorted(spellings, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def describe(self, exc: BaseException) -> str:
        """A short, redacted account of what went wrong, fit for logs and the API."""
        if isinstance(exc, (FeedAuthError, FeedDisconnected)):
            text = str(exc)
        elif isinstance(exc, InvalidStatus):
            text = f"the broker answered the WebSocket handshake with HTTP {exc.response.status_code}"
        elif isinstance(exc, TimeoutError):
            text = f"timed out ({exc})" if str(exc) else "timed out"
        else:
            text = f"{type(exc).__name__}: {exc}"
        return self.redact(text)[:MAX_ERROR_LENGTH]

    async def run(self) -> None:
        """Connect, serve, and reconnect until stopped, refused, or misconfigured."""
        await self.status.reset()
        missing = self.missing_settings()
        if missing:
            message = f"not started: set {', '.join(missing)}"
            log.error("%s feed %s", self.label, message)
            await self.status.update(state=FeedState.MISCONFIGURED, last_error=message, last_error_at=utc_now_iso())
            return
        log.info("%s feed starting", self.label)
        try:
            await self._loop()
        finally:
            await self.status.update(connected=False)

    async def _loop(self) -> None:
        """The reconnect loop."""
        while not self.stop.is_set():
            self.wake.clear()
            await self.status.update(state=FeedState.RUNNING, connected=False)
            if not await self.prepare():
                continue
            started = asyncio.get_running_loop().time()
            try:
                interrupted = await self._race(self.session())
            except FeedAuthError as exc:
                if not await self._auth_refused(exc):
                    return
                continue
            except Exception as exc:  # noqa: BLE001 - any drop means reconnect; the reason is published
                error: str | None = self.describe(exc)
            else:
                error = None if interrupted else "the broker closed the connection"
            await self.status.update(connected=False)
            if self.stop.is_set():
                break
            if self.wake.is_set():
                log.info("%s feed: reconnecting with the new credentials", self.label)
                await self.status.count("reconnects", last_error=error)
                continue
            await self._back_off(error or "connection ended", asyncio.get_running_loop().time() - started)
        await self.status.update(state=FeedState.STOPPED, connected=False)
        log.info("%s feed stopped", self.label)

    async def _auth_refused(self, exc: FeedAuthError) -> bool:
        """Publish the refusal loudly; True when the connector should carry on (after_auth_failure)."""
        message = self.describe(exc)
        self.attempt = 0
        account = self.data_account
        if account is not None:
            return await self._session_refused(account, message)
        log.error(
            "%s feed: AUTHENTICATION REFUSED by the broker (%s); not retrying: %s", self.label, message, self.auth_hint
        )
        await self.status.update(
            state=FeedState.AUTH_FAILED, connected=False, last_error=message, last_error_at=utc_now_iso()
        )
        return await self.after_auth_failure()

    async def _session_refused(self, account: Account, message: str) -> bool:
        """A data account's token refused: its session is marked (one alert asks for a login), then one more try
        after FEEDS_AUTH_RETRY_SECONDS at most; a new session restarts the connector sooner (workers/feeds)."""
        expired = account.session.expires_at is not None and account.session.expires_at <= datetime.now(UTC)
        state = SessionState.EXPIRED if expired else SessionState.REFUSED
        hint = f"log in again for {account.describe()} (Accounts page); trying again in {self.settings.auth_retry:g} s"
        log.error("%s feed: the broker REFUSED the session (%s); %s", self.label, message, hint)
        await self.status.update(
            state=FeedState.AUTH_FAILED, connected=False, last_error=message, last_error_at=utc_now_iso()
        )
        try:
            await asyncio.to_thread(self._mark_session, account, state, message)
        except Exception:  # noqa: BLE001 - the database away must not end the connector; the retry waits anyway
            log.exception("%s feed: could not record the refused session", self.label)
        await self.pause(self.settings.auth_retry)
        return not self.stop.is_set()

    def _mark_session(self, account: Account, state: str, message: str) -> None:
        """mark_session for the session this connector was given; the first to mark it queues the alert."""
        store = self.services.accounts
        if store.mark_session(account.id, state, message, session_revision=account.session.revision):
            why = "token expired" if state == SessionState.EXPIRED else f"the {self.name} feed's login was refused"
            login_needed(self.services.redis, self.config, account, why)

    async def _back_off(self, error: str, session_seconds: float) -> None:
        """Count the reconnect, publish why, then wait (stop or wake cut the wait short)."""
        if session_seconds >= STABLE_SESSION_SECONDS:
            self.attempt = 0
        delay = backoff_delay(self.attempt, self.settings.backoff_base, self.settings.backoff_max)
        self.attempt += 1
        log.warning("%s feed: %s; reconnecting in %.2f s", self.label, error, delay)
        await self.status.count("reconnects", last_error=error, last_error_at=utc_now_iso())
        await self.pause(delay)

    async def pause(self, seconds: float) -> None:
        """Sleep, but return early on stop or wake."""
        await self._first_of(asyncio.sleep(seconds), timeout=None)

    async def wait_for_wake(self) -> None:
        """Block until woken (new credentials) or stopped."""
        await self._first_of(None, timeout=None)

    async def _first_of(self, work: Awaitable[Any] | None, *, timeout: float | None) -> None:
        """Wait for `work`, stop or wake, whichever comes first."""
        tasks = [asyncio.ensure_future(self.stop.wait()), asyncio.ensure_future(self.wake.wait())]
        if work is not None:
            tasks.append(asyncio.ensure_future(work))
        try:
            await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _race(self, session: Coroutine[Any, Any, None]) -> bool:
        """Run a session until it ends (its exception propagates) or stop/wake interrupts it (True)."""
        task = asyncio.ensure_future(session)
        waiters = [asyncio.ensure_future(self.stop.wait()), asyncio.ensure_future(self.wake.wait())]
        try:
            done, _ = await asyncio.wait([task, *waiters], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            if not task.done():
                task.cancel()
            await asyncio.gather(task, *waiters, return_exceptions=True)
        if task in done:
            task.result()
            return False
        return True

    async def session(self) -> None:
        """One connection: open, log in, then read and keep alive until it ends."""
        await pace_connect(self.broker, self.settings.connect_rate or self.connect_rate)
        url = await self.url()
        try:
            async with connect(url, **self.connect_options()) as ws:
                await asyncio.wait_for(self.login(ws), timeout=self.settings.login_timeout)
                self.raise_if_refused(ws)
                await self.status.update(connected=True, connected_at=utc_now_iso())
                log.info("%s feed connected", self.label)
                await self._announce_connected()
                await self._serve(ws)
        except InvalidStatus as exc:
            if exc.response.status_code in AUTH_HTTP_STATUSES:
                raise FeedAuthError(f"the broker refused the connection with HTTP {exc.response.status_code}") from None
            raise
        except ConnectionClosed as exc:
            raise self.closed_error(exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else "") from None

    async def _announce_connected(self) -> None:
        """Run the connected hooks off the loop; a failing hook is logged, never costs the connection."""
        for hook in list(_CONNECTED_HOOKS):
            try:
                await asyncio.to_thread(hook, self.status_name, self.reconcile_name)
            except Exception:  # noqa: BLE001 - a hook's bug must not drop the feed
                log.exception("%s feed: a connected hook failed", self.label)

    def connect_options(self) -> dict[str, Any]:
        """websockets.connect options: timeouts, keepalive, the muted wire logger."""
        return {
            "open_timeout": self.settings.connect_timeout,
            "ping_interval": self.library_ping,
            "ping_timeout": self.library_ping,
            "close_timeout": 2,
            "max_size": 2**20,
            "origin": self.origin,
            "logger": WIRE_LOG,
        }

    async def _serve(self, ws: ClientConnection) -> None:
        """Read frames while the keepalives run; whichever ends first ends the session."""
        tasks = [asyncio.ensure_future(self._read(ws))]
        tasks += [asyncio.ensure_future(keepalive) for keepalive in self.keepalives(ws)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()

    async def _read(self, ws: ClientConnection) -> None:
        """Handle every frame; when the broker closes, say how (an auth close code stops retries)."""
        async for message in ws:
            await self.on_message(message)
        self.raise_if_refused(ws)
        raise self.closed_error(ws.close_code, ws.close_reason or "")

    def raise_if_refused(self, ws: ClientConnection) -> None:
        """A connection the broker already closed with an auth code is a refusal."""
        if ws.close_code in AUTH_CLOSE_CODES:
            raise self.closed_error(ws.close_code, ws.close_reason or "")

    def closed_error(self, code: int | None, reason: str) -> Exception:
        """The exception for a close: FeedAuthError for auth close codes, else FeedDisconnected."""
        if code is None or code == ABNORMAL_CLOSURE:
            return FeedDisconnected("the connection dropped without a closing handshake")
        detail = f"code {code}" + (f", {reason[:120]!r}" if reason else "")
        if code in AUTH_CLOSE_CODES:
            return FeedAuthError(f"the broker closed the connection refusing the login ({detail})")
        return FeedDisconnected(f"the broker closed the connection ({detail})")

    async def on_message(self, message: str | bytes) -> None:
        """One frame: count it, pull out its order updates, queue each."""
        await self.status.count("messages", last_message_at=utc_now_iso())
        try:
            payloads = self.order_payloads(message)
        except (ValueError, TypeError, AttributeError) as exc:
            await self._invalid(f"a frame that is not a valid message ({type(exc).__name__})")
            return
        raw = message if isinstance(message, bytes) else message.encode("utf-8")
        for payload in payloads:
            await self.ingest(payload, raw)

    async def ingest(self, payload: dict[str, Any], raw: bytes) -> None:
        """Normalize through the adapter and queue through the one dedup + enqueue step."""
        try:
            event = self.adapter.event_from_payload(payload, source="websocket", received_at=utc_now_iso())
        except PostbackError as exc:
            await self._invalid(exc.message)
            return
        except Exception as exc:  # noqa: BLE001 - one odd update must not cost the connection
            log.exception("%s feed: the %s adapter failed on an update", self.label, self.broker)
            await self._invalid(f"the adapter failed ({type(exc).__name__})")
            return
        is_new = await self.submit(event, raw)
        if is_new is not None:
            await self.status.count("events" if is_new else "duplicates", last_event_at=utc_now_iso())

    async def submit(self, event: Any, raw: bytes) -> bool | None:
        """ingestor.submit off the loop; while Redis is away, hold the update and retry (a feed cannot replay)."""
        attempt = 0
        while True:
            try:
                return await asyncio.to_thread(self.services.ingestor.submit, event, raw)
            except NotDurableError as exc:
                if self.stop.is_set():
                    log.error("%s feed: update for order %s LOST at shutdown: %s", self.label, event.order_id, exc)
                    return None
                delay = backoff_delay(attempt, self.settings.backoff_base, self.settings.backoff_max)
                attempt += 1
                log.error("%s feed: %s; holding order %s, retry in %.1f s", self.label, exc, event.order_id, delay)
                await self._first_of(asyncio.sleep(delay), timeout=None)

    async def _invalid(self, message: str) -> None:
        """A frame or update that could not be used: logged and counted, never fatal."""
        text = self.redact(message)[:MAX_ERROR_LENGTH]
        log.warning("%s feed: skipped an update: %s", self.label, text)
        await self.status.count("invalid", last_invalid=text, last_invalid_at=utc_now_iso())

    async def receive_json(self, ws: ClientConnection, accept: Callable[[Any], bool]) -> Any:
        """The next JSON frame for which `accept` is true (others are skipped); the caller bounds the wait."""
        while True:
            message = await ws.recv()
            try:
                data = parse_json(message)
            except ValueError:
                continue
            if accept(data):
                return data

    async def repeat(self, interval: float, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` every `interval` seconds, on time (not drifting by the time each send takes)."""
        loop = asyncio.get_running_loop()
        due = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            await action()
            due += interval
