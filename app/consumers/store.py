"""Consumers in the database, and the environment's (FORWARD_URLS) beside them (docs/consumers.md).

Every change bumps the row's `revision` (a worker's lane picks up a new URL or secret when it moves). Secrets
are decrypted only when asked (`secrets=True`: the worker's signing), so listings never hold one. Removing a
consumer ends its pending deliveries as `failed`; its delivered and failed ones stay in the delivery log.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from secrets import token_hex
from typing import Any

import redis
import sqlalchemy as sa

from app.config import Config
from app.consumers.filters import Filters, stored_filters
from app.consumers.model import API, ENVIRONMENT, HTTP, ID_PREFIX, Consumer, consumer_id, destination_text, view
from app.consumers.revision import announce_change
from app.consumers.routes import forget_consumers
from app.consumers.secrets import ROTATION_HOURS, decrypt, encrypt, new_secret
from app.db import as_utc, consumers, deliveries, delivery_attempts, events, utcnow
from app.delivery.policy import host_and_port
from app.redis_keys import CONSUMERS_KEY, STATS_KEY, due_key

MAX_ERROR_LENGTH = 500
#: The latency figures read at most this many first deliveries of the last hour per consumer (the newest).
LATENCY_SAMPLE = 10_000
LATENCY_WINDOW = timedelta(hours=1)


def where(consumer: Consumer) -> str:
    """How logs and errors name a consumer: host and port of a URL (it may carry a token), else its destination."""
    return host_and_port(consumer.url or "") if consumer.type == HTTP else consumer.target


class ConsumerNotFound(Exception):
    """No consumer has that id."""


class ReadOnly(Exception):
    """The environment's consumer changes only with FORWARD_URLS (409)."""


def environment_consumers(config: Config, rows: dict[str, Any] | None = None) -> list[Consumer]:
    """One read-only http consumer per FORWARD_URLS entry, signed with FORWARD_SECRET; `rows`: their table
    rows by id (a 410 Gone disabled one)."""
    rows = rows or {}
    found = []
    for url in dict.fromkeys(config.forward_urls):
        cid = consumer_id(url)
        row = rows.get(cid)
        reason = None
        if row is not None and row.disabled_at is not None:
            reason = row.disabled_reason or "disabled"
        found.append(
            Consumer(
                id=cid,
                type=HTTP,
                url=url,
                description="FORWARD_URLS",
                source=ENVIRONMENT,
                disabled_reason=reason,
                secrets=tuple(config.forward_secret.split()),
            )
        )
    return found


