"""POST /api/reconcile (run now) and GET /api/reconcile (each broker's last run), docs/interface.md."""

from __future__ import annotations

import redis
from flask import Blueprint, current_app, jsonify, request

from app.api.auth import require_admin
from app.api.responses import error_response
from app.reconcile import request_reconcile
from app.reconcile.clients import CLIENTS, configured_brokers
from app.reconcile.status import read_status, read_unconfirmed

bp = Blueprint("reconcile", __name__, url_prefix="/api/reconcile")


@bp.post("")
@require_admin
def reconcile_now():
    """Ask the worker to reconcile one broker (`?broker=`) or every broker with credentials: 202."""
    config = current_app.extensions["orderhook"].config
    configured = configured_brokers(config)
    broker = request.args.get("broker", "").strip().lower()
    if broker:
        if broker not in CLIENTS:
            known = ", ".join(CLIENTS)
            return error_response(400, f"unknown broker {broker!r} for reconciliation: use one of {known}")
        if broker not in configured:
            variables = " and ".join(CLIENTS[broker].credentials)
            return error_response(409, f"{broker} cannot be reconciled: set {variables}")
        targets = [broker]
    else:
        if not configured:
            return error_response(
                409, "no broker has REST credentials set (KITE_API_KEY + KITE_ACCESS_TOKEN, ...): nothing to reconcile"
            )
        targets = list(configured)
    client = current_app.extensions["orderhook"].redis
    if not all(request_reconcile(client, name, "on demand (POST /api/reconcile)") for name in targets):
        return error_response(503, "Redis is not answering, so the request could not be passed on; retry shortly")
    return jsonify(requested=targets, status="queued"), 202


@bp.get("")
@require_admin
def reconcile_status():
    """Each reconciled broker's last run: when, orders seen, updates found, last error in plain words."""
    services = current_app.extensions["orderhook"]
    configured = configured_brokers(services.config)
    try:
        brokers = [_view(services.redis, name, name in configured) for name in CLIENTS]
    except redis.RedisError:
        return error_response(503, "Redis is not answering, so the reconciliation state cannot be read; retry shortly")
    return jsonify(brokers=brokers, count=len(brokers))


def _view(client: redis.Redis, broker: str, configured: bool) -> dict:
    """One broker's entry: configured or not, the last run, and orders whose terminal could not be confirmed."""
    status = read_status(client, broker) or {}
    view = {
        "broker": broker,
        "configured": configured,
        "started_at": status.get("started_at"),
        "finished_at": status.get("finished_at"),
        "reason": status.get("reason"),
        "orders_seen": status.get("orders_seen"),
        "updates_found": status.get("updates_found"),
        "confirmations": status.get("confirmations"),
        "last_error": status.get("last_error"),
        "last_error_at": status.get("last_error_at"),
        "runs": status.get("runs", 0),
        "errors": status.get("errors", 0),
        "duration_ms": status.get("duration_ms"),
        "running": bool(status.get("started_at"))
        and (not status.get("finished_at") or status["started_at"] > status["finished_at"]),
        "unconfirmed_orders": read_unconfirmed(client, broker),
    }
    if not configured:
        view["note"] = "not reconciled: set " + " and ".join(CLIENTS[broker].credentials)
    return view
