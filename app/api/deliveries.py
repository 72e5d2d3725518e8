"""GET /api/deliveries and POST /api/deliveries/<id>/retry: the forward log and its dead letter."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, request

from app.api.auth import require_admin
from app.api.errors import error_response
from app.api.orders import parse_limit
from app.db import as_utc, consumers, deliveries, delivery_attempts
from app.delivery import redrive  # integration: delivery bookkeeping is domain code now (app/delivery)

bp = Blueprint("deliveries", __name__, url_prefix="/api")
STATUSES = ("pending", "delivered", "failed")
MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database


@bp.get("/deliveries")
@require_admin
def list_deliveries():
    """Deliveries (newest first) with their attempts; filters status, event_id, consumer url, limit."""
    limit, error = parse_limit()
    if error:
        return error
    query = sa.select(deliveries).order_by(deliveries.c.id.desc()).limit(limit)
    status = request.args.get("status")
    if status:
        if status not in STATUSES:
            return error_response(400, f"status must be one of {list(STATUSES)}")
        query = query.where(deliveries.c.status == status)
    if request.args.get("event_id"):
        query = query.where(deliveries.c.event_id == request.args["event_id"])
    if request.args.get("consumer"):
        query = query.where(deliveries.c.url == request.args["consumer"])
    with _services().engine.connect() as conn:
        rows = conn.execute(query).all()
        attempts = _attempts(conn, [row.id for row in rows])
    return jsonify(deliveries=[_delivery(row, attempts.get(row.id, [])) for row in rows], count=len(rows))


@bp.get("/deliveries/<int:delivery_id>")
@require_admin
def get_delivery(delivery_id: int):
    """One delivery and every attempt made."""
    if delivery_id > MAX_ID:
        return error_response(404, f"no delivery {delivery_id}")
    with _services().engine.connect() as conn:
        row = conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).first()
        if row is None:
            return error_response(404, f"no delivery {delivery_id}")
        return jsonify(_delivery(row, _attempts(conn, [row.id]).get(row.id, [])))


@bp.post("/deliveries/<int:delivery_id>/retry")
@require_admin
def retry_delivery(delivery_id: int):
    """Redrive one failed (dead-lettered) delivery: pending again, due now, a fresh retry schedule."""
    if delivery_id > MAX_ID:
        return error_response(404, f"no delivery {delivery_id}")
    services = _services()
    with services.engine.connect() as conn:
        row = conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).first()
        if row is None:
            return error_response(404, f"no delivery {delivery_id}")
        disabled = conn.execute(
            sa.select(consumers.c.disabled_reason).where(
                consumers.c.id == row.consumer_id, consumers.c.disabled_at.is_not(None)
            )
        ).first()
    if row.status != "failed":
        return error_response(409, f"delivery {delivery_id} is {row.status}; only failed deliveries can be retried")
    if disabled is not None:
        return error_response(
            409,
            f"consumer {row.url} is disabled ({disabled.disabled_reason}); "
            f"run `flask --app wsgi forward-enable {row.url}` first",
        )
    redrive(services.engine, services.redis, [delivery_id])
    return jsonify(id=delivery_id, status="pending"), 202


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
        "consumer": row.url,
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
    return current_app.extensions["orderhook"]
