"""GET /api/feeds (each connection: the environment's feeds, every account's) and the Dhan web login-frame endpoints.

The login frame is a web-session credential: it is accepted as base64 text (padded or not), checked,
encrypted into its own database table (app/secrets_store.py) where a feeds process on another machine
reads it, and never read back here. GET shows only its size and when it was stored.
"""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, current_app, jsonify, request

from app.accounts.model import Account, SessionState
from app.accounts.store import AccountStore
from app.api.auth import require_admin
from app.api.responses import error_response
from app.brokers.feed_status import NOT_STARTED, FeedState, published
from app.brokers.registry import BY_NAME
from app.crypto import SecretKeyUnavailable
from app.secrets_store import DhanWebFrameStore, FrameStoreUnavailable, StoredFrameUnreadable, decode_login_frame

log = logging.getLogger(__name__)

bp = Blueprint("feeds", __name__, url_prefix="/api/feeds")


@bp.get("")
@require_admin
def list_feeds():
    """Each connection: the feeds in FEEDS, then each account's (`<feed>:<account id>`), with its state."""
    services = current_app.extensions["orderhook"]
    try:
        feeds = [published(services.redis, name) for name in services.config.feeds]
        for feed in feeds:
            if feed["name"] == "dhan_web":
                feed["login_frame_stored"] = _store().exists()
        feeds += [
            account_connection(services.redis, account, feed)
            for account in AccountStore(services.config, services.engine).list()
            for feed in _account_feeds(account)
        ]
    except redis.RedisError:
        return error_response(503, "Redis is not answering, so the feeds' state cannot be read; retry shortly")
    return jsonify(feeds=feeds, count=len(feeds))


def _account_feeds(account: Account) -> list[str]:
    """The feeds an account's connections are of: its broker's per-account feeds."""
    return [feed.name for feed in BY_NAME[account.broker].feeds if feed.per_account]


def account_connection(client: redis.Redis, account: Account, feed: str) -> dict:
    """An account's connection, named `<feed>:<id>`; before any feeds process ran it, its state says why not."""
    view = published(client, account.feed_status_name(feed))
    view |= {"feed": feed, "broker": account.broker, "account": account.id, "account_id": account.account_id}
    if view["state"] == NOT_STARTED:
        if not account.feed:
            view["state"] = FeedState.STOPPED
        elif account.session.state in (SessionState.EXPIRED, SessionState.REFUSED):
            view["state"] = FeedState.AUTH_FAILED
            view["last_error"] = account.last_error or f"session {account.session.state}: log in again"
        elif account.session.state == SessionState.MISSING:
            view["state"] = FeedState.WAITING
            view["last_error"] = "no session yet: log in or paste the day's token (Accounts page)"
    elif not account.feed and view["state"] != FeedState.STOPPED:
        view["state"], view["connected"] = FeedState.STOPPED, False  # switched off; the process closes it
    if view["state"] == FeedState.AUTH_FAILED:
        view["stale"] = False  # nothing runs for a logged-out account, so nothing refreshes its record
    return view


@bp.put("/dhan-web/login-frame")
@require_admin
def put_login_frame():
    """Store the 703-byte frame sent as base64 text; 201 the first time, 200 when it replaces one."""
    store = _store()
    try:
        frame = decode_login_frame(request.get_data(cache=False))
    except ValueError as exc:
        return error_response(400, str(exc))
    replacing = store.exists()
    try:
        info = store.store(frame)
    except (SecretKeyUnavailable, FrameStoreUnavailable) as exc:
        return error_response(503, str(exc))
    log.info("Dhan web login frame stored (%d bytes); the dhan_web feed reconnects with it", info.size)
    return jsonify(info.to_dict()), 200 if replacing else 201


@bp.get("/dhan-web/login-frame")
@require_admin
def get_login_frame():
    """Only the size and the time it was stored; never the frame."""
    try:
        info = _store().info()
    except (SecretKeyUnavailable, FrameStoreUnavailable) as exc:
        return error_response(503, str(exc))
    except StoredFrameUnreadable as exc:
        return error_response(409, str(exc))
    if info is None:
        return error_response(404, "no Dhan web login frame is stored; PUT its base64 text to this URL")
    return jsonify(info.to_dict())


def _store() -> DhanWebFrameStore:
    """The frame store for this process's configuration."""
    services = current_app.extensions["orderhook"]
    return DhanWebFrameStore(services.config, services.engine)
