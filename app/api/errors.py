"""Every refusal is JSON `{"error": "..."}` with a status from the contract."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app.exceptions import PostbackError

log = logging.getLogger(__name__)
DRAIN_LIMIT = 8 * 1024 * 1024

MESSAGES = {
    404: "not found: check the URL (postbacks go to /postbacks/<broker>[/<token>])",
    405: "method not allowed for this URL",
    413: "body is larger than the 64 KiB limit for an order update",
}


def error_response(status_code: int, message: str | None = None):
    """A JSON error with the status; the message says what to fix."""
    response = jsonify(error=message or MESSAGES.get(status_code, "request failed"))
    response.status_code = status_code
    return response


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


def register(app: Flask) -> None:
    """Install JSON handlers for postback errors, HTTP errors and anything unexpected."""

    @app.errorhandler(PostbackError)
    def _postback_error(exc: PostbackError):
        return error_response(exc.status_code, exc.message)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):
        _drain_body()
        return error_response(413)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = exc.code or 500
        message = MESSAGES.get(code) or exc.description
        response = error_response(code, message)
        if code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.before_request
    def _refuse_nul():
        """NUL cannot be stored or looked up (PostgreSQL refuses it): a 400, before any query."""
        if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
            if request.path.startswith("/api/"):
                from app.api.auth import unauthorized

                refused = unauthorized()
                if refused is not None:
                    return refused
            return error_response(400, "the URL contains a NUL character")
        return None

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # The route pattern, not the path: postback paths carry POSTBACK_TOKEN.
        route = request.url_rule.rule if request.url_rule else "(no route)"
        log.exception("unexpected error on %s %s", request.method, route)
        if request.path.startswith("/postbacks/"):
            return error_response(500, "internal error; the update was not acknowledged, please retry")
        return error_response(500, "internal error")
