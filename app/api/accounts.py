"""/api/accounts: list, add, change, remove, paste a session, reconcile one, a postback URL of its own.

The contract is docs/interface.md "Accounts" (shared); the design is docs/accounts.md ("API"). Answers hold the
account's view (app/accounts/model.py `view`) with what Redis knows of it: its feed's state and last message
(the words GET /api/feeds uses) and its last reconciliation. Secrets go in and never come back out; the
environment's accounts are listed first and are read-only (409).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Blueprint, Response, current_app, jsonify, request

from app.accounts.directory import all_accounts, find_account
from app.accounts.model import Account, SessionState, view
from app.accounts.store import AccountExists, AccountNotFound, CredentialsUnreadable
from app.api.account_input import (
    BadInput,
    EnvironmentTwin,
    account_change,
    decode_body,
    new_account,
    new_session,
    store_new_account,
)
from app.api.auth import require_admin
from app.api.feeds import account_connection
from app.api.responses import error_response
from app.brokers.registry import BY_NAME
from app.brokers.spec import PATH_TOKEN
from app.config import Config
from app.crypto import SecretKeyUnavailable
from app.reconcile import request_reconcile
from app.reconcile.status import read_status as read_reconcile_status

log = logging.getLogger(__name__)

bp = Blueprint("accounts", __name__, url_prefix="/api/accounts")

#: Feed state words besides FeedState's: nothing was ever published for this connection (GET /api/feeds).
#: A running connection whose feeds process stopped refreshing its status.
STALE = "stale"
MAX_ID_LENGTH = 40


@bp.errorhandler(SecretKeyUnavailable)
@bp.errorhandler(CredentialsUnreadable)
def _key_broken(exc: Exception):
    """FEEDS_SECRET_KEY missing, invalid or changed: nothing can be stored or read (503 saying which)."""
    return error_response(503, str(exc))


@bp.errorhandler(BadInput)
def _bad_input(exc: BadInput):
    """A refused body: 400 saying what to fix."""
    return error_response(400, str(exc))


class Refused(Exception):
    """A request this account cannot take (409: read-only, reconciliation off...), with what to do."""


@bp.errorhandler(Refused)
def _refused(exc: Refused):
    """409 saying why and what to do."""
    return error_response(409, str(exc))


@bp.errorhandler(AccountNotFound)
def _missing(exc: AccountNotFound):
    """404 naming the id (cut, escaped), whichever step found it gone (it may be removed meanwhile)."""
    shown = str(exc.args[0] if exc.args else "")[:MAX_ID_LENGTH]
    return error_response(404, f"no account {shown!r}: GET /api/accounts lists them")


@bp.get("")
@require_admin
def list_accounts():
    """Every account: the environment's (read-only) first, then those added as data."""
    services = _services()
    accounts = all_accounts(services.config, services.accounts)
    return jsonify(accounts=[live_view(services.redis, account) for account in accounts])


@bp.post("")
@require_admin
def add_account():
    """Add an account: 201 its view; 400 naming what the broker needs; 409 when it exists."""
    services = _services()
    wanted = new_account(_body())
    try:
        made = store_new_account(services, wanted)
    except AccountExists as exc:
        return error_response(409, exists_message(wanted.broker, wanted.account_id, exc))
    log.info("account %s added (%s)", made.id, made.describe())
    return jsonify(live_view(services.redis, made)), 201


@bp.get("/<account_id>")
@require_admin
def get_account(account_id: str):
    """One account's view."""
    return jsonify(live_view(_services().redis, _find(account_id)))


@bp.patch("/<account_id>")
@require_admin
def change_account(account_id: str):
    """Change label, credentials (merged key by key), feed or reconcile: 200 the view."""
    account = _writable(account_id)
    changes = account_change(account.broker, _body())
    services = _services()
    changed = services.accounts.update(account.id, **changes)
    log.info("account %s changed (%s)", changed.id, ", ".join(sorted(changes)))
    return jsonify(live_view(services.redis, changed))


@bp.delete("/<account_id>")
@require_admin
def remove_account(account_id: str):
    """Remove an account: 204; its feed closes, its orders and events stay."""
    account = _writable(account_id)
    _services().accounts.delete(account.id)
    log.info("account %s removed (%s)", account.id, account.describe())
    return Response(status=204)


@bp.put("/<account_id>/session")
@require_admin
def put_session(account_id: str):
    """A day's token pasted by hand: the account's session from now (reconnects its feed, reconciles it)."""
    account = _writable(account_id)
    token, expires_at = new_session(_body())
    services = _services()
    changed = services.accounts.set_session(account.id, token, expires_at=expires_at)
    log.info("account %s: new session pasted (%s)", changed.id, changed.describe())
    request_reconcile(services.redis, changed.reconcile_name, "new session")
    return jsonify(live_view(services.redis, changed))


