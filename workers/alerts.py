"""The alert sender (one per deployment, by a redis-py Lock) and its watchers, run in the `worker` process.

The sender reads the alert stream through a consumer group (an alert read but not sent stays
pending for the next sender), joins what is waiting into messages under Telegram's limit (whole
lines; a line too long for one message goes as marked parts), and posts one to Telegram at most
once per MIN_INTERVAL_SECONDS (Telegram allows about one message a second per chat), waiting out a
429's `retry_after`. A line leaves the stream, counted `sent`, only once Telegram has accepted all
of it (docs/alerts.md). Watchers turn what the worker can see into announcements: a feed down
for over a minute or refused, deliveries dead-lettered, a reconciliation that failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import redis
import sqlalchemy as sa
from redis.exceptions import LockError

from app.accounts.model import SessionState
from app.alerts import AlertSettings, announce
from app.alerts.telegram import (
    MAX_TEXT,
    Message,
    Refused,
    RetryAfter,
    TelegramClient,
    TelegramError,
    TooLong,
    next_message,
)
from app.brokers.feed_status import STALE_AFTER_SECONDS, FeedState, read_status
from app.brokers.registry import BY_NAME
from app.db import as_utc, deliveries
from app.events import BROKERS
from app.redis_keys import (
    ALERTS_GROUP,
    ALERTS_LOCK_KEY,
    ALERTS_PARTS_KEY,
    ALERTS_STATUS_KEY,
    ALERTS_STREAM,
    ALERTS_WATERMARK_KEY,
    reconcile_status_key,
)
from app.times import utc_iso

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

CONSUMER = "sender"  # one sender at a time (the lock): one name owns every pending entry
LOCK_SECONDS = 30.0
MIN_INTERVAL_SECONDS = 1.0
LINES_PER_MESSAGE = 20
#: A "message is too long" answer halves the sender's limit, down to this many UTF-16 units.
MIN_TEXT = 512
WATCH_SECONDS = 2.0
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
#: Several dead letters of one consumer in one pass become one summary line instead of a flood.
SUMMARIZE_OVER = 3
RECONCILE_REPEAT_SECONDS = 6 * 3600


class AlertSender:
    """Send queued alert lines to Telegram and watch feeds, deliveries and reconciliations."""

    def __init__(
        self,
        services: Services,
        settings: AlertSettings,
        *,
        feed_down_seconds: float = 60.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.services = services
        self.client: redis.Redis = services.redis
        self.settings = settings
        self.telegram = TelegramClient(settings.api_url, settings.bot_token, settings.chat_id)
        self.feed_down_seconds = feed_down_seconds
        # Made here, held by the sender's own thread: the token belongs to the sender, not to a thread.
        self.lock = self.client.lock(ALERTS_LOCK_KEY, timeout=LOCK_SECONDS, blocking=False, thread_local=False)
        self.stop = stop or threading.Event()
        self._last_sent = 0.0
        self._last_watch = 0.0
        self._down_since: dict[str, float] = {}
        self._group_ready = False
        #: UTF-16 units per message: Telegram's limit, halved by each "message is too long" answer.
        self.limit = MAX_TEXT

    def run(self) -> None:
        """Loop until stopped; another process's sender holding the lock makes this one wait."""
        attempt = 0
        while not self.stop.is_set():
            try:
                if not self._hold_lock():
                    self.stop.wait(LOCK_SECONDS / 3)
                    continue
                self.step()
                attempt = 0
            except (redis.RedisError, sa.exc.SQLAlchemyError) as exc:
                delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                attempt += 1
                log.warning("alerts: %s; retrying in %.0fs", type(exc).__name__, delay)
                self.stop.wait(delay)
        with contextlib.suppress(redis.RedisError):  # lapsed or Redis away: the TTL frees it
            self.lock.release()

    def _hold_lock(self) -> bool:
        """Restart the lock's TTL, or take the lock if it is free; False while another sender holds it."""
        try:
            return self.lock.reacquire()
        except LockError:  # not taken yet, or lapsed
            return self.lock.acquire()

    def step(self, block_ms: int = 500) -> int:
        """One pass: watchers now and then, then send what is queued; returns lines sent."""
        if time.monotonic() - self._last_watch >= WATCH_SECONDS:
            self._last_watch = time.monotonic()
            self.watch()
        return self.send_pending(block_ms)

    # Sending:

    def send_pending(self, block_ms: int) -> int:
        """Send the next message of the lines waiting (first those a dead sender left); returns lines completed."""
        self._ensure_group()
        entries = self._present(self._waiting(block_ms))
        if not entries:
            return 0
        ids = [entry_id for entry_id, _ in entries]
        lines = [fields[b"text"].decode("utf-8", "replace") for _, fields in entries]
        message = next_message(lines, self.limit, self._sent_of(ids[0]))
        wait = MIN_INTERVAL_SECONDS - (time.monotonic() - self._last_sent)
        if wait > 0:
            self.stop.wait(wait)
        try:
            self.telegram.send(message.text)
        except RetryAfter as exc:
            log.warning("alerts: Telegram rate limit; waiting %.0fs", exc.seconds)
            self._record(last_error=str(exc))
            self.stop.wait(exc.seconds)
            return 0  # the entries stay pending: sent next pass
        except TooLong as exc:
            if self.limit > MIN_TEXT:
                self.limit //= 2
                log.warning("alerts: %s; sending at most %d units a message", exc, self.limit)
                self._record(last_error=str(exc))
                return 0  # nothing was delivered: the entries stay pending, packed smaller next pass
            self._drop(ids, message, exc)
            return 0
        except Refused as exc:
            self._drop(ids, message, exc)
            return 0
        except TelegramError as exc:
            self._record(last_error=str(exc))
            raise redis.ConnectionError(str(exc)) from None  # back off like any outage; entries stay pending
        finally:
            self._last_sent = time.monotonic()
        self._delivered(ids, message)
        return message.lines

    def _waiting(self, block_ms: int) -> list:
        """Our pending entries, topped up with new ones to LINES_PER_MESSAGE (waiting only when none is pending)."""
        pending = self._read("0", None, LINES_PER_MESSAGE)
        room = LINES_PER_MESSAGE - len(pending)
        if not room:
            return pending
        return pending + self._read(">", None if pending else block_ms, room)

    def _read(self, start: str, block_ms: int | None, count: int = LINES_PER_MESSAGE) -> list:
        """Up to `count` entries from `start` ('0' = ours pending, '>' = new)."""
        reply = self.client.xreadgroup(ALERTS_GROUP, CONSUMER, {ALERTS_STREAM: start}, count=count, block=block_ms)
        return reply[0][1] if reply else []

    def _present(self, entries: list) -> list:
        """The entries that still hold a line; one trimmed (MAXLEN) while pending is logged and dropped."""
        gone = [entry_id for entry_id, fields in entries if not fields or b"text" not in fields]
        if gone:
            log.error("alerts: %d alert line(s) trimmed from the stream before they were sent", len(gone))
            self._remove(gone)
        return [(entry_id, fields) for entry_id, fields in entries if entry_id not in gone]

    def _sent_of(self, entry_id: bytes) -> int:
        """How many characters of this line Telegram has accepted already (parts of an over-long line)."""
        return int(self.client.hget(ALERTS_PARTS_KEY, entry_id) or 0)

    def _delivered(self, ids: list, message: Message) -> None:
        """Telegram accepted `message`: its complete lines leave the stream and count as sent, a part is remembered."""
        pipe = self.client.pipeline(transaction=True)  # the ack and the count land together
        if message.lines:
            done = ids[: message.lines]
            pipe.xack(ALERTS_STREAM, ALERTS_GROUP, *done)
            pipe.xdel(ALERTS_STREAM, *done)
            pipe.hdel(ALERTS_PARTS_KEY, *done)
            pipe.hincrby(ALERTS_STATUS_KEY, "sent", message.lines)
        if message.offset is not None:
            pipe.hset(ALERTS_PARTS_KEY, ids[message.lines], message.offset)
        pipe.hset(ALERTS_STATUS_KEY, mapping={"last_sent_at": utc_iso(datetime.now(UTC)), "last_error": ""})
        pipe.execute()

    def _drop(self, ids: list, message: Message, exc: TelegramError) -> None:
        """Telegram refused this message for good: its lines (a part's whole line too) are logged and dropped."""
        held = ids[: message.lines + (message.offset is not None)]
        log.error("alerts: %s; %d alert line(s) dropped", exc, len(held))
        self._record(last_error=str(exc))
        self._remove(held)

    def _ensure_group(self) -> None:
        """The consumer group, from the stream's start (after a Redis loss it is made again)."""
        if self._group_ready:
            return
        try:
            self.client.xgroup_create(ALERTS_STREAM, ALERTS_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def _remove(self, ids: list) -> None:
        """Out of the stream without being sent, counted as dropped."""
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(ALERTS_STREAM, ALERTS_GROUP, *ids)
        pipe.xdel(ALERTS_STREAM, *ids)
        pipe.hdel(ALERTS_PARTS_KEY, *ids)
        pipe.hincrby(ALERTS_STATUS_KEY, "dropped", len(ids))
        pipe.execute()

    def _record(self, **fields: str) -> None:
        """What the sender last did, for operators (never the token: messages carry no URL)."""
        self.client.hset(ALERTS_STATUS_KEY, mapping=fields)

    # Watching:

    def watch(self) -> None:
        """Look at feeds, dead letters and reconciliations once."""
        if self.settings.wants("feed_down"):
            self.watch_feeds()
        if self.settings.wants("delivery_failed"):
            self.watch_deliveries()
        if self.settings.wants("reconcile_error"):
            self.watch_reconciliations()

    def watch_feeds(self) -> None:
        """A feed refused, or not connected for over feed_down_seconds, is announced once per outage: the
        feeds in FEEDS and each logged-in account's connection (whose refusal is its own `login needed`)."""
        now = time.monotonic()
        environment = [(name, name, False) for name in self.services.config.feeds]
        for key, name, of_account in environment + self.account_connections():
            status = read_status(self.client, key) or {}
            state = status.get("state")
            if state == FeedState.AUTH_FAILED:
                self._down_since.pop(key, None)
                if not of_account:  # an account's refusal is announced as `login needed` (app/accounts/notices.py)
                    text = f"FEED REFUSED {name}: {status.get('last_error') or 'the broker refused the credentials'}"
                    refused = f"feed:{key}:refused:{status.get('updated_at')}"
                    announce(self.client, self.settings, "feed_down", refused, text)
                continue
            up = state == FeedState.RUNNING and status.get("connected") in (True, "1", 1) and _fresh(status)
            if up or state in (FeedState.STOPPED, FeedState.MISCONFIGURED, None):
                self._down_since.pop(key, None)
                continue
            since = self._down_since.setdefault(key, now)
            if now - since >= self.feed_down_seconds:
                down_for = int(now - since)
                reason = status.get("last_error") or ("waiting for a login frame" if state == "waiting" else "")
                text = f"FEED DOWN {name} for {down_for}s" + (f": {reason}" if reason else "")
                announce(self.client, self.settings, "feed_down", f"feed:{key}:down:{int(since)}", text)

    def account_connections(self) -> list[tuple[str, str, bool]]:
        """(status name, how an alert names it, True) of each connection an account added as data should have
        up: its feed on and its session active."""
        return [
            (account.feed_status_name(feed.name), f"{account.describe()} ({feed.name})", True)
            for account in self.services.accounts.list()
            if account.feed and account.session.state == SessionState.ACTIVE
            for feed in BY_NAME[account.broker].feeds
            if feed.per_account
        ]

    def watch_deliveries(self) -> None:
        """Deliveries dead-lettered since the last look (several to one consumer: one summary line)."""
        raw = self.client.get(ALERTS_WATERMARK_KEY)
        now = datetime.now(UTC)
        since = datetime.fromisoformat(raw.decode()) if raw else now - timedelta(seconds=WATCH_SECONDS)
        with self.services.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    deliveries.c.id,
                    deliveries.c.url,
                    deliveries.c.event_id,
                    deliveries.c.attempts,
                    deliveries.c.last_error,
                    deliveries.c.updated_at,
                )
                .where(deliveries.c.status == "failed", deliveries.c.updated_at >= since)
                .order_by(deliveries.c.updated_at)
                .limit(1000)
            ).all()
        by_url: dict[str, list] = {}
        for row in rows:
            by_url.setdefault(row.url, []).append(row)
        for url, failed in by_url.items():
            if len(failed) > SUMMARIZE_OVER:
                last = failed[-1]
                text = (
                    f"DELIVERIES FAILED {len(failed)} to {url} dead-lettered (last: {last.last_error or 'no answer'})"
                )
                announce(
                    self.client, self.settings, "delivery_failed", f"deliveries:{url}:{last.id}:{last.attempts}", text
                )
                continue
            for row in failed:
                text = (
                    f"DELIVERY FAILED {row.event_id} to {url} after {row.attempts} attempt(s)"
                    f" ({row.last_error or 'no answer'})"
                )
                announce(self.client, self.settings, "delivery_failed", f"delivery:{row.id}:{row.attempts}", text)
        latest = max((as_utc(row.updated_at) for row in rows), default=None)
        # Rows written in the same instant as the newest are looked at again next time (the seen-keys
        # make that harmless); nothing older is.
        self.client.set(ALERTS_WATERMARK_KEY, (latest or since).isoformat(), ex=7 * 24 * 3600)

    def watch_reconciliations(self) -> None:
        """A reconciliation that ended in an error, once per broker (or account added as data) and error message
        every few hours."""
        runs = [(broker, broker) for broker in BROKERS]
        runs += [(a.reconcile_name, a.describe()) for a in self.services.accounts.list() if a.reconcile]
        for key, name in runs:
            status = {k.decode(): v.decode() for k, v in self.client.hgetall(reconcile_status_key(key)).items()}
            error = status.get("last_error")
            if not error:
                continue
            digest = hashlib.sha256(error.encode()).hexdigest()[:12]
            window = int(time.time() // RECONCILE_REPEAT_SECONDS)
            text = f"RECONCILE FAILED {name}: {error}"
            announce(self.client, self.settings, "reconcile_error", f"reconcile:{key}:{digest}:{window}", text)


def _fresh(status: dict) -> bool:
    """False when the feeds process stopped refreshing the status (it died)."""
    updated = status.get("updated_at")
    if not updated:
        return False
    try:
        moment = datetime.fromisoformat(str(updated).replace("Z", "+00:00"))
    except ValueError:
        return False
    return (datetime.now(UTC) - moment).total_seconds() <= STALE_AFTER_SECONDS


def status(client: redis.Redis) -> dict:
    """The sender's last state (for the API and metrics)."""
    return {k.decode(): v.decode() for k, v in client.hgetall(ALERTS_STATUS_KEY).items()} | {
        "queued": client.xlen(ALERTS_STREAM)
    }


def start(services: Services, settings: AlertSettings, stop: threading.Event | None = None) -> AlertSender | None:
    """Start the sender thread when Telegram is configured (it ends when `stop` is set); None otherwise."""
    if not settings.enabled:
        return None
    down = services.config.alerts.feed_down_seconds
    sender = AlertSender(services, settings, feed_down_seconds=down, stop=stop)
    threading.Thread(target=sender.run, name="alerts", daemon=True).start()
    log.info("alerts: announcing %s to Telegram chat %s", ", ".join(sorted(settings.kinds)), settings.chat_id)
    return sender


__all__ = ["AlertSender", "start", "status"]
