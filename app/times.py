"""Times as every event writes them (UTC ISO 8601 with a Z) and as brokers send them (IST, epoch seconds)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

IST = timezone(timedelta(hours=5, minutes=30), "IST")

# Sentinels meaning "no time" (docs/brokers.md §4.1: "0000-00-00 00:00:00"; Tiqs: "01-01-1980 00:00:00").
_NULL_TIME = re.compile(r"^(0000-00-00|0001-01-01|01-01-1980|1980-01-01)")


def ist_to_utc_iso(value: Any, formats: tuple[str, ...]) -> str | None:
    """An exchange time in IST (as brokers send it) as UTC ISO 8601, or None for blanks and sentinels."""
    if isinstance(value, str) and len(value) <= 40:
        return _ist_text_to_utc_iso(value, formats)
    return _ist_to_utc_iso(value, formats)


@lru_cache(maxsize=4096)
def _ist_text_to_utc_iso(value: str, formats: tuple[str, ...]) -> str | None:
    """Cached: updates of one burst share their seconds, and strptime is slow."""
    return _ist_to_utc_iso(value, formats)


def _ist_to_utc_iso(value: Any, formats: tuple[str, ...]) -> str | None:
    """The uncached conversion."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None  # blanks mean null on every broker (docs/brokers.md §1)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return epoch_to_utc_iso(value)
    text = str(value).strip()
    if _NULL_TIME.match(text):
        return None
    for fmt in formats:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return utc_iso(parsed.replace(tzinfo=IST))
    return None


def epoch_to_utc_iso(value: Any) -> str | None:
    """Epoch seconds (number or numeric string) as UTC ISO 8601."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(seconds) or seconds <= 0 or seconds > 1e10:
        return None
    return utc_iso(datetime.fromtimestamp(seconds, tz=UTC))


def utc_iso(moment: datetime) -> str:
    """UTC ISO 8601 with a Z, the one time format in every event."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def utc_now_iso() -> str:
    """Now, as every `received_at` is written."""
    return utc_iso(datetime.now(UTC))
