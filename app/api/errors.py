"""Every refusal is JSON `{"error": "..."}` with a status from the contract."""

from __future__ import annotations

import logging

import redis
from flask import Flask, request
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import ClientDisconnected, HTTPException, RequestEntityTooLarge

from app.api.auth import unauthorized
from app.api.responses import MESSAGES, error_response
from app.exceptions import PostbackError

log = logging.getLogger(__name__)
DRAIN_LIMIT = 8 * 1024 * 1024

DATABASE_UNAVAILABLE = "the database is unavailable; retry shortly"
REDIS_UNAVAILABLE = "Redis is unavailable; retry shortly"
BODY_STALLED = "the request body stopped arriving; send the whole body without pausing"
BODY_CUT = "the request body ended before its Content-Length; send the whole body"


def _drain_body() -> None:
    """Read what the client is still sending, so it gets the answer instead of a reset connection."""
    stream = request.environ.get("wsgi.input")
    if stream is None:
        return
    remaining = DRAIN_LIMIT
    try:
        while remaining > 0:
            chunk = stream.read(min(65536, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
    except Exception:  # noqa: BLE001 - a broken client stream must not turn a 413 into a 500
        pass


def _too_large_message() -> str:
    """A postback is an order update; any other body is a request body under the same 64 KiB limit."""
    if request.path.startswith("/postbacks/"):
        return MESSAGES[413]
    return "body is larger than the 64 KiB limit for a request body"


def register(app: Flask) -> None:
    """Install JSON handlers for postback errors, HTTP errors and anything unexpected."""

    @app.errorhandler(PostbackError)
    def _postback_error(exc: PostbackError):
        return error_response(exc.status_code, exc.message)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):
        _drain_body()
        return error_response(413, _too_large_message())

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = exc.code or 500
        message = (_too_large_message() if code == 413 else MESSAGES.get(code)) or exc.description
        response = error_response(code, message)
        if code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.before_request
    def _refuse_nul():
        """NUL cannot be stored or looked up (PostgreSQL refuses it): a 400, before any query."""
        if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
            if request.path.startswith("/api/"):
                refused = unauthorized()
                if refused is not None:
                    return refused
            return error_response(400, "the URL contains a NUL character")
        return None

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeoutError)
    def _database_down(exc: Exception):
        """A database outage is a 503 the client can retry, with one short log line, not a traceback."""
        log.error("database unavailable on %s %s: %s", request.method, _route(), _short(exc))
        return error_response(503, DATABASE_UNAVAILABLE)

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError):
        """Connection-level DBAPI errors are outages too; anything else is a bug (500, logged in full)."""
        if exc.connection_invalidated:
            return _database_down(exc)
        return _unexpected(exc)

    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    def _redis_down(exc: Exception):
        """Redis not answering outside the postback path (which spools): 503, one line."""
        log.error("Redis unavailable on %s %s: %s", request.method, _route(), type(exc).__name__)
        return error_response(503, REDIS_UNAVAILABLE)

    @app.errorhandler(TimeoutError)
    def _body_stalled(exc: BaseException):
        """The client stopped sending its body for WEB_BODY_TIMEOUT seconds (gunicorn.conf.py): 408."""
        log.warning("request body stalled on %s %s; connection cut", request.method, _route())
        response = error_response(408, BODY_STALLED)
        response.headers["Connection"] = "close"
        return response

    @app.errorhandler(ClientDisconnected)
    def _body_incomplete(exc: ClientDisconnected):
        """Werkzeug turns a socket timeout while reading the body into ClientDisconnected: say which it was."""
        if _caused_by(exc, TimeoutError):
            return _body_stalled(exc)
        response = error_response(400, BODY_CUT)
        response.headers["Connection"] = "close"
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, _route())
        if request.path.startswith("/postbacks/"):
            return error_response(500, "internal error; the update was not acknowledged, please retry")
        return error_response(500, "internal error")


def _route() -> str:
    """The route pattern, not the path: postback paths carry POSTBACK_TOKEN."""
    return request.url_rule.rule if request.url_rule else "(no route)"


def _short(exc: Exception) -> str:
    """The exception's class and first line, without parameters or URLs (they may carry credentials)."""
    orig = getattr(exc, "orig", None)
    source = orig if orig is not None else exc
    first = str(source).strip().splitlines()[0] if str(source).strip() else ""
    return f"{type(source).__name__}: {first[:160]}" if first else type(source).__name__


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """True if `kind` is in the exception's cause/context chain."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, kind):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False
