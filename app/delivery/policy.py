"""Retry policy: what an attempt's answer means and when the next attempt is due (docs/delivery.md)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

JITTER = 0.1  # "small jitter": +-10 % of each scheduled delay
MAX_RETRY_AFTER = 24 * 3600.0


@dataclass(frozen=True)
class Outcome:
    """What one attempt did; `started_at` is the Unix time the request was sent; `delivered`: a Redis
    destination (rq, redis_stream) took it (no status code there)."""

    status_code: int | None
    latency_ms: float
    error: str | None
    retry_after: float | None = None
    started_at: float | None = None
    delivered: bool = False

    @property
    def ok(self) -> bool:
        """2xx is success; anything else (3xx included: redirects are not followed) is a failure."""
        return self.delivered or (self.status_code is not None and 200 <= self.status_code < 300)

    @property
    def gone(self) -> bool:
        """410 Gone: the consumer asks never to be called again."""
        return self.status_code == 410


def next_delay(schedule: tuple[float, ...], attempts_made: int, retry_after: float | None) -> float | None:
    """Seconds until the next attempt after `attempts_made` failures, or None when the schedule is spent."""
    if attempts_made > len(schedule):
        return None
    delay = schedule[attempts_made - 1] * random.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def host_and_port(url: str) -> str:
    """How errors and logs name a consumer: `host:port`, never its path, query string or credentials
    (a consumer URL may carry a token, docs/pipeline.md)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "the consumer"
    if not parts.hostname:
        return "the consumer"
    return f"[{parts.hostname}]:{port}" if ":" in parts.hostname else f"{parts.hostname}:{port}"
