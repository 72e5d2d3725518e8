"""GET /api/deliveries[/<id>], POST /api/deliveries/<id>/retry and /redrive: the forward log and its dead letter."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, request

from app.api.auth import require_admin
from app.api.orders import (
    BadQuery,
    as_db_time,
    decode_cursor,
    encode_cursor,
    parse_limit,
    parse_since,
    parse_time,
    query_text,
)
from app.api.responses import error_response
from app.consumers.model import shown_url
from app.db import as_utc, consumers, deliveries, delivery_attempts, events
from app.delivery import of_removed_consumers, redrive

bp = Blueprint("deliveries", __name__, url_prefix="/api")
STATUSES = ("pending", "delivered", "failed")
MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database
REDRIVE_BATCH = 500


@bp.get("/deliveries")
@require_admin
def list_deliveries():
    """Deliveries, newest first, with their attempts; filters status, consumer, event_id, order, since; cursor."""
    limit, error = parse_limit()
    if error:
        return error
    try:
        query = _deliveries_query()
        cursor = decode_cursor((int,))
    except BadQuery as exc:
        return error_response(400, str(exc))
    if cursor is not None:
        query = query.where(deliveries.c.id < cursor[0])
    query = query.order_by(deliveries.c.id.desc()).limit(limit + 1)
    with _services().engine.connect() as conn:
        rows = conn.execute(query).all()
        page = rows[:limit]
        attempts = _attempts(conn, [row.id for row in page])
    next_cursor = encode_cursor([page[-1].id]) if len(rows) > limit else None
    return jsonify(
        deliveries=[_delivery(row, attempts.get(row.id, [])) for row in page],
        count=len(page),
        next_cursor=next_cursor,
    )


def _deliveries_query() -> sa.Select:
    """The filtered select of deliveries (BadQuery on a refused filter)."""
    query = sa.select(deliveries)
    status = query_text("status")
    if status:
        if status not in STATUSES:
            raise BadQuery(f"status must be one of {list(STATUSES)}")
        query = query.where(deliveries.c.status == status)
    event_id = query_text("event_id")
    if event_id:
        query = query.where(deliveries.c.event_id == event_id)
    consumer = query_text("consumer")
    if consumer:
        query = query.where(_of_consumer(consumer))
    order = query_text("order", ascii_only=False)
    if order:
        broker, sep, order_id = order.partition("/")
        if not sep or not broker or not order_id:
            raise BadQuery("order must be <broker>/<order_id>, e.g. kite/220303000308932")
        query = query.where(
            deliveries.c.event_id.in_(
                sa.select(events.c.id).where(events.c.broker == broker, events.c.order_id == order_id)
            )
        )
    since = parse_since()
    if since is not None:
        query = query.where(deliveries.c.created_at >= as_db_time(since))
    return query


def delivery_id_or_none(text: str) -> int | None:
    """A delivery id in ASCII digits within the column's range; anything else names no delivery.

    Flask's int converter reads Unicode digits ('/api/deliveries/\u0661' would be delivery 1): ids arrive
    as text and only ASCII digits count (docs/api.md).
    """
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > MAX_ID:
        return None
    return int(text)


@bp.get("/deliveries/<delivery_id>")
@require_admin
def get_delivery(delivery_id: str):
    """One delivery and every attempt made."""
    number = delivery_id_or_none(delivery_id)
    if number is None:
        return error_response(404, "no such delivery: ids are whole numbers in ASCII digits")
    with _services().engine.connect() as conn:
        row = conn.execute(sa.select(deliveries).where(deliveries.c.id == number)).first()
        if row is None:
            return error_response(404, f"no delivery {number}")
        return jsonify(_delivery(row, _attempts(conn, [row.id]).get(row.id, [])))


@bp.post("/deliveries/<delivery_id>/retry")
@require_admin
def retry_delivery(delivery_id: str):
    """Redrive one failed (dead-lettered) delivery: pending again, due now, a fresh retry schedule."""
    number = delivery_id_or_none(delivery_id)
    if number is None:
        return error_response(404, "no such delivery: ids are whole numbers in ASCII digits")
    services = _services()
    with services.engine.connect() as conn:
        row = conn.execute(sa.select(deliveries).where(deliveries.c.id == number)).first()
        if row is None:
            return error_response(404, f"no delivery {number}")
        disabled = _disabled_reason(conn, row.consumer_id)
    if row.status != "failed":
        return error_response(409, f"delivery {number} is {row.status}; only failed deliveries can be retried")
    if of_removed_consumers(services.engine, [number]):
        return _removed_answer(row.consumer_id)
    if disabled is not None:
        return _disabled_answer(row.url, disabled)
    redrive_deliveries(services.engine, services.redis, [number])
    return jsonify(id=number, status="pending"), 202


@bp.post("/deliveries/redrive")
@require_admin
def bulk_redrive():
    """Redrive the failed deliveries of a consumer and/or a time range; `dry_run` only counts them."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return error_response(400, 'send a JSON object: {"consumer": url, "since": iso, "until": iso, "dry_run": bool}')
    unknown = sorted(set(payload) - {"consumer", "since", "until", "dry_run"})
    if unknown:
        return error_response(400, f"unknown fields {unknown}; use consumer, since, until, dry_run")
    consumer, dry_run = payload.get("consumer"), payload.get("dry_run", False)
    if consumer is not None and (not isinstance(consumer, str) or not consumer.isascii() or not consumer):
        return error_response(400, "consumer must be a consumer's id (GET /api/consumers) or its URL")
    if not isinstance(dry_run, bool):
        return error_response(400, "dry_run must be true or false")
    try:
        since = parse_time(payload["since"], "since") if payload.get("since") is not None else None
        until = parse_time(payload["until"], "until") if payload.get("until") is not None else None
    except BadQuery as exc:
        return error_response(400, str(exc))
    if not (consumer or since):
        return error_response(400, "name consumer and/or since (redriving everything needs since)")
    query = sa.select(deliveries.c.id, deliveries.c.consumer_id).where(deliveries.c.status == "failed")
    if consumer:
        query = query.where(_of_consumer(consumer))
    if since:
        query = query.where(deliveries.c.created_at >= as_db_time(since))
    if until:
        query = query.where(deliveries.c.created_at < as_db_time(until))
    services = _services()
    with services.engine.connect() as conn:
        if consumer and not dry_run:
            disabled = conn.execute(
                sa.select(consumers.c.disabled_reason).where(
                    sa.or_(consumers.c.url == consumer, consumers.c.id == consumer),
                    consumers.c.disabled_at.is_not(None),
                )
            ).first()
            if disabled is not None:
                return _disabled_answer(consumer, disabled.disabled_reason)
        rows = conn.execute(query.order_by(deliveries.c.id)).all()
    skip = of_removed_consumers(services.engine, [row.id for row in rows])
    ids = [row.id for row in rows if row.id not in skip]
    if consumer and skip and not ids:
        removed = sorted({row.consumer_id for row in rows if row.id in skip})
        return _removed_answer(consumer if consumer in removed else removed[0])
    skipped = {"skipped_removed": len(rows) - len(ids)} if len(rows) > len(ids) else {}
    if dry_run:
        return jsonify(count=len(ids), dry_run=True, **skipped)
    done = sum(
        redrive_deliveries(services.engine, services.redis, ids[i : i + REDRIVE_BATCH])
        for i in range(0, len(ids), REDRIVE_BATCH)
    )
    return jsonify(count=done, dry_run=False, **skipped), 202


