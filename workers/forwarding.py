"""Forward stored events to every consumer in FORWARD_URLS, signed per Standard Webhooks, with retries.

Each delivery (event x consumer) is a row in the database and a member of the consumer's "due" sorted
set in Redis, scored by when it is next due. A forward job claims due deliveries by pushing their
score past a visibility timeout, sends them, and records the attempt; a job that dies mid-attempt
lets the claim lapse, so the delivery is attempted again (delivery.md §5 rq#2015, svix PR #2181).
Each consumer has its own job and lease, so a slow or dead consumer never delays the others.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import redis
import requests
import sqlalchemy as sa

from app.config import Config
from app.db import as_utc, consumers, deliveries, delivery_attempts, events, utcnow
from app.services import get_services
from workers import shutdown
from workers.leases import Lease, kick
from workers.queues import FORWARD_QUEUE, queue

log = logging.getLogger(__name__)

DUE_PREFIX = "oh:due:"
LEASE_PREFIX = "oh:fwd:lease:"
QUEUED_PREFIX = "oh:fwd:queued:"
CONSUMERS_KEY = "oh:consumers"
PARALLEL_PER_CONSUMER = 8
# One claim is one round of parallel sends, so a batch lasts at most about one timeout, well inside
# the claim's visibility (2 x timeout + 5 s): a slow consumer is never sent the same delivery twice.
CLAIM_BATCH = PARALLEL_PER_CONSUMER
MAX_JOB_SECONDS = 20.0
IDLE_EXIT_SECONDS = 1.0
JITTER = 0.1  # "small jitter": +-10 % of each scheduled delay
MAX_RETRY_AFTER = 24 * 3600.0

# Claim up to ARGV[2] members due by ARGV[1], pushing each to ARGV[3] (the visibility deadline).
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids
"""


# Signing (Standard Webhooks v1, delivery.md §1):


def signing_keys(forward_secret: str) -> list[bytes]:
    """The decoded keys of FORWARD_SECRET (several, space-separated, during a rotation).

    Production refuses an undecodable key at start-up (app/config.py); development skips it, loudly.
    """
    keys = []
    for item in forward_secret.split():
        encoded = item[len("whsec_") :] if item.startswith("whsec_") else item
        try:
            keys.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            log.error("a FORWARD_SECRET key is not valid base64 and is not used for signing")
    return keys