class ConsumerStore:
    """CRUD over the consumers table, with the environment's consumers listed first (read-only)."""

    def __init__(self, config: Config, engine: sa.Engine, client: redis.Redis | None = None) -> None:
        self.config = config
        self.engine = engine
        self.client = client  # where a change is announced to the workers (app/consumers/revision.py)

    def _changed(self) -> None:
        """This process's routing table sees the change at once; every worker at its next batch."""
        forget_consumers()
        announce_change(self.client)

    # Reading

    def list(self, *, secrets: bool = False) -> list[Consumer]:
        """The environment's consumers, then those added as data, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(consumers).order_by(consumers.c.created_at, consumers.c.id)).all()
        return self.from_rows(rows, secrets=secrets)

    def from_rows(self, rows: Iterable[Any], *, secrets: bool = False) -> list[Consumer]:
        """Consumers from table rows (and FORWARD_URLS): what list() and the worker's cache build."""
        rows = list(rows)
        environment = {row.id: row for row in rows if row.source == ENVIRONMENT}
        found = environment_consumers(self.config, environment)
        if not secrets:
            found = [replace(c, secrets=()) for c in found]
        return found + [self.consumer_from_row(row, secrets=secrets) for row in rows if row.source == API]

    def get(self, cid: str, *, secrets: bool = False) -> Consumer:
        """One consumer by id (the environment's too); ConsumerNotFound."""
        for consumer in environment_consumers(self.config):
            if consumer.id == cid:
                return next(c for c in self.list(secrets=secrets) if c.id == cid)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(consumers).where(consumers.c.id == cid, consumers.c.source == API)).first()
        if row is None:
            raise ConsumerNotFound(cid)
        return self.consumer_from_row(row, secrets=secrets)

    def writable(self, cid: str) -> Consumer:
        """The consumer when it may be changed; ConsumerNotFound, or ReadOnly for the environment's."""
        consumer = self.get(cid)
        if consumer.read_only:
            raise ReadOnly(
                f"{cid} comes from FORWARD_URLS and is read-only: change the environment, or add the consumer "
                "through the API (POST /api/consumers) to manage it here"
            )
        return consumer

    # Writing

    def create(
        self,
        kind: str,
        *,
        url: str | None = None,
        queue: str | None = None,
        function: str | None = None,
        stream: str | None = None,
        description: str = "",
        filters: Filters | None = None,
        enabled: bool = True,
    ) -> tuple[Consumer, str | None]:
        """Add a consumer; returns it and its new secret (http only: shown this once)."""
        now = utcnow()
        secret = new_secret() if kind == HTTP else None
        values = {
            "id": ID_PREFIX + token_hex(8),
            "url": destination_text(kind, url, queue, function, stream),
            "source": API,
            "type": kind,
            "queue": queue,
            "function": function,
            "stream": stream,
            "description": description,
            "filters": (filters or Filters()).shown(),
            "enabled": enabled,
            "secret": encrypt(self.config, secret) if secret else None,
            "revision": 1,
            "created_at": now,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            conn.execute(consumers.insert().values(**values))
        self._changed()
        return self.get(values["id"]), secret

    def update(
        self,
        cid: str,
        *,
        description: str | None = None,
        filters: Filters | None = None,
        enabled: bool | None = None,
        url: str | None = None,
    ) -> Consumer:
        """Change what is given. Switching on also lifts a 410 Gone's disabling; a new URL is where pending
        deliveries go too."""
        consumer = self.writable(cid)
        now = utcnow()
        values: dict[str, Any] = {"revision": consumers.c.revision + 1, "updated_at": now}
        if description is not None:
            values["description"] = description
        if filters is not None:
            values["filters"] = filters.shown()
        if enabled is not None:
            values["enabled"] = enabled
            if enabled:
                values |= {"disabled_at": None, "disabled_reason": None}
        if url is not None:
            if consumer.type != HTTP:
                raise ValueError(f"url is for http consumers; this one is {consumer.type}")
            values["url"] = url
        with self.engine.begin() as conn:
            conn.execute(consumers.update().where(consumers.c.id == cid).values(**values))
            if url is not None:
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.consumer_id == cid, deliveries.c.status == "pending")
                    .values(url=url)
                )
        self._changed()
        return self.get(cid)

    def rotate(self, cid: str) -> str:
        """A new secret; deliveries are signed under the old one too for ROTATION_HOURS (one old key is kept:
        rotating again within the window drops the oldest)."""
        consumer = self.writable(cid)
        if consumer.type != HTTP:
            raise ValueError(f"only http consumers have a signing secret; this one is {consumer.type}")
        now = utcnow()
        secret = new_secret()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(consumers.c.secret).where(consumers.c.id == cid).with_for_update()).first()
            if row is None:
                raise ConsumerNotFound(cid)
            conn.execute(
                consumers.update()
                .where(consumers.c.id == cid)
                .values(
                    secret=encrypt(self.config, secret),
                    previous_secret=row.secret,
                    previous_secret_until=now + timedelta(hours=ROTATION_HOURS),
                    secret_rotated_at=now,
                    revision=consumers.c.revision + 1,
                    updated_at=now,
                )
            )
        self._changed()
        return secret

    def delete(self, cid: str, client: redis.Redis) -> int:
        """Remove a consumer: its pending deliveries end as failed (returns how many); the rest stay."""
        self.writable(cid)
        now = utcnow()
        with self.engine.begin() as conn:
            if not conn.execute(consumers.delete().where(consumers.c.id == cid, consumers.c.source == API)).rowcount:
                raise ConsumerNotFound(cid)
            ended = conn.execute(
                deliveries.update()
                .where(deliveries.c.consumer_id == cid, deliveries.c.status == "pending")
                .values(status="failed", last_error="consumer removed", next_attempt_at=None, updated_at=now)
            ).rowcount
        self._changed()
        pipe = client.pipeline(transaction=False)
        pipe.delete(due_key(cid))
        pipe.srem(CONSUMERS_KEY, cid)
        if ended:
            pipe.hincrby(STATS_KEY, "deliveries_failed", ended)
        pipe.execute()
        return ended

    # Rows

    def consumer_from_row(self, row: Any, *, secrets: bool) -> Consumer:
        """A table row as a Consumer (its secrets decrypted when asked)."""
        now = utcnow()
        until = as_utc(row.previous_secret_until)
        if until is not None and until <= now:
            until = None
        keys: tuple[str, ...] = ()
        if secrets and row.type == HTTP:
            current = decrypt(self.config, row.secret)
            previous = decrypt(self.config, row.previous_secret) if until is not None else None
            keys = tuple(k for k in (current, previous) if k)
        return Consumer(
            id=row.id,
            type=row.type,
            url=row.url if row.type == HTTP else None,
            queue=row.queue,
            function=row.function,
            stream=row.stream,
            description=row.description or "",
            filters=stored_filters(row.filters),
            enabled=bool(row.enabled),
            source=API,
            created_at=as_utc(row.created_at),
            disabled_reason=(row.disabled_reason or "disabled") if row.disabled_at is not None else None,
            secret_rotated_at=as_utc(row.secret_rotated_at),
            previous_secret_until=until,
            revision=row.revision,
            secrets=keys,
        )


