"""Who may use /api/*: the bearer ADMIN_TOKEN, or a signed-in browser's session cookie (docs/frontend.md).

`unauthorized()` is the one check every /api route (and any before_request guarding /api/*) uses:
None when the request may proceed, else the refusal to answer with. A cookie-authenticated write must
come from our own pages: same origin by `Origin`/`Sec-Fetch-Site`, and the session's CSRF token in
`X-CSRF-Token`. Wrong bearer tokens are counted per client; past the limit the answer is 429.
"""

from __future__ import annotations

import hmac
import logging
from functools import wraps
from urllib.parse import urlsplit

import redis
from flask import current_app, g, request

from app import sessions
from app.api.responses import error_response

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
_CHECKED = "_orderhook_auth"


def unauthorized():
    """A refusal (401, 403 or 429) unless the bearer token or a live session allows this request."""
    if _CHECKED in g.__dict__:
        return g.__dict__[_CHECKED]
    refusal = _check()
    g.__dict__[_CHECKED] = refusal
    return refusal


def guard_api():
    """/api/* answers 401 without credentials before any 404, 405 or OPTIONS (docs/interface.md)."""
    if request.path == "/api" or request.path.startswith("/api/"):
        return unauthorized()
    return None


def require_admin(view):
    """Guard an /api view with the bearer token or the session cookie."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        return unauthorized() or view(*args, **kwargs)

    return wrapper


def current_session() -> sessions.Session | None:
    """The session of this request's cookie, if it is live (None when Redis does not answer)."""
    if "_orderhook_session" not in g.__dict__:
        sid = request.cookies.get(sessions.COOKIE_NAME)
        session = None
        if sid:
            try:
                session = sessions.load(_services().redis, sid)
            except redis.RedisError:
                log.warning("Redis is not answering; session cookies cannot be checked")
        g.__dict__["_orderhook_session"] = session
    return g.__dict__["_orderhook_session"]


def authenticated_by_session() -> bool:
    """True when this request passed on its session cookie (not a bearer token)."""
    return g.__dict__.get("_orderhook_via") == "session"


def client_key() -> str:
    """Who is asking, for rate limits: the peer address, which werkzeug's ProxyFix has already replaced by the
    client's own when TRUSTED_PROXIES says proxies in front append X-Forwarded-For (app/__init__.py)."""
    return (request.remote_addr or "unknown")[:64]


def request_is_https() -> bool:
    """Served over https, directly or behind a TLS-terminating proxy (X-Forwarded-Proto)."""
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.is_secure or proto == "https"


def too_many(wait: int, what: str):
    """429 with Retry-After."""
    response = error_response(429, f"too many {what} from this client; wait {wait} s before trying again")
    response.headers["Retry-After"] = str(wait)
    return response


def cross_site_refusal():
    """403 unless a cookie-authenticated request comes from this site's own pages."""
    fetch_site = request.headers.get("Sec-Fetch-Site", "").lower()
    if fetch_site and fetch_site not in ("same-origin", "none"):
        return error_response(403, "cross-site request refused: use the blotter's own page or a bearer token")
    origin = request.headers.get("Origin")
    if origin is not None and not _same_origin(origin):
        return error_response(403, "cross-site request refused: Origin does not match this site")
    return None


def _check():
    """The decision, uncached."""
    config = _services().config
    header = request.headers.get("Authorization")
    if header is not None:
        return _check_bearer(config.admin_token, header)
    session = current_session()
    if session is None:
        response = error_response(
            401, "missing or wrong bearer token: send 'Authorization: Bearer <ADMIN_TOKEN>' (or sign in at /)"
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="orderhook"'
        return response
    if request.method not in SAFE_METHODS:
        refusal = cross_site_refusal()
        if refusal is not None:
            return refusal
        if not sessions.csrf_matches(session, request.headers.get(CSRF_HEADER)):
            return error_response(403, f"missing or wrong {CSRF_HEADER} header: reload the page and try again")
    g.__dict__["_orderhook_via"] = "session"
    return None


def _check_bearer(expected: str, header: str):
    """The bearer token, with wrong guesses counted per client."""
    client = _services().redis
    who = client_key()
    try:
        wait = sessions.blocked_for(client, sessions.BEARER_LIMIT, who)
    except redis.RedisError:
        wait = 0  # no Redis, no counter: the token check still stands
    if wait:
        return too_many(wait, "wrong bearer tokens")
    scheme, _, given = header.partition(" ")
    if expected and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode()):
        g.__dict__["_orderhook_via"] = "bearer"
        return None
    try:
        sessions.record_failure(client, sessions.BEARER_LIMIT, who)
    except redis.RedisError:
        pass
    response = error_response(401, "missing or wrong bearer token: send 'Authorization: Bearer <ADMIN_TOKEN>'")
    response.headers["WWW-Authenticate"] = 'Bearer realm="orderhook"'
    return response


def _same_origin(origin: str) -> bool:
    """The Origin header names this very host (and scheme, when we can tell)."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    if parts.netloc.lower() != request.host.lower():
        return False
    return parts.scheme == ("https" if request_is_https() else "http") or parts.scheme == "https"


def _services():
    """This app's services."""
    return current_app.extensions["orderhook"]
