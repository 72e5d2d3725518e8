"""A consumer as the processes hold it, and the view of it that answers and pages show (never a secret).

Types (docs/consumers.md "Destinations"): `http` (Standard Webhooks POSTs to `url`), `rq` (one RQ job per event
on `queue` calling `function`), `redis_stream` (XADD to `stream`). Sources: `api` (added as data) or
`environment` (a FORWARD_URLS entry: read-only, signed with FORWARD_SECRET).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from app.consumers.filters import Filters
from app.times import utc_iso

HTTP = "http"
RQ = "rq"
REDIS_STREAM = "redis_stream"
TYPES = (HTTP, RQ, REDIS_STREAM)

API = "api"
ENVIRONMENT = "environment"

ID_PREFIX = "con_"
#: An RQ queue or a Redis stream name: what `rq worker <queue>` and XREADGROUP take without quoting.
DESTINATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
#: A dotted path to a function: a module (or package path) and the function's name.
FUNCTION_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
MAX_FUNCTION = 200
MAX_URL = 2000
#: Redis key prefixes a stream name may not take: the service's own keys and RQ's.
RESERVED_PREFIXES = ("oh:", "rq:", "orderhook")


@dataclass(frozen=True)
class Consumer:
    """One destination; `secrets` are the clear signing keys (http), held in memory only, never shown."""

    id: str
    type: str = HTTP
    url: str | None = None
    queue: str | None = None
    function: str | None = None
    stream: str | None = None
    description: str = ""
    filters: Filters = field(default_factory=Filters)
    enabled: bool = True
    source: str = API
    created_at: datetime | None = None
    disabled_reason: str | None = None
    secret_rotated_at: datetime | None = None
    previous_secret_until: datetime | None = None
    revision: int = 1
    secrets: tuple[str, ...] = ()

    @property
    def read_only(self) -> bool:
        """The environment's consumers change only with the environment."""
        return self.source == ENVIRONMENT

    @property
    def sending(self) -> bool:
        """True when new events are delivered to it (switched on, not disabled by a 410)."""
        return self.enabled and self.disabled_reason is None

    @property
    def shown_target(self) -> str:
        """The destination as messages show it (a URL's password as `***`)."""
        return shown_url(self.target) or ""

    @property
    def target(self) -> str:
        """What `deliveries.url` holds: the URL, or a description of the Redis destination."""
        return destination_text(self.type, self.url, self.queue, self.function, self.stream)


def destination_text(kind: str, url: str | None, queue: str | None, function: str | None, stream: str | None) -> str:
    """The destination as one line (stored in deliveries.url, shown in the delivery log)."""
    if kind == RQ:
        return f"rq://{queue}/{function}"
    if kind == REDIS_STREAM:
        return f"redis-stream://{stream}"
    return url or ""


def shown_url(url: str | None) -> str | None:
    """A URL as views and listings show it: a password in it as `***` (the stored URL keeps it; docs/consumers.md)."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return url
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def url_problem(url: Any) -> str:
    """Why this is not a consumer URL ("" when it is one)."""
    if not isinstance(url, str) or not url:
        return "url must be an http(s) URL, e.g. https://example.com/hooks/orders"
    if len(url) > MAX_URL or not url.isascii() or not url.isprintable() or " " in url:
        return f"url must be at most {MAX_URL} printable ASCII characters without spaces (percent-encode the rest)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "url is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "url must be an http(s) URL with a host, e.g. https://example.com/hooks/orders"
    return ""


def queue_problem(name: Any) -> str:
    """Why this is not an RQ queue name ("" when it is one)."""
    if not isinstance(name, str) or not DESTINATION_NAME.match(name):
        return "queue must be 1-200 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
    if name.startswith("orderhook"):
        return "queue names starting with 'orderhook' are the service's own; choose another"
    return ""


def function_problem(path: Any) -> str:
    """Why this is not a dotted function path ("" when it is one)."""
    if not isinstance(path, str) or len(path) > MAX_FUNCTION or not FUNCTION_PATH.match(path):
        return (
            f"function must be a dotted path to a function your rq worker imports, at most {MAX_FUNCTION} "
            "characters, e.g. strategy.orders.on_order"
        )
    return ""


def stream_problem(name: Any) -> str:
    """Why this is not a stream name ("" when it is one)."""
    if not isinstance(name, str) or not DESTINATION_NAME.match(name):
        return "stream must be 1-200 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
    if name.startswith(RESERVED_PREFIXES):
        return f"stream names starting with {' / '.join(RESERVED_PREFIXES)} are the service's or RQ's; choose another"
    return ""


def view(consumer: Consumer, stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """The consumer as answers and pages show it (docs/consumers.md "The view"); never a secret."""
    stats = stats or {}
    shown: dict[str, Any] = {"id": consumer.id, "type": consumer.type}
    if consumer.type == HTTP:
        shown["url"] = shown_url(consumer.url)
    elif consumer.type == RQ:
        shown["queue"] = consumer.queue
        shown["function"] = consumer.function
    else:
        shown["stream"] = consumer.stream
    shown |= {
        "description": consumer.description,
        "filters": consumer.filters.shown(),
        "enabled": consumer.sending,
        "source": consumer.source,
        "created_at": _iso(consumer.created_at),
        "counts": stats.get("counts") or {"delivered": 0, "pending": 0, "failed": 0},
        "last_error": stats.get("last_error"),
        "last_error_at": _iso(stats.get("last_error_at")),
        "latency_ms": stats.get("latency_ms") or {"p50": None, "p99": None},
        "disabled_reason": consumer.disabled_reason,
        "secret_rotated_at": _iso(consumer.secret_rotated_at),
        "previous_secret_until": _iso(consumer.previous_secret_until),
    }
    return shown


def _iso(value: datetime | None) -> str | None:
    """UTC ISO 8601 with a Z, or None."""
    return utc_iso(value) if value is not None else None


def consumer_id(url: str) -> str:
    """The stable id of a FORWARD_URLS entry (its deliveries keep it across restarts and deploys)."""
    return "c_" + hashlib.sha256(url.encode()).hexdigest()[:16]
