"""The blotter at GET /: sign-in, sign-out and the page itself (docs/frontend.md).

Sign-in trades the admin token for a server-side session (app/sessions.py): the browser keeps only
an HttpOnly, SameSite=Lax cookie holding a random id, `Secure` when the request came over https
(directly, or per the X-Forwarded-Proto of TRUSTED_PROXIES proxies). The page then uses /api/* with
that cookie and sends its session's CSRF token with every write. Sign-in and sign-out answer JSON;
the page's script reloads.
"""

from __future__ import annotations

import hmac
import time

import redis
from flask import Blueprint, current_app, jsonify, redirect, render_template, request

from app import sessions
from app.api.auth import CSRF_HEADER, client_key, cross_site_refusal, current_session, request_is_https, too_many
from app.api.responses import error_response

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static", static_url_path="/assets")

SIGN_IN_DELAY_SECONDS = 1.0  # every failed sign-in waits this long before it is answered
# worker-src: the SharedWorker holding the one live stream (static/live-worker.js) is served from here.
CSP = (
    "default-src 'self'; script-src 'self'; worker-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@bp.after_request
def _page_headers(response):
    """Pages and their assets: no framing, no sniffing, no referrer (dev links carry a code)."""
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    if request.endpoint != "web.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
def index():
    """The blotter with a session, the sign-in form without one."""
    session = current_session()
    if session is None:
        return render_template("signin.html")
    return render_template("blotter.html", csrf=session.csrf, development=_services().config.is_development)


@bp.post("/signin")
def sign_in():
    """Check the admin token (throttled per client) and open a session."""
    refusal = cross_site_refusal()
    if refusal is not None:
        return refusal
    client = _services().redis
    who = client_key()
    try:
        wait = sessions.blocked_for(client, sessions.SIGN_IN_LIMIT, who)
    except redis.RedisError:
        return error_response(503, "Redis is not answering, so no session can be opened; retry shortly")
    if wait:
        return too_many(wait, "failed sign-ins")
    given = request.form.get("token", "")
    expected = _services().config.admin_token
    if not (expected and given and hmac.compare_digest(given.strip().encode(), expected.encode())):
        sessions.record_failure(client, sessions.SIGN_IN_LIMIT, who)
        time.sleep(SIGN_IN_DELAY_SECONDS)
        return error_response(401, "wrong admin token: paste the ADMIN_TOKEN of this Orderhook")
    return _open_session(jsonify(signed_in=True))


@bp.post("/signout")
def sign_out():
    """End the session on the server and drop the cookie; the old cookie is refused from now on."""
    session = current_session()
    if session is None:
        return _clear_cookie(jsonify(signed_in=False))
    refusal = cross_site_refusal()
    if refusal is not None:
        return refusal
    if not sessions.csrf_matches(session, request.headers.get(CSRF_HEADER)):
        return error_response(403, f"missing or wrong {CSRF_HEADER} header: reload the page and try again")
    sessions.destroy(_services().redis, session.sid)
    return _clear_cookie(jsonify(signed_in=False))


@bp.get("/signin/dev")
def dev_sign_in():
    """Development only: the single-use link `scripts/dev` prints signs the developer in."""
    if not _services().config.is_development:
        return error_response(404)
    try:
        redeemed = sessions.redeem_dev_code(_services().redis, request.args.get("code"))
    except redis.RedisError:
        return error_response(503, "Redis is not answering; retry shortly")
    if not redeemed:
        return error_response(
            403, "this sign-in link was used or has expired: run `python -m app.devrun --link` for a new one"
        )
    return _open_session(redirect("/", code=303))


def _open_session(response):
    """Create the session and set its cookie on the response."""
    session = sessions.create(_services().redis)
    response.set_cookie(
        sessions.COOKIE_NAME,
        session.sid,
        max_age=sessions.MAX_AGE_SECONDS,
        path="/",
        secure=request_is_https(),
        httponly=True,
        samesite="Lax",
    )
    return response


def _clear_cookie(response):
    """Expire the cookie in the browser too."""
    response.delete_cookie(sessions.COOKIE_NAME, path="/", secure=request_is_https(), httponly=True, samesite="Lax")
    return response


def _services():
    """This app's services."""
    return current_app.extensions["orderhook"]