# Figures for the view


def consumer_views(engine: sa.Engine, found: list[Consumer], run_attempts: int | None = None) -> list[dict[str, Any]]:
    """The consumers' views with their delivery figures (what the API and the CLI show); `run_attempts`: how
    many attempts one run of the retry schedule makes (len(FORWARD_RETRY_SCHEDULE) + 1)."""
    stats = consumer_stats(engine, [c.id for c in found], run_attempts=run_attempts)
    return [view(c, stats.get(c.id)) for c in found]


def consumer_stats(
    engine: sa.Engine, ids: list[str], now: datetime | None = None, run_attempts: int | None = None
) -> dict[str, dict[str, Any]]:
    """Per consumer: counts by state, the last error (and when), latency p50/p99 of the last hour's first
    deliveries (docs/consumers.md "The view"); three queries whatever the number of consumers."""
    stats: dict[str, dict[str, Any]] = {
        cid: {"counts": {"delivered": 0, "pending": 0, "failed": 0}, "latency_ms": {"p50": None, "p99": None}}
        for cid in ids
    }
    if not ids:
        return stats
    now = now or utcnow()
    with engine.connect() as conn:
        counted = conn.execute(
            sa.select(deliveries.c.consumer_id, deliveries.c.status, sa.func.count())
            .where(deliveries.c.consumer_id.in_(ids))
            .group_by(deliveries.c.consumer_id, deliveries.c.status)
        )
        for cid, status, count in counted:
            if status in stats[cid]["counts"]:
                stats[cid]["counts"][status] = count
        for cid, row in _last_errors(conn, ids).items():
            stats[cid]["last_error"] = row.last_error[:MAX_ERROR_LENGTH]
            stats[cid]["last_error_at"] = as_utc(row.updated_at)
        for cid, spans in _first_delivery_spans(conn, ids, now, run_attempts).items():
            stats[cid]["latency_ms"] = _percentiles(spans)
    return stats


