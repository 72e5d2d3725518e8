"""The browser's daily login of an account: to the broker's login page and back (docs/interface.md "Accounts").

`GET /accounts/<id>/login` needs a signed-in browser session (the login is bound to it) and answers 302 to the
broker; `GET /brokers/<broker>/callback` is where the broker sends the browser back: a callback this browser
session did not start is refused (403 JSON, nothing stored); one it started ends on the Accounts page with a
short message, whether the broker's exchange succeeded or not (app/accounts/login.py, docs/accounts.md).
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import redis
import sqlalchemy as sa
from flask import Blueprint, current_app, redirect, request

from app.accounts import login
from app.accounts.directory import find_account
from app.accounts.store import AccountNotFound
from app.api.auth import cannot_check, cross_site_refusal, current_session
from app.api.responses import error_response
from app.brokers.registry import BY_NAME

log = logging.getLogger(__name__)

bp = Blueprint("logins", __name__)

#: The blotter's Accounts page, `/#accounts`; the login's outcome rides along in the query as `login` and
#: `message` (app/web/static/accounts.js shows it once, then drops it from the address).
ACCOUNTS_PAGE = "/"
ACCOUNTS_VIEW = "#accounts"


@bp.after_request
def _no_store(response):
    """Login answers carry one-use URLs: never cached, never a referrer."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/accounts/<account_id>/login")
def start_login(account_id: str):
    """302 to the broker's login page for this account, bound to this browser session."""
    try:
        session = current_session()
    except redis.RedisError as exc:
        return cannot_check("session", exc)
    if session is None:
        return redirect(ACCOUNTS_PAGE, code=302)  # the sign-in form; Log in again from the Accounts page
    refusal = cross_site_refusal()
    if refusal is not None:
        return refusal
    services = _services()
    try:
        account = find_account(services.config, services.accounts, account_id[:64], secrets=True)
        url = login.start(services, account, session.sid)
    except AccountNotFound:
        return error_response(404, f"no account {account_id[:64]!r}: pick one on the Accounts page")
    except login.LoginRefused as exc:
        return error_response(exc.status, str(exc))
    except redis.RedisError as exc:
        return cannot_check("login state", exc)
    except sa.exc.SQLAlchemyError:
        return error_response(503, "the database is not answering; retry shortly")
    return redirect(url, code=302)


@bp.get("/brokers/<broker>/callback")
def login_callback(broker: str):
    """The broker's redirect back: exchange the code for the day's token, then to the Accounts page."""
    if broker not in BY_NAME:
        return error_response(404, f"no broker {broker[:40]!r}: the callback is /brokers/<broker>/callback")
    services = _services()
    query = request.args.to_dict()  # the first value of each key
    try:
        session = current_session()
        account = login.callback(services, broker, query, session.sid if session else None)
    except login.LoginRefused as exc:
        if exc.account is None:
            return error_response(exc.status, str(exc))
        return _to_accounts(exc.account.id, ok=False, message=str(exc))
    except redis.RedisError as exc:
        return cannot_check("login state", exc)
    except sa.exc.SQLAlchemyError:
        return error_response(503, "the database is not answering; press Log in again shortly")
    return _to_accounts(account.id, ok=True, message=f"logged in: {account.describe()}")


def _to_accounts(account_id: str, *, ok: bool, message: str):
    """302 to the Accounts page with the login's outcome."""
    query = {"account": account_id, "login": "ok" if ok else "error", "message": message}
    return redirect(f"{ACCOUNTS_PAGE}?{urlencode(query)}{ACCOUNTS_VIEW}", code=302)


def _services():
    """This app's services."""
    return current_app.extensions["orderhook"]