@bp.post("/<account_id>/reconcile")
@require_admin
def reconcile_account(account_id: str):
    """Ask the worker to reconcile this account now: 202."""
    account = _find(account_id)
    refusal = unreconcilable(account)
    if refusal:
        raise Refused(refusal)
    if not request_reconcile(_services().redis, account.reconcile_name, "on demand (POST /api/accounts)"):
        return error_response(503, "Redis is not answering, so the request could not be passed on; retry shortly")
    return jsonify(requested=account.reconcile_name, status="queued"), 202


@bp.post("/<account_id>/postback-token")
@require_admin
def postback_token(account_id: str):
    """A postback URL of this account's own (shown this once; calling again rotates it)."""
    account = _find(account_id)
    refusal = postback_refusal(account)
    if refusal:
        raise Refused(refusal)
    services = _services()
    token = services.accounts.new_postback_token(account.id)
    log.info("account %s: new postback token made (the old one, if any, no longer works)", account.id)
    return jsonify(postback_url=postback_url(services.config, account, token))


def postback_refusal(account: Account) -> str:
    """Why this account cannot have a postback URL of its own ("" when it can)."""
    if account.read_only:
        return "the environment's account uses POSTBACK_TOKEN; add the account through the API for a URL of its own"
    spec = BY_NAME[account.broker]
    if spec.postback != PATH_TOKEN:
        how = "are signed (one URL for every account)" if spec.postback else "do not exist"
        return f"{account.broker} postbacks {how}: no per-account postback URL"
    return ""


def postback_url(config: Config, account: Account, token: str) -> str:
    """PUBLIC_BASE_URL and the broker's postback route with the account's own token."""
    return config.public_base_url.rstrip("/") + (BY_NAME[account.broker].postback_path(token) or "")


# The view with what Redis knows


def live_view(client: redis.Redis, account: Account) -> dict[str, Any]:
    """The account's view with its feed's state, last message and last reconciliation (None when Redis is away)."""
    live: dict[str, Any] = {}
    try:
        live |= feed_live(client, account)
        live["last_reconcile"] = read_reconcile_status(client, account.reconcile_name)
    except redis.RedisError as exc:
        log.warning("Redis did not answer for account %s's live state (%s)", account.id, type(exc).__name__)
    shown = view(account, **live)
    shown["feed_connected"] = live.get("feed_connected")
    return shown


def feed_live(client: redis.Redis, account: Account) -> dict[str, Any]:
    """feed_state, feed_connected and last_message_at of the broker's per-account feed, as GET /api/feeds shows
    that connection (no per-account feed: all None)."""
    feed = next((f for f in BY_NAME[account.broker].feeds if f.per_account), None)
    if feed is None:
        return {"feed_state": None, "feed_connected": None, "last_message_at": None}
    connection = account_connection(client, account, feed.name)
    return {
        "feed_state": STALE if connection.get("stale") else connection["state"],
        "feed_connected": bool(connection["connected"]),
        "last_message_at": connection.get("last_message_at") or None,
    }


# Helpers


def _body() -> dict[str, Any]:
    """The request's JSON object (BadInput otherwise)."""
    return decode_body(request.get_data(cache=False))


def _find(account_id: str) -> Account:
    """The account; AccountNotFound (404) for an id no account has or can have."""
    if not (0 < len(account_id) <= MAX_ID_LENGTH and account_id.isascii() and account_id.isprintable()):
        raise AccountNotFound(account_id)
    services = _services()
    return find_account(services.config, services.accounts, account_id)


def _writable(account_id: str) -> Account:
    """The account when it may be changed; AccountNotFound (404), or Refused (409) for the environment's."""
    account = _find(account_id)
    if account.read_only:
        raise Refused(read_only_refusal(account))
    return account


def read_only_refusal(account: Account) -> str:
    """The environment's account changes only with the environment."""
    return (
        f"{account.id} comes from the environment ({account.broker}'s variables) and is read-only: "
        "change the variables, or add the account through the API"
    )


def exists_message(broker: str, account_id: str, exc: AccountExists | None = None) -> str:
    """409: which account is already there and what to do."""
    if isinstance(exc, EnvironmentTwin):
        return str(exc)
    return f"{broker} account {account_id} exists: PATCH it (GET /api/accounts lists them) instead of adding it again"


def unreconcilable(account: Account) -> str:
    """Why this account cannot be reconciled now ("" when it can)."""
    if BY_NAME[account.broker].rest is None:
        return f"{account.broker} has no REST order book to reconcile against"
    if not account.reconcile:
        return 'reconciliation is off for this account: PATCH it with {"reconcile": true} first'
    if account.session.state != SessionState.ACTIVE:
        return f"the account's session is {account.session.state}: log in or paste a token first"
    return ""


def _services():
    """This app's services."""
    return current_app.extensions["orderhook"]