def sign(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of id.timestamp.body>` for each key, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys)


def event_body(event: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed) for an event: UTF-8, or ASCII escapes if the text cannot be."""
    try:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate somewhere in the raw payload
        return json.dumps(event, separators=(",", ":")).encode()


def webhook_headers(keys: list[bytes], event_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """Standard Webhooks headers for one attempt: same id every time, fresh timestamp."""
    timestamp = int(now if now is not None else time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Orderhook/1",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
    }
    if keys:
        headers["webhook-signature"] = sign(keys, event_id, timestamp, body)
    return headers


# Retry decisions:


@dataclass(frozen=True)
class Outcome:
    """What one attempt did."""

    status_code: int | None
    latency_ms: float
    error: str | None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        """2xx is success; anything else (3xx included: redirects are not followed) is a failure."""
        return self.status_code is not None and 200 <= self.status_code < 300

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


# Scheduling:


def schedule_new(client: redis.Redis, created: list[tuple[int, str]]) -> None:
    """Make freshly stored deliveries due now and start their consumers' jobs."""
    if not created:
        return
    now = time.time()
    pipe = client.pipeline(transaction=False)
    by_consumer: dict[str, dict[str, float]] = {}
    for delivery_id, cid in created:
        by_consumer.setdefault(cid, {})[str(delivery_id)] = now
    for cid, members in by_consumer.items():
        pipe.zadd(DUE_PREFIX + cid, members, nx=True)
        pipe.sadd(CONSUMERS_KEY, cid)
    pipe.execute()
    for cid in by_consumer:
        kick_consumer(client, cid)


def kick_consumer(client: redis.Redis, cid: str) -> bool:
    """Enqueue the consumer's forward job unless one is running or queued."""
    return kick(
        client,
        queue(client, FORWARD_QUEUE),
        forward_due,
        lease_key=LEASE_PREFIX + cid,
        queued_key=QUEUED_PREFIX + cid,
        args=(cid,),
    )


def has_due(client: redis.Redis, cid: str, now: float | None = None) -> bool:
    """True when the consumer has a delivery due now."""
    return bool(client.zrangebyscore(DUE_PREFIX + cid, "-inf", now or time.time(), start=0, num=1))


def resync_pending(client: redis.Redis, engine: sa.Engine, page: int = 5000, max_pages: int = 40) -> int:
    """Put every pending delivery the database knows back into Redis (after a Redis loss or a crash).

    ZADD NX leaves deliveries Redis already has (and their claims) alone; pages keep each query small.
    """
    total, after = 0, 0
    for _ in range(max_pages):
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.id, deliveries.c.consumer_id, deliveries.c.next_attempt_at)
                .where(deliveries.c.status == "pending", deliveries.c.id > after)
                .order_by(deliveries.c.id)
                .limit(page)
            ).all()
        if not rows:
            break
        pipe = client.pipeline(transaction=False)
        for row in rows:
            due = as_utc(row.next_attempt_at) or utcnow()
            pipe.zadd(DUE_PREFIX + row.consumer_id, {str(row.id): due.timestamp()}, nx=True)
            pipe.sadd(CONSUMERS_KEY, row.consumer_id)
        pipe.execute()
        total += len(rows)
        after = rows[-1].id
    return total


# The job:

_session_local = threading.local()
_pool: ThreadPoolExecutor | None = None


def _session() -> requests.Session:
    """One keep-alive session per sending thread."""
    session = getattr(_session_local, "session", None)
    if session is None:
        session = _session_local.session = requests.Session()
    return session


def _executor() -> ThreadPoolExecutor:
    """The process's sending threads (created after any fork)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=PARALLEL_PER_CONSUMER, thread_name_prefix="forward")
    return _pool


def forward_due(consumer_id: str) -> int:
    """RQ job: send this consumer's due deliveries until none is due; returns attempts made."""
    services = get_services()
    client = services.redis
    lease = Lease(client, LEASE_PREFIX + consumer_id, int(visibility_seconds(services.config.forward_timeout) * 1000))
    acquired = lease.acquire()
    client.delete(QUEUED_PREFIX + consumer_id)
    if not acquired:
        return 0
    attempts = 0
    try:
        deadline = time.monotonic() + MAX_JOB_SECONDS
        idle_since = time.monotonic()
        while shutdown.keep_going(deadline, idle_since, IDLE_EXIT_SECONDS):
            claimed = claim_due(client, consumer_id, services.config.forward_timeout)
            if not claimed:
                time.sleep(0.02)
                continue
            attempts += send_batch(services.config, services.engine, client, consumer_id, claimed)
            idle_since = time.monotonic()
            lease.refresh()
    finally:
        lease.release()
    return attempts


def visibility_seconds(timeout: float) -> float:
    """How long a claimed delivery stays invisible: well past one attempt's timeout, short enough to redo soon."""
    return 2 * timeout + 5


def claim_due(client: redis.Redis, consumer_id: str, timeout: float) -> list[int]:
    """Claim due deliveries: they become due again by themselves if this worker dies mid-attempt."""
    now = time.time()
    ids = client.eval(_CLAIM, 1, DUE_PREFIX + consumer_id, now, CLAIM_BATCH, now + visibility_seconds(timeout))
    return [int(i) for i in ids]


def send_batch(config: Config, engine: sa.Engine, client: redis.Redis, consumer_id: str, ids: list[int]) -> int:
    """Attempt each claimed delivery in parallel, then record every outcome in one transaction."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries, events.c.data)
            .join(events, events.c.id == deliveries.c.event_id)
            .where(deliveries.c.id.in_(ids))
        ).all()
        disabled = conn.execute(
            sa.select(consumers.c.disabled_at).where(consumers.c.id == consumer_id)
        ).scalar_one_or_none()
    live = [row for row in rows if row.status == "pending"]
    stale = set(ids) - {row.id for row in live}
    if stale:
        client.zrem(DUE_PREFIX + consumer_id, *[str(i) for i in stale])
    if not live:
        return 0
    if disabled is not None:
        _fail_all(engine, client, consumer_id, [row.id for row in live], "consumer disabled after 410 Gone")
        return 0
    keys = signing_keys(config.forward_secret) if config.forward_secret else []
    futures = [(row, _executor().submit(attempt, row.url, row.data, keys, config.forward_timeout)) for row in live]
    results = [(row, future.result()) for row, future in futures]
    record_outcomes(config, engine, client, consumer_id, results)
    return len(results)


def attempt(url: str, event: dict[str, Any], keys: list[bytes], timeout: float) -> Outcome:
    """One signed POST; never raises (a failure of any kind is an outcome to record and retry)."""
    started = time.perf_counter()
    try:
        body = event_body(event)
        headers = webhook_headers(keys, event["id"], body)
        # stream=True: the answer's status is enough, and a consumer dripping a body cannot hold us.
        response = _session().post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True)
    except requests.Timeout:
        return Outcome(None, _ms(started), f"timed out after {timeout:g}s")
    except requests.RequestException as exc:
        return Outcome(None, _ms(started), f"{type(exc).__name__}: {_short(str(exc))}")
    except Exception as exc:  # noqa: BLE001 - never let one delivery stall the consumer's queue
        log.exception("forward attempt to a consumer failed unexpectedly")
        return Outcome(None, _ms(started), f"{type(exc).__name__}: {_short(str(exc))}")
    latency = _ms(started)
    retry_after = parse_retry_after(response.headers.get("Retry-After")) if response.status_code in (429, 503) else None
    error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    _finish(response)
    return Outcome(response.status_code, latency, error, retry_after)


def _finish(response: requests.Response) -> None:
    """Read a short answer so the keep-alive connection is reused; drop anything longer unread."""
    try:
        if int(response.headers.get("Content-Length", "-1")) in range(0, 4097):
            response.content  # noqa: B018 - reading the body returns the connection to the pool
    except (ValueError, requests.RequestException):
        pass
    finally:
        response.close()


def record_outcomes(
    config: Config, engine: sa.Engine, client: redis.Redis, consumer_id: str, results: list[tuple[Any, Outcome]]
) -> None:
    """Write attempts and delivery states, then move each delivery in Redis (done, or due again later)."""
    now = utcnow()
    attempt_rows, updates, due_again, finished = [], [], {}, []
    gone = None
    for row, outcome in results:
        number = row.attempts + 1
        attempt_rows.append(
            {
                "delivery_id": row.id,
                "attempt": number,
                "attempted_at": now,
                "status_code": outcome.status_code,
                "latency_ms": round(outcome.latency_ms, 3),
                "error": outcome.error,
            }
        )
        update = {
            "d_id": row.id,
            "attempts": number,
            "last_status_code": outcome.status_code,
            "last_error": outcome.error,
        }
        if outcome.ok:
            update.update(status="delivered", delivered_at=now, next_attempt_at=None)
            finished.append(row.id)
        elif outcome.gone:
            update.update(status="failed", delivered_at=None, next_attempt_at=None)
            finished.append(row.id)
            gone = row.url
        else:
            delay = next_delay(config.forward_retry_schedule, number - row.schedule_offset, outcome.retry_after)
            if delay is None:
                update.update(status="failed", delivered_at=None, next_attempt_at=None)
                finished.append(row.id)
                log.warning(
                    "delivery %s of %s to %s dead-lettered after %d attempts (%s)",
                    row.id,
                    row.event_id,
                    row.url,
                    number,
                    outcome.error,
                )
            else:
                due = now + timedelta(seconds=delay)
                update.update(status="pending", delivered_at=None, next_attempt_at=due)
                due_again[str(row.id)] = due.timestamp()
        updates.append(update)
    with engine.begin() as conn:
        recorded = set()
        for update in updates:
            delivery_id = update.pop("d_id")
            # Guarded by the attempt count read before sending: if another job recorded this
            # delivery meanwhile, this outcome is not counted twice.
            changed = conn.execute(
                deliveries.update()
                .where(
                    deliveries.c.id == delivery_id,
                    deliveries.c.attempts == update["attempts"] - 1,
                    deliveries.c.status == "pending",
                )
                .values(updated_at=now, **update)
            ).rowcount
            if changed:
                recorded.add(delivery_id)
        rows_to_insert = [row for row in attempt_rows if row["delivery_id"] in recorded]
        if rows_to_insert:
            conn.execute(delivery_attempts.insert(), rows_to_insert)
    pipe = client.pipeline(transaction=False)
    if finished:
        pipe.zrem(DUE_PREFIX + consumer_id, *[str(i) for i in finished])
    if due_again:
        pipe.zadd(DUE_PREFIX + consumer_id, due_again)
    pipe.execute()
    if gone:
        disable_consumer(engine, client, consumer_id, gone, "answered 410 Gone")


def disable_consumer(engine: sa.Engine, client: redis.Redis, consumer_id: str, url: str, reason: str) -> None:
    """Stop forwarding to a consumer that said 410 Gone; its pending deliveries go to the dead letter."""
    now = utcnow()
    with engine.begin() as conn:
        updated = conn.execute(
            consumers.update().where(consumers.c.id == consumer_id).values(disabled_at=now, disabled_reason=reason)
        ).rowcount
        if not updated:
            conn.execute(consumers.insert().values(id=consumer_id, url=url, disabled_at=now, disabled_reason=reason))
        conn.execute(
            deliveries.update()
            .where(deliveries.c.consumer_id == consumer_id, deliveries.c.status == "pending")
            .values(status="failed", last_error=f"consumer disabled: {reason}", next_attempt_at=None, updated_at=now)
        )
    client.delete(DUE_PREFIX + consumer_id)
    log.error(
        "consumer %s %s: forwarding to it is DISABLED and its pending deliveries are dead-lettered. "
        "Fix the consumer, then run `flask --app wsgi forward-enable %s` and redrive.",
        url,
        reason,
        url,
    )


def _fail_all(engine: sa.Engine, client: redis.Redis, consumer_id: str, ids: list[int], reason: str) -> None:
    """Dead-letter deliveries to a disabled consumer."""
    with engine.begin() as conn:
        conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_(ids))
            .values(status="failed", last_error=reason, next_attempt_at=None, updated_at=utcnow())
        )
    client.zrem(DUE_PREFIX + consumer_id, *[str(i) for i in ids])


def redrive(engine: sa.Engine, client: redis.Redis, ids: list[int]) -> int:
    """Make failed deliveries pending and due now (a fresh run of the retry schedule)."""
    if not ids:
        return 0
    now = utcnow()
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.id, deliveries.c.consumer_id).where(
                deliveries.c.id.in_(ids), deliveries.c.status == "failed"
            )
        ).all()
        if not rows:
            return 0
        conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_([r.id for r in rows]))
            .values(status="pending", schedule_offset=deliveries.c.attempts, next_attempt_at=now, updated_at=now)
        )
    schedule_new(client, [(r.id, r.consumer_id) for r in rows])
    return len(rows)


def _ms(started: float) -> float:
    """Milliseconds since a perf_counter reading."""
    return (time.perf_counter() - started) * 1000


def _short(text: str) -> str:
    """Error text trimmed for the log and the database."""
    return text if len(text) <= 300 else text[:297] + "..."