def _of_consumer(consumer: str):
    """Deliveries of a consumer named by its id (GET /api/consumers) or by its URL (as FORWARD_URLS lists it)."""
    return sa.or_(deliveries.c.consumer_id == consumer, deliveries.c.url == consumer)


def redrive_deliveries(engine: sa.Engine, client, ids: list[int]) -> int:
    """Make these failed deliveries pending and due now; returns how many were."""
    return redrive(engine, client, ids)


def _removed_answer(consumer_id: str):
    """409: a removed consumer has nowhere to send to, so its redriven deliveries would only fail again."""
    return error_response(409, f"consumer {consumer_id} was removed; its deliveries cannot be retried")


def _disabled_reason(conn, consumer_id: str) -> str | None:
    """Why a consumer is disabled (a 410 Gone), or None while it is enabled."""
    row = conn.execute(
        sa.select(consumers.c.disabled_reason).where(
            consumers.c.id == consumer_id, consumers.c.disabled_at.is_not(None)
        )
    ).first()
    return None if row is None else (row.disabled_reason or "disabled")


def _disabled_answer(url: str, reason: str | None):
    """409: a disabled consumer is re-enabled first, or its redriven deliveries only fail again."""
    return error_response(
        409,
        f"consumer {url} is disabled ({reason}); enable it first: PATCH /api/consumers/<its id> "
        f'{{"enabled": true}}, or for a FORWARD_URLS consumer `flask --app wsgi forward-enable {url}`',
    )


def _attempts(conn, ids: list[int]) -> dict[int, list[dict]]:
    """Attempts per delivery id, oldest first."""
    found: dict[int, list[dict]] = {}
    if not ids:
        return found
    rows = conn.execute(
        sa.select(delivery_attempts).where(delivery_attempts.c.delivery_id.in_(ids)).order_by(delivery_attempts.c.id)
    )
    for row in rows:
        found.setdefault(row.delivery_id, []).append(
            {
                "attempt": row.attempt,
                "attempted_at": _iso(row.attempted_at),
                "status_code": row.status_code,
                "latency_ms": row.latency_ms,
                "error": row.error,
            }
        )
    return found


def _delivery(row, attempts: list[dict]) -> dict:
    """A delivery as the API shows it."""
    return {
        "id": row.id,
        "event_id": row.event_id,
        "consumer": shown_url(row.url),
        "consumer_id": row.consumer_id,
        "status": row.status,
        "attempts": row.attempts,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "next_attempt_at": _iso(row.next_attempt_at),
        "delivered_at": _iso(row.delivered_at),
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "attempt_log": attempts,
    }


def _iso(value) -> str | None:
    """UTC ISO 8601 with a Z."""
    value = as_utc(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


def _services():
    """The process's services."""
    return current_app.extensions["orderhook"]
