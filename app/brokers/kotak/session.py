"""A Kotak Neo session as one stored token: the trade token, its sid and the account's baseUrl (docs/brokers.md §13).

tradeApiValidate answers three values every later call needs (`token`, `sid`, `baseUrl`), while an account keeps
one day's token; they are kept as `<token>|<sid>|<baseUrl>` (none of them holds a `|`: a JWT, a UUID, an https
origin). A session pasted by hand is written the same way; without the baseUrl, KOTAK_API_URL is used.
"""

from __future__ import annotations

from dataclasses import dataclass

SEPARATOR = "|"


@dataclass(frozen=True)
class KotakSession:
    """The parts of one session; `base_url` may be "" (then the configured default applies)."""

    token: str
    sid: str
    base_url: str = ""

    def text(self) -> str:
        """The session as an account stores it."""
        parts = [self.token, self.sid] + ([self.base_url] if self.base_url else [])
        return SEPARATOR.join(parts)


def parse_session(value: str) -> KotakSession | None:
    """The session's parts, or None when the value is not `<token>|<sid>[|<baseUrl>]`."""
    parts = [part.strip() for part in (value or "").split(SEPARATOR)]
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        return None
    base_url = parts[2].rstrip("/") if len(parts) == 3 else ""
    if base_url and not base_url.startswith(("https://", "http://")):
        return None
    return KotakSession(parts[0], parts[1], base_url)


def realtime_url(base_url: str) -> str:
    """The order & position stream of a baseUrl: `wss://<host>/realtime` (ws:// for a plain-http base)."""
    if base_url.startswith("http://"):
        return "ws://" + base_url.removeprefix("http://") + "/realtime"
    return "wss://" + base_url.removeprefix("https://") + "/realtime"
