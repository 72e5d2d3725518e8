"""POST /api/reconcile (run now) and GET /api/reconcile (each account's last run), docs/interface.md and
docs/reconcile.md ("Accounts"): the environment's account of each broker under `brokers`, as before accounts
were data, and each account added as data under `accounts`, by its reconcile name."""

from __future__ import annotations

import redis
import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, request

from app.accounts.model import Account
from app.accounts.store import CredentialsUnreadable
from app.api.auth import require_admin
from app.api.responses import error_response
from app.reconcile import request_reconcile
from app.reconcile.clients import CLIENTS, account_ready, configured_brokers, why_not
from app.reconcile.status import read_status, read_unconfirmed

bp = Blueprint("reconcile", __name__, url_prefix="/api/reconcile")
#: What reading the accounts may raise when the database or the key is not right.
UNREADABLE = (sa.exc.SQLAlchemyError, CredentialsUnreadable)


@bp.post("")
@require_admin
def reconcile_now():
    """Ask the worker to reconcile every account of one broker (`?broker=`) or every account: 202."""
    services = current_app.extensions["orderhook"]
    config = services.config
    configured = configured_brokers(config)
    broker = request.args.get("broker", "").strip().lower()
    if broker and broker not in CLIENTS:
        known = ", ".join(CLIENTS)
        return error_response(400, f"unknown broker {broker!r} for reconciliation: use one of {known}")
    try:
        listed = _data_accounts(services, broker)
    except UNREADABLE as exc:
        return _unreadable(exc)
    data = [account.reconcile_name for account in listed if account_ready(config, account)]
    targets = [name for name in configured if not broker or name == broker] + data
    if not targets and broker:
        variables = " and ".join(CLIENTS[broker].credentials)
        return error_response(
            409, f"{broker} cannot be reconciled: set {variables}, or add a {broker} account with an active session"
        )
    if not targets:
        return error_response(
            409,
            "no broker has REST credentials set (KITE_API_KEY + KITE_ACCESS_TOKEN, ...) and no account added with "
            "reconciliation on has an active session: nothing to reconcile",
        )
    client = services.redis
    if not all(request_reconcile(client, name, "on demand (POST /api/reconcile)") for name in targets):
        return error_response(503, "Redis is not answering, so the request could not be passed on; retry shortly")
    return jsonify(requested=targets, status="queued"), 202


@bp.get("")
@require_admin
def reconcile_status():
    """Each broker's environment account and each account added as data: the last run, orders seen, updates
    found, last error in plain words."""
    services = current_app.extensions["orderhook"]
    configured = configured_brokers(services.config)
    try:
        data = _data_accounts(services, "")
    except UNREADABLE as exc:
        return _unreadable(exc)
    try:
        brokers = [_view(services.redis, name, name in configured) for name in CLIENTS]
        accounts = [_account_view(services, account) for account in data]
    except redis.RedisError:
        return error_response(503, "Redis is not answering, so the reconciliation state cannot be read; retry shortly")
    return jsonify(brokers=brokers, count=len(brokers), accounts=accounts)


def _unreadable(exc: Exception):
    """The 503 of an accounts table that cannot be read now, saying what to do."""
    if isinstance(exc, CredentialsUnreadable):
        return error_response(
            503, "an account's credentials do not decrypt with the service's key (FEEDS_SECRET_KEY, else ADMIN_TOKEN)"
        )
    return error_response(503, "the database is not answering, so the accounts cannot be read; retry shortly")


def _data_accounts(services, broker: str) -> list[Account]:
    """The accounts added as data (of one broker) whose broker has an order book client, read with their secrets
    to check that their credentials are complete (nothing of them is answered)."""
    listed = services.accounts.list(broker=broker or None, secrets=True)
    return [account for account in listed if account.broker in CLIENTS]


def _view(client: redis.Redis, broker: str, configured: bool) -> dict:
    """One broker's entry: configured or not, the last run, and orders whose terminal could not be confirmed."""
    view = {"broker": broker, "name": broker, "configured": configured, **_run_view(client, broker)}
    if not configured:
        view["note"] = "not reconciled: set " + " and ".join(CLIENTS[broker].credentials)
    return view


def _account_view(services, account: Account) -> dict:
    """One account's entry, keyed by its reconcile name; never a credential or token."""
    why = why_not(services.config, account)
    view = {
        "name": account.reconcile_name,
        "broker": account.broker,
        "account": account.id,
        "account_id": account.account_id,
        "label": account.label,
        "configured": not why,
        **_run_view(services.redis, account.reconcile_name),
    }
    if why:
        view["note"] = "not reconciled: " + why
    return view


def _run_view(client: redis.Redis, name: str) -> dict:
    """The last run of the account reconciled as `name`."""
    status = read_status(client, name) or {}
    return {
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
        "unconfirmed_orders": read_unconfirmed(client, name),
    }
