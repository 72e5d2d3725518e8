"""Alerts a trader reads at a glance (Telegram): rejections, fills, a feed down, a dead-lettered delivery.

Nothing here runs on the request path. The worker announces what it has just stored
(`on_stored`, called after each committed batch) and what its watchers notice (workers/alerts.py);
an announcement is one short line queued on a Redis stream, at most once per key (a redelivery, or
the postback and WebSocket copies of one update, is not news), with what a broker, a feed or a
consumer wrote in it kept on that line (app/text.py `one_line`: no forged second line, no reversed
account id); the sender in the worker process posts the lines to Telegram, rate-limited
(docs/alerts.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from app.alerts.messages import event_alert
from app.config import Config
from app.redis_keys import ALERTS_SEEN_PREFIX, ALERTS_STREAM, STATS_KEY
from app.text import one_line

log = logging.getLogger(__name__)

SEEN_TTL_SECONDS = 3 * 24 * 3600
STREAM_MAXLEN = 10_000

#: Every kind of announcement, as ALERT_ON names them.
KINDS = (
    "REJECTED",
    "PARTIALLY_FILLED",
    "FILLED",
    "CANCELLED",
    "EXPIRED",
    "feed_down",
    "delivery_failed",
    "unknown_status",
    "reconcile_error",
    "login_needed",
    "session_expiring",
)
#: docs/interface.md's default, plus kinds always heard about whatever the list says (an unknown status word
#: and a failed reconciliation both mean an update may be wrong or missing; an account that needs a login, or
#: soon will, misses every update until someone logs in: docs/accounts.md).
DEFAULT_ALERT_ON = ("REJECTED", "PARTIALLY_FILLED", "FILLED", "feed_down", "delivery_failed")
ALWAYS_ON = ("unknown_status", "reconcile_error", "login_needed", "session_expiring")


@dataclass(frozen=True)
class AlertSettings:
    """TELEGRAM_* and ALERT_ON, read once."""

    bot_token: str
    chat_id: str
    api_url: str
    kinds: frozenset[str]

    @property
    def enabled(self) -> bool:
        """Alerts go out only when both the bot token and the chat are set."""
        return bool(self.bot_token and self.chat_id)

    def wants(self, kind: str) -> bool:
        """True when ALERT_ON (or the always-on list) names this kind."""
        return self.enabled and kind in self.kinds


def settings_from(config: Config) -> AlertSettings:
    """Read the alert settings; unknown ALERT_ON names are warned about, not fatal."""
    by_lower = {kind.lower(): kind for kind in KINDS}
    kinds = set()
    for name in config.alerts.alert_on or DEFAULT_ALERT_ON:
        kind = by_lower.get(name.lower())
        if kind is None:
            log.warning("ALERT_ON names %r, which is not one of %s; ignored", name, ", ".join(KINDS))
        else:
            kinds.add(kind)
    kinds.update(ALWAYS_ON)
    return AlertSettings(
        bot_token=config.alerts.bot_token,
        chat_id=config.alerts.chat_id,
        api_url=config.alerts.api_url.rstrip("/"),
        kinds=frozenset(kinds),
    )


# KEYS: seen key, stream. ARGV: ttl, maxlen, kind, text. Once per key, in one round trip.
_ANNOUNCE_ONCE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'kind', ARGV[3], 'text', ARGV[4])
return 1
"""


def announce(client: redis.Redis, settings: AlertSettings, kind: str, key: str, text: str) -> bool:
    """Queue one line unless this key was announced already; True when queued."""
    if not settings.wants(kind):
        return False
    return bool(_queue(client, [(kind, key, text)])[0])


def _queue(client: redis.Redis, items: list[tuple[str, str, str]]) -> list[int]:
    """Run the once-per-key step for several lines in one pipelined round trip, each text made one line."""
    script = client.register_script(_ANNOUNCE_ONCE)
    pipe = client.pipeline(transaction=False)
    for kind, key, text in items:
        script(
            keys=[ALERTS_SEEN_PREFIX + key, ALERTS_STREAM],
            args=[SEEN_TTL_SECONDS, STREAM_MAXLEN, kind, one_line(text)],
            client=pipe,
        )
    return pipe.execute()


def on_stored(
    client: redis.Redis,
    settings: AlertSettings,
    events: Iterable[dict[str, Any]],
    states: dict[tuple[str, str], dict[str, Any]] | None = None,
    is_known_status=None,
) -> int:
    """Announce what a just-stored batch means to a trader; returns how many lines were queued.

    `states` (the orders' states after the batch) keeps a late partial fill of an order that has
    already filled from being announced; `is_known_status(broker, word)` tells unknown status words.
    """
    lines: list[tuple[str, str, str]] = []
    unknown = 0
    for event in events:
        state = (states or {}).get((event.get("broker"), event.get("order_id")))
        lines += [line for line in event_alert(event, state) if settings.wants(line[0])]
        word = event.get("broker_status")
        if is_known_status is not None and word and not is_known_status(event.get("broker"), word):
            unknown += 1
            text = (
                f"UNKNOWN STATUS {event.get('broker')} {event.get('order_id')}: {word!r} (stored; state not advanced)"
            )
            if settings.wants("unknown_status"):
                lines.append(("unknown_status", f"unknown:{event.get('id')}", text))
    if unknown:
        client.hincrby(STATS_KEY, "unknown_status", unknown)  # counted whether or not alerts are on
    return sum(_queue(client, lines)) if lines else 0
