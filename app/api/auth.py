"""Who may use /api/*: the bearer ADMIN_TOKEN, or a signed-in browser's session cookie (docs/frontend.md).

`unauthorized()` is the one check every /api route (and any before_request guarding /api/*) uses:
None when the request may proceed, else the refusal to answer with. A cookie-authenticated write must
come from our own pages: same origin by `Origin`/`Sec-Fetch-Site`, and the session's CSRF token in
`X-CSRF-Token`. Wrong bearer tokens are counted per client; past the limit the answer is 429.

Both checks fail closed when Redis cannot answer (down, or no pooled connection free in time): a
session cookie gets 503 with Retry-After, never a 401, which would send a signed-in browser back to
the sign-in form; a wrong bearer token gets 503 too, never an uncounted 401. The rate limit still
holds then, in this process's own window: a right token passes while its client is under the limit
(the operator's scrape of /metrics shows the outage), and past it everything gets 429
(docs/operations.md).
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
#: Seconds a client is asked to wait when Redis could not answer a session or rate-limit check.
UNCHECKED_RETRY_AFTER = 2


def unauthorized():
    """A refusal (401, 403, 429, or 503 when Redis cannot answer) unless the bearer token or a live
    session allows this request."""
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
    """The session of this request's cookie, if it is live; redis.RedisError when Redis cannot say."""
    if "_orderhook_session" not in g.__dict__:
        sid = request.cookies.get(sessions.COOKIE_NAME)
        g.__dict__["_orderhook_session"] = sessions.load(_services().redis, sid) if sid else None
    return g.__dict__["_orderhook_session"]


def authenticated_by_session() -> bool:
    """True when this request passed on its session cookie (not a bearer token)."""
    return g.__dict__.get("_orderhook_via") == "session"


def client_key() -> str:
    """Who is asking, for rate limits: the peer address, which werkzeug's ProxyFix has already replaced by the
    client's own when TRUSTED_PROXIES says proxies in front append X-Forwarded-For (app/__init__.py)."""
    return (request.remote_addr or "unknown")[:64]


def request_is_https() -> bool:
    """Served over https: directly, or behind TRUSTED_PROXIES proxies whose X-Forwarded-Proto werkzeug's
    ProxyFix has already applied (app/__init__.py). Without trusted proxies the header is anyone's to send
    and is ignored (docs/operations.md)."""
    return request.is_secure


def too_many(wait: int, what: str):
    """429 with Retry-After."""
    response = error_response(429, f"too many {what} from this client; wait {wait} s before trying again")
    response.headers["Retry-After"] = str(wait)
    return response


def cannot_check(what: str, exc: redis.RedisError):
    """503 with Retry-After: Redis did not answer a check this request needs, so it is refused, not passed."""
    log.warning("Redis did not answer the %s check (%s); refusing with 503", what, type(exc).__name__)
    response = error_response(
        503, f"the {what} cannot be checked right now (Redis is not answering); retry in {UNCHECKED_RETRY_AFTER} s"
    )
    response.headers["Retry-After"] = str(UNCHECKED_RETRY_AFTER)
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
    try:
        session = current_session()
    except redis.RedisError as exc:
        return cannot_check("session", exc)
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
    """The bearer token, with wrong guesses counted per client: a right token passes unless the client is
    over the limit; a wrong one is counted, and refused with 429 once past it (the count decides, so
    concurrent guesses cannot outrun it)."""
    client = _services().redis
    who = client_key()
    scheme, _, given = header.partition(" ")
    right = scheme.lower() == "bearer" and _same_secret(given.strip(), expected)
    wait, unchecked = _bearer_wait(client, right, who)
    if wait:
        return too_many(wait, "wrong bearer tokens")
    if right:
        g.__dict__["_orderhook_via"] = "bearer"
        return None
    if unchecked is not None:
        return cannot_check("bearer token rate limit", unchecked)
    response = error_response(401, "missing or wrong bearer token: send 'Authorization: Bearer <ADMIN_TOKEN>'")
    response.headers["WWW-Authenticate"] = 'Bearer realm="orderhook"'
    return response


def _bearer_wait(client: redis.Redis, right: bool, who: str) -> tuple[int, redis.RedisError | None]:
    """Seconds the client must wait (0 = go on): a right token is tested against the limit, a wrong one
    counted. Redis not answering: this process's own window decides, and the error comes back too."""
    try:
        if right:
            return sessions.blocked_for(client, sessions.BEARER_LIMIT, who), None
        return sessions.record_failure(client, sessions.BEARER_LIMIT, who), None
    except redis.RedisError as exc:
        decide = sessions.blocked_here if right else sessions.record_failure_here
        return decide(sessions.BEARER_LIMIT, who), exc


def _same_secret(given: str, expected: str) -> bool:
    """The given token is the configured one (constant time; an unset token matches nothing)."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


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
