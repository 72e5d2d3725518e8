"""GET /api/deliveries and POST /api/deliveries/<id>/retry: the forward log and its dead letter."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, request

from app.api.auth import require_admin
from app.api.errors import error_response
from app.api.orders import parse_limit
from app.db import as_utc, consumers, deliveries, delivery_attempts, events

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
    if request.args.get("order"):  # integration: blotter, deliveries of one order's events ("<broker>/<order_id>")
        broker, _, order_id = request.args["order"].partition("/")
        owned = sa.select(events.c.id).where(events.c.broker == broker, events.c.order_id == order_id)
        query = query.where(deliveries.c.event_id.in_(owned))
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
    from workers.forwarding import redrive

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


@bp.post("/deliveries/redrive")
@require_admin
def redrive_failed():
    """Redrive failed deliveries of one consumer (since a time); dry_run (the default) only counts them."""
    # integration: blotter bulk redrive, app/cli.py's query; developer "pipeline" moves redrive to app/deliveries.py
    from datetime import UTC, datetime

    from workers.forwarding import redrive

    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("consumer"), str) or not body["consumer"]:
        return error_response(400, 'send JSON {"consumer": "<forward URL>", "since": "<ISO time>", "dry_run": true}')
    dry_run = body.get("dry_run", True)
    since = body.get("since")
    if not isinstance(dry_run, bool):
        return error_response(400, "dry_run must be true or false")
    query = sa.select(deliveries.c.id).where(deliveries.c.status == "failed", deliveries.c.url == body["consumer"])
    if since is not None:
        try:
            moment = datetime.fromisoformat(str(since).replace("Z", "+00:00"))
        except ValueError:
            return error_response(400, "since must be an ISO 8601 time, e.g. 2026-11-28T09:15:00Z")
        query = query.where(deliveries.c.created_at >= (moment if moment.tzinfo else moment.replace(tzinfo=UTC)))
    services = _services()
    with services.engine.connect() as conn:
        ids = [row.id for row in conn.execute(query.order_by(deliveries.c.id))]
    if dry_run:
        return jsonify(count=len(ids), dry_run=True)
    done = sum(redrive(services.engine, services.redis, ids[i : i + 500]) for i in range(0, len(ids), 500))
    return jsonify(count=done, dry_run=False)


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
