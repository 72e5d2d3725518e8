"""What a broker's session token says about itself: the `exp` of a JWT (XTS, 5paisa; docs/brokers.md §14.4, §15.2)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime


def jwt_expiry(token: str) -> datetime | None:
    """The `exp` of the token's JWT payload (read, not verified: it only says when to log in again), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        exp = json.loads(base64.urlsafe_b64decode(padded)).get("exp")
        return datetime.fromtimestamp(float(exp), UTC) if isinstance(exp, int | float) else None
    except (ValueError, TypeError, AttributeError, OverflowError, OSError):
        return None
