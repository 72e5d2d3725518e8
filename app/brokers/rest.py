"""What every broker's REST order-book client shares: one session with retries, a rate limit, typed errors,
and the bounds a hostile or broken broker meets: a whole-answer deadline, a size cap, a row cap, escaped ids.

Facts the clients rely on (endpoints, auth, order of history rows, rate limits) are in docs/reconcile.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

import requests
from limits import parse as parse_rate
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from app.config import Config
from app.settings import BrokerSettings

log = logging.getLogger(__name__)

#: Seconds to connect / of silence within one answer; the whole answer has its own deadline
#: (RECONCILE_ANSWER_SECONDS), since a broker dripping a byte at a time is never silent for long.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
#: Retries of one request on 429, 5xx, timeouts and connection errors: exponential backoff with jitter,
#: honouring Retry-After (urllib3's Retry does the waiting, never past the answer's deadline).
RETRIES = 4
BACKOFF_FACTOR = 0.5
BACKOFF_JITTER = 0.5
BACKOFF_MAX = 20.0
RETRY_STATUSES = (429, 500, 502, 503, 504)
#: Bytes read at a time while an answer is counted against RECONCILE_MAX_ANSWER_BYTES.
CHUNK_BYTES = 64 * 1024
#: What no broker's order id holds and what would change the URL's path: slashes, control characters.
UNSAFE_ID = re.compile(r"[/\\\x00-\x1f\x7f-\x9f]")


_LIMITER: MovingWindowRateLimiter | None = None
_LIMITER_LOCK = threading.Lock()


def shared_limiter() -> MovingWindowRateLimiter:
    """The process's rate windows, one per rate holder (an account, or Kite's api_key), built on first use: its
    storage runs a timer thread, which must not start at import (gunicorn forks gevent workers after importing
    the app)."""
    global _LIMITER
    with _LIMITER_LOCK:
        if _LIMITER is None:
            _LIMITER = MovingWindowRateLimiter(MemoryStorage())
        return _LIMITER


class ReconcileClientError(Exception):
    """A REST call failed; `message` is plain words for GET /api/reconcile (never a secret)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthExpired(ReconcileClientError):
    """The broker refused the credentials: the trader must refresh the access token."""


class Unavailable(ReconcileClientError):
    """The broker did not answer usefully (network, timeouts, 429/5xx after retries)."""


class BadResponse(ReconcileClientError):
    """The broker answered with a shape we cannot read."""


class OrderNotFound(ReconcileClientError):
    """The broker does not know this order (not today's, or never placed)."""


class BadOrderId(OrderNotFound):
    """An id no broker issues (a slash, a dot segment, a control character): refused before any request."""


class TooLarge(BadResponse):
    """The answer is larger than RECONCILE_MAX_ANSWER_BYTES or has more than RECONCILE_MAX_ROWS rows."""


class RunDeadline(ReconcileClientError):
    """The run reached RECONCILE_RUN_SECONDS: what is left is caught up at the next run."""


class DeadlinePassed(Exception):
    """A request's deadline passed: raised through urllib3 (not one of its errors) to end its retries at once."""


@dataclass(frozen=True)
class Answer:
    """A broker's answer, read whole within its deadline and size cap."""

    status_code: int
    content: bytes


