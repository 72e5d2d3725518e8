"""When a day's session ends, per broker (the rules and their sources: docs/brokers.md "Accounts and daily logins").

A broker that rolls tokens over daily (Kite at 06:00 IST) ends every session at the next rollover after its
login; one whose token lasts a fixed time (Dhan's 24 h) ends that long after; None means no known expiry.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.brokers.spec import AccountSpec

IST = ZoneInfo("Asia/Kolkata")


def session_expiry(spec: AccountSpec, logged_in_at: datetime) -> datetime | None:
    """When a session that began at `logged_in_at` ends (UTC), or None when the broker documents no expiry."""
    if spec.rollover_ist:
        return next_rollover(spec.rollover_ist, logged_in_at)
    if spec.session_hours:
        return logged_in_at.astimezone(UTC) + timedelta(hours=spec.session_hours)
    return None


def next_rollover(hh_mm: str, after: datetime) -> datetime:
    """The first HH:MM in India strictly after `after`, in UTC."""
    hours, minutes = (int(part) for part in hh_mm.split(":"))
    local = after.astimezone(IST)
    candidate = datetime.combine(local.date(), time(hours, minutes), tzinfo=IST)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), time(hours, minutes), tzinfo=IST)
    return candidate.astimezone(UTC)
