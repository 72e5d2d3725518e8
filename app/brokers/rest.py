"""What every broker's REST order-book client shares: one session with retries, a rate limit, typed errors.

Facts the clients rely on (endpoints, auth, order of history rows, rate limits) are in docs/reconcile.md.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

import requests
from limits import parse as parse_rate
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from app.config import Config

log = logging.getLogger(__name__)

#: Seconds to connect / to read one answer; a broker that takes longer is retried, then "unavailable".
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
#: Retries of one request on 429, 5xx, timeouts and connection errors: exponential backoff with jitter,
#: honouring Retry-After (urllib3's Retry does the waiting).
RETRIES = 4
BACKOFF_FACTOR = 0.5
BACKOFF_JITTER = 0.5
BACKOFF_MAX = 20.0
RETRY_STATUSES = (429, 500, 502, 503, 504)


_LIMITER: MovingWindowRateLimiter | None = None
_LIMITER_LOCK = threading.Lock()


def shared_limiter() -> MovingWindowRateLimiter:
    """The process's rate windows, one per broker, built on first use: its storage runs a timer thread,
    which must not start at import (gunicorn forks gevent workers after importing the app)."""
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
    #: False when "one order" is the same row as the book's (Dhan): the engine then uses the book row.
    has_history: ClassVar[bool] = True
    #: Plain words for an expired or refused token.
    auth_message: ClassVar[str] = ""

    def __init__(self, config: Config, session: requests.Session | None = None) -> None:
        self.config = config
        #: This broker's declared variables, typed (app/brokers/<name>/spec.py).
        self.variables = config.broker(self.broker)
        self.base_url = self.variables[self.url_variable].rstrip("/")
        self.session = session or make_session()
        self._rate = parse_rate(self.rate)
        self._sleep: Callable[[float], None] = _sleep

    @classmethod
    def configured(cls, config: Config) -> bool:
        """True when every credential variable is set: then this broker is reconciled."""
        return config.broker(cls.broker).all_set(cls.credentials)

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
        """One window per broker in this process, across runs."""
        return shared_limiter()

    def wait_turn(self) -> None:
        """Block until the broker's documented rate allows one more request (moving window)."""
        while not self._limiter.hit(self._rate, self.broker):
            stats = self._limiter.get_window_stats(self._rate, self.broker)
            self._sleep(max(0.01, min(1.0, stats.reset_time - _now())))

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One rate-limited call with retries; Unavailable when it cannot be had."""
        self.wait_turn()
        url = f"{self.base_url}{path}"
        try:
            return self.session.request(method, url, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), **kwargs)
        except requests.exceptions.RetryError as exc:
            raise Unavailable(f"{self.broker} REST kept failing ({_reason(exc)}); will retry at the next run") from None
        except requests.RequestException as exc:
            raise Unavailable(f"{self.broker} REST unreachable ({_reason(exc)}); will retry at the next run") from None

    def json_of(self, response: requests.Response) -> Any:
        """The answer's JSON, or BadResponse naming the status."""
        try:
            return response.json()
        except ValueError:
            raise BadResponse(
                f"{self.broker} REST answered {response.status_code} with a body that is not JSON"
            ) from None


def make_session() -> requests.Session:
    """A session that retries reads on 429/5xx/timeouts with exponential backoff and jitter."""
    retry = Retry(
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
    adapter = HTTPAdapter(max_retries=retry)
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
