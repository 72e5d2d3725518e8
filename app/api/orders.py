"""GET /api/orders and /api/orders/<broker>/<order_id>: current states and their events."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, request

from app.api.auth import require_admin
from app.api.errors import error_response
from app.db import events, orders, raw_postbacks  # integration: raw_postbacks for with_raw
from app.events import BROKERS, OrderStatus
from app.rawlog import with_raw  # integration: events.data has no raw (issue 12)
from app.state import public_view

bp = Blueprint("orders", __name__, url_prefix="/api")
MAX_LIMIT = 1000


def parse_limit(default: int = 100):
    """`limit` as a whole number >= 1 (more than 1000 is served as 1000), or an error response."""
    raw = request.args.get("limit", str(default))
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or int(raw) < 1:
        return None, error_response(400, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return min(int(raw), MAX_LIMIT), None


@bp.get("/orders")
@require_admin
def list_orders():
    """Current order states, most recently updated first; filters broker, account_id, status, limit."""
    limit, error = parse_limit()
    if error:
        return error
    query = sa.select(orders.c.data).order_by(orders.c.updated_at.desc(), orders.c.order_id).limit(limit)
    broker = request.args.get("broker")
    if broker:
        if broker not in BROKERS:
            return error_response(400, f"broker must be one of {list(BROKERS)}")
        query = query.where(orders.c.broker == broker)
    if request.args.get("account_id"):
        query = query.where(orders.c.account_id == request.args["account_id"])
    status = request.args.get("status")
    if status:
        status = status.upper()
        if status not in OrderStatus.ALL:
            return error_response(400, f"status must be one of {list(OrderStatus.ALL)}")
        query = query.where(orders.c.status == status)
    with _engine().connect() as conn:
        rows = [public_view(row.data) for row in conn.execute(query)]
    return jsonify(orders=rows, count=len(rows))


@bp.get("/orders/<broker>/<path:order_id>")
@require_admin
def get_order(broker: str, order_id: str):
    """One order's current state plus `events`, its normalized events in arrival order."""
    with _engine().connect() as conn:
        row = conn.execute(
            sa.select(orders.c.data).where(orders.c.broker == broker, orders.c.order_id == order_id)
        ).first()
        if row is None:
            return error_response(404, f"no {broker} order {order_id!r} has been received")
        event_rows = conn.execute(
            sa.select(events.c.data, raw_postbacks.c.body)  # integration: raw is rebuilt from the one stored body
            .outerjoin(raw_postbacks, raw_postbacks.c.event_id == events.c.id)
            .where(events.c.broker == broker, events.c.order_id == order_id)
            .order_by(events.c.sequence)
        )
        body = public_view(row.data)
        body["events"] = [with_raw(r.data, r.body or b"") for r in event_rows]  # integration: app/rawlog.py
    return jsonify(body)


def _engine():
    """The process's database engine."""
    return current_app.extensions["orderhook"].engine