class _Watch:
    """One request's deadline: at it, the connection in use is shut, which ends any read blocked on it."""

    def __init__(self, deadline: float, *, run_bound: bool) -> None:
        self.deadline = deadline
        #: True when the run's deadline, not the answer's, is the one that applies.
        self.run_bound = run_bound
        self.expired = False
        self.connection: HTTPConnection | None = None
        self._lock = threading.Lock()

    def remaining(self) -> float:
        """Seconds left."""
        return self.deadline - time.monotonic()

    def attach(self, connection: HTTPConnection) -> None:
        """The connection the request (or its retry) uses now; DeadlinePassed once the deadline has passed."""
        with self._lock:
            if self.expired:
                raise DeadlinePassed
            self.connection = connection

    def expire(self) -> None:
        """The deadline: shut the connection (a blocked recv returns at once), refuse any further attempt."""
        with self._lock:
            self.expired = True
            sock = getattr(self.connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


#: The watch of the request the current thread is making (urllib3 runs a request in its caller's thread).
_CURRENT = threading.local()


def _current_watch() -> _Watch | None:
    """The calling thread's request watch, if any."""
    return getattr(_CURRENT, "watch", None)


class _WatchedHTTPConnection(HTTPConnection):
    """A connection that tells the current request's watch it is the one in use."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        """Register with the watch, then send as urllib3 does."""
        watch = _current_watch()
        if watch is not None:
            watch.attach(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    """The TLS twin of _WatchedHTTPConnection."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        """Register with the watch, then send as urllib3 does."""
        watch = _current_watch()
        if watch is not None:
            watch.attach(self)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    """urllib3's pool, with watched connections."""

    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    """urllib3's TLS pool, with watched connections."""

    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter over pools of watched connections."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """The pool manager, making watched pools (urllib3's documented `pool_classes_by_scheme`)."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineRetry(Retry):
    """urllib3's Retry, whose waits (Retry-After, else the backoff) never run past the request's deadline."""

    def sleep(self, response: Any = None) -> None:
        """Wait before the next attempt, or DeadlinePassed when the wait would end past the deadline."""
        wait = self.get_retry_after(response) if response is not None and self.respect_retry_after_header else None
        if wait is None:
            wait = self.get_backoff_time()
        watch = _current_watch()
        if watch is not None and wait >= watch.remaining():
            raise DeadlinePassed
        if wait > 0:
            time.sleep(wait)


class OrderBookClient:
    """One broker's order book over REST: today's orders and one order's history, rows as the broker sends them."""

    #: Broker name, as in app/brokers.
    broker: ClassVar[str] = ""
    #: The variables that must all be set for this broker to be reconciled.
    credentials: ClassVar[tuple[str, ...]] = ()
    #: The variable holding the REST base URL (its default, the broker's real address, is in its spec.py).
    url_variable: ClassVar[str] = ""
    #: Documented read limit ("10/second"); None = undocumented, a cautious default applies.
    rate: ClassVar[str] = "5/second"
    #: The variable whose value the broker counts its limit by (the account's client id, Kite's api_key):
    #: runs of different holders never wait for each other (docs/reconcile.md, "Rate limits").
    limit_variable: ClassVar[str] = ""
    #: False when "one order" is the same row as the book's (Dhan): the engine then uses the book row.
    has_history: ClassVar[bool] = True
    #: Plain words for an expired or refused token.
    auth_message: ClassVar[str] = ""
    #: The broker's name in messages ("Kite REST answered ...").
    title: ClassVar[str] = ""

    def __init__(
        self, config: Config, session: requests.Session | None = None, *, variables: BrokerSettings | None = None
    ) -> None:
        self.config = config
        #: This broker's declared variables, typed (app/brokers/<name>/spec.py): the environment's, or an
        #: account's (`Account.variables`, its credentials and day's token in place).
        self.variables = variables if variables is not None else config.broker(self.broker)
        self.base_url = self.variables[self.url_variable].rstrip("/")
        #: The key of this client's rate window: one per holder of the broker's limit.
        self.limit_key = limit_key(self.broker, self.variables[self.limit_variable] if self.limit_variable else "")
        self.session = session or make_session()
        self._rate = parse_rate(self.rate)
        self._sleep: Callable[[float], None] = _sleep
        limits = config.reconcile
        self.answer_seconds = limits.answer_seconds
        self.max_bytes = limits.max_answer_bytes
        self.max_rows = limits.max_rows
        #: The run's deadline (time.monotonic()) once `start_run` is called; None: each answer's deadline only.
        self.run_deadline: float | None = None
        self.run_seconds = limits.run_seconds

    @classmethod
    def configured(cls, config: Config) -> bool:
        """True when every credential variable is set: then this broker is reconciled."""
        return cls.ready(config.broker(cls.broker))

    @classmethod
    def ready(cls, variables: BrokerSettings) -> bool:
        """True when these variables (the environment's or an account's) hold every credential."""
        return variables.all_set(cls.credentials)

    # Broker specifics (subclasses):

    def orders(self) -> list[dict[str, Any]]:
        """Today's order book, one row per order."""
        raise NotImplementedError

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """One order's rows, oldest first (sorted by time, never by the broker's position)."""
        raise NotImplementedError

    def order_id(self, row: dict[str, Any]) -> str | None:
        """The broker's order id of a row."""
        raise NotImplementedError

    def to_payload(self, row: dict[str, Any]) -> dict[str, Any]:
        """A REST row as the adapter reads it (the same fields as a postback, some renamed)."""
        return dict(row)

    # Shared:

    @property
    def _limiter(self) -> MovingWindowRateLimiter:
        """One window per rate holder in this process, across runs."""
        return shared_limiter()

    def wait_turn(self) -> None:
        """Block until the holder's documented rate allows one more request (moving window): another account's
        runs use windows of their own, so they never wait for this one."""
        while not self._limiter.hit(self._rate, self.limit_key):
            stats = self._limiter.get_window_stats(self._rate, self.limit_key)
            self._sleep(max(0.01, min(1.0, stats.reset_time - _now())))

    def start_run(self) -> None:
        """A run begins: every request from now on also ends by the run's deadline (RECONCILE_RUN_SECONDS)."""
        self.run_deadline = time.monotonic() + self.run_seconds

    def check_run_deadline(self) -> None:
        """RunDeadline once the run's deadline has passed."""
        if self.run_deadline is not None and time.monotonic() >= self.run_deadline:
            raise self._run_over()

    def request(self, method: str, path: str, **kwargs: Any) -> Answer:
        """One rate-limited call with retries, read whole by its deadline and within the size cap;
        Unavailable when it cannot be had in time, TooLarge above the cap."""
        self.wait_turn()
        watch = self._watch()
        timer = threading.Timer(max(0.0, watch.remaining()), watch.expire)
        timer.daemon = True
        _CURRENT.watch = watch
        timer.start()
        try:
            return self._exchange(method, f"{self.base_url}{path}", watch, **kwargs)
        finally:
            timer.cancel()
            _CURRENT.watch = None

    def _watch(self) -> _Watch:
        """The request's deadline: RECONCILE_ANSWER_SECONDS from now, or the run's deadline if sooner."""
        self.check_run_deadline()
        deadline = time.monotonic() + self.answer_seconds
        if self.run_deadline is not None and self.run_deadline < deadline:
            return _Watch(self.run_deadline, run_bound=True)
        return _Watch(deadline, run_bound=False)

    def _exchange(self, method: str, url: str, watch: _Watch, **kwargs: Any) -> Answer:
        """Send and read the answer; a failure after the deadline is reported as the deadline."""
        try:
            response = self.session.request(method, url, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), stream=True, **kwargs)
            try:
                answer = Answer(response.status_code, self._body(response))
            finally:
                response.close()
        except DeadlinePassed:
            raise self._late(watch) from None
        except requests.exceptions.RetryError as exc:
            if watch.expired:
                raise self._late(watch) from None
            raise Unavailable(f"{self.broker} REST kept failing ({_reason(exc)}); will retry at the next run") from None
        except requests.RequestException as exc:
            if watch.expired:
                raise self._late(watch) from None
            raise Unavailable(f"{self.broker} REST unreachable ({_reason(exc)}); will retry at the next run") from None
        if watch.expired:  # the shut connection may have looked like the end of the answer
            raise self._late(watch)
        return answer

    def _body(self, response: requests.Response) -> bytes:
        """The body, streamed and counted: TooLarge as soon as it passes RECONCILE_MAX_ANSWER_BYTES."""
        body = bytearray()
        for chunk in response.iter_content(CHUNK_BYTES):
            body += chunk
            if len(body) > self.max_bytes:
                raise TooLarge(
                    f"{self.title} REST answered more than RECONCILE_MAX_ANSWER_BYTES ({self.max_bytes} bytes); "
                    "not reconciled"
                )
        return bytes(body)

    def _late(self, watch: _Watch) -> ReconcileClientError:
        """The error of a request that ran into its deadline."""
        if watch.run_bound:
            return self._run_over()
        return Unavailable(
            f"{self.title} REST did not answer within {self.answer_seconds:g} s (RECONCILE_ANSWER_SECONDS); "
            "will retry at the next run"
        )

    def _run_over(self) -> RunDeadline:
        """The error of a run past its deadline."""
        return RunDeadline(
            f"the run reached RECONCILE_RUN_SECONDS ({self.run_seconds:g} s); the rest is caught up at the next run"
        )

    def checked_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows of an answer, or TooLarge when there are more than RECONCILE_MAX_ROWS."""
        if len(rows) > self.max_rows:
            raise TooLarge(
                f"{self.title} REST answered {len(rows)} rows, more than RECONCILE_MAX_ROWS ({self.max_rows}); "
                "not reconciled"
            )
        return rows

    def checked_id(self, order_id: str) -> str:
        """An order id fit to send: BadOrderId for one that could leave its place in a URL or a form."""
        if not order_id or UNSAFE_ID.search(order_id) or ".." in order_id or order_id == ".":
            raise BadOrderId(f"{self.title} order id {order_id[:40]!r} refused: no broker issues such an id")
        return order_id

    def path_segment(self, order_id: str) -> str:
        """An order id as one URL path segment: checked, then escaped (`quote(id, safe="")`)."""
        return quote(self.checked_id(order_id), safe="")

    def json_of(self, answer: Answer) -> Any:
        """The answer's JSON, or BadResponse naming the status."""
        try:
            return json.loads(answer.content)
        except ValueError:
            raise BadResponse(f"{self.title} REST answered {answer.status_code} with a body that is not JSON") from None


def limit_key(broker: str, holder: str) -> str:
    """The rate window's key: the broker and a digest of the holder (an api_key is never kept in clear)."""
    return f"{broker}:{hashlib.sha256(holder.encode()).hexdigest()[:16]}"


def make_session() -> requests.Session:
    """A session that retries reads on 429/5xx/timeouts with exponential backoff and jitter, over connections
    each request's deadline can shut."""
    retry = DeadlineRetry(
        total=RETRIES,
        connect=RETRIES,
        read=RETRIES,
        status=RETRIES,
        backoff_factor=BACKOFF_FACTOR,
        backoff_jitter=BACKOFF_JITTER,
        backoff_max=BACKOFF_MAX,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "POST"}),  # Noren reads are POSTs; none of these calls changes anything
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = _WatchedAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def sort_by_time(
    rows: list[dict[str, Any]], time_of: Callable[[dict[str, Any]], datetime | None], *, newest_first: bool
) -> list[dict[str, Any]]:
    """Rows oldest first by their own time; rows of the same second keep the broker's documented order.

    Position alone is never trusted (docs/brokers.md §10: Kite oldest first, Noren newest first), but many
    rows share a second, and then the documented direction is the only order there is.
    """
    count = len(rows)
    indexed = [(time_of(row), (count - i) if newest_first else i, row) for i, row in enumerate(rows)]
    floor = datetime.min
    indexed.sort(key=lambda item: (item[0].replace(tzinfo=None) if item[0] else floor, item[1]))
    return [row for _, _, row in indexed]


def parse_time(value: Any, formats: tuple[str, ...]) -> datetime | None:
    """A broker's local time string as a naive datetime (only compared with the same broker's times)."""
    if not isinstance(value, str) or not value.strip():
        return None
    for fmt in formats:
        try:
            return datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
    return None


def dumps(row: Any) -> bytes:
    """A REST row as the raw bytes stored with its event."""
    return json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode()


def _reason(exc: Exception) -> str:
    """The kind of failure, without URLs (they may carry an account id) or secrets."""
    inner = getattr(exc, "args", [None])[0]
    reason = getattr(inner, "reason", None)
    if reason is not None:
        return type(reason).__name__ if not isinstance(reason, str) else reason[:80]
    return type(exc).__name__


def _now() -> float:
    """Wall clock seconds (the limiter's windows are in wall time)."""
    return time.time()


def _sleep(seconds: float) -> None:
    """Wait for the rate limit (a function so tests can replace it)."""
    time.sleep(seconds)