def _last_errors(conn: sa.Connection, ids: list[str]) -> dict[str, Any]:
    """Each consumer's most recently updated delivery with an error (the highest id on a tie)."""
    with_error = sa.and_(deliveries.c.consumer_id.in_(ids), deliveries.c.last_error.is_not(None))
    latest = (
        sa.select(deliveries.c.consumer_id, sa.func.max(deliveries.c.updated_at).label("at"))
        .where(with_error)
        .group_by(deliveries.c.consumer_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(deliveries.c.consumer_id, deliveries.c.last_error, deliveries.c.updated_at)
        .join(latest, sa.and_(latest.c.consumer_id == deliveries.c.consumer_id, latest.c.at == deliveries.c.updated_at))
        .where(with_error)
        .order_by(deliveries.c.id)
    )
    return {row.consumer_id: row for row in rows}


def _first_delivery_spans(
    conn: sa.Connection, ids: list[str], now: datetime, run_attempts: int | None
) -> dict[str, list[float]]:
    """Per consumer, ms from an event's receipt to the end of its delivery's first successful attempt, for the
    last hour's events: deliveries made with their event only (not a replay's), first delivered in the first
    run of the retry schedule (not after a redrive); a later replay's or redrive's success never counts."""
    since = now - LATENCY_WINDOW
    first_ok = (
        sa.select(delivery_attempts.c.delivery_id, sa.func.min(delivery_attempts.c.attempt).label("attempt"))
        .join(deliveries, deliveries.c.id == delivery_attempts.c.delivery_id)
        .where(
            deliveries.c.consumer_id.in_(ids),
            deliveries.c.created_at >= since,  # made after its event was received: older ones cannot count
            delivery_attempts.c.error.is_(None),  # a success (2xx, or taken by a Redis destination)
        )
        .group_by(delivery_attempts.c.delivery_id)
        .subquery()
    )
    query = (
        sa.select(
            deliveries.c.consumer_id,
            delivery_attempts.c.attempted_at,
            delivery_attempts.c.latency_ms,
            events.c.received_at,
        )
        .select_from(first_ok)
        .join(
            delivery_attempts,
            sa.and_(
                delivery_attempts.c.delivery_id == first_ok.c.delivery_id,
                delivery_attempts.c.attempt == first_ok.c.attempt,
            ),
        )
        .join(deliveries, deliveries.c.id == first_ok.c.delivery_id)
        .join(events, events.c.id == deliveries.c.event_id)
        .where(deliveries.c.created_at == events.c.stored_at, delivery_attempts.c.attempted_at >= since)
        .order_by(delivery_attempts.c.attempted_at.desc())
        .limit(LATENCY_SAMPLE * len(ids))
    )
    if run_attempts is not None:
        query = query.where(first_ok.c.attempt <= run_attempts)
    spans: dict[str, list[float]] = {}
    for cid, attempted_at, latency_ms, received_at in conn.execute(query):
        try:
            received = datetime.fromisoformat(received_at.replace("Z", "+00:00"))
        except (AttributeError, ValueError):
            continue
        taken = spans.setdefault(cid, [])
        if received < since or len(taken) >= LATENCY_SAMPLE:
            continue
        done = as_utc(attempted_at) + timedelta(milliseconds=latency_ms or 0.0)
        taken.append(max(0.0, (done - received).total_seconds() * 1000))
    return spans


def _percentiles(spans: list[float]) -> dict[str, float | None]:
    """p50 and p99 in ms (null when nothing was delivered)."""
    if not spans:
        return {"p50": None, "p99": None}
    if len(spans) == 1:
        return {"p50": round(spans[0], 1), "p99": round(spans[0], 1)}
    cuts = statistics.quantiles(spans, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p99": round(cuts[98], 1)}
