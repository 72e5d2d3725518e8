"""gunicorn integration for the `web` process: a gevent worker that answers its own refusals in JSON
and cuts stalled bodies, and a logger that never prints the postback path token (docs/operations.md).

Imported by gunicorn.conf.py (`worker_class`, `logger_class`) after gevent has patched the stdlib.
"""

from __future__ import annotations

import functools
import json
import os

from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.http import errors as http_errors
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

from app import logs
from app.config import WebSettings
from app.settings import read_group

# The refusals gunicorn answers itself, before the app sees a request: (status, reason, what to fix).
# Checked in order, so subclasses come before their bases. Messages never echo the request (it may
# carry the path token).
_REFUSALS: tuple[tuple[type[BaseException], int, str, str], ...] = (
    (http_errors.LimitRequestLine, 414, "URI Too Long", "the request line is too long (limit_request_line)"),
    (
        http_errors.LimitRequestHeaders,
        431,
        "Request Header Fields Too Large",
        "too many request headers, or one too large (limit_request_fields / limit_request_field_size)",
    ),
    (
        http_errors.UnsupportedTransferCoding,
        501,
        "Not Implemented",
        "unsupported Transfer-Encoding: send the body with Content-Length or Transfer-Encoding: chunked",
    ),
    (http_errors.ExpectationFailed, 417, "Expectation Failed", "only 'Expect: 100-continue' is supported"),
    (http_errors.ForbiddenProxyRequest, 403, "Forbidden", "PROXY protocol not allowed from this address"),
    (http_errors.ConfigurationProblem, 500, "Internal Server Error", "server configuration problem"),
    (
        http_errors.InvalidHeader,
        400,
        "Bad Request",
        "malformed or ambiguous header (e.g. two Content-Length headers, or Content-Length with chunked)",
    ),
    (http_errors.InvalidHeaderName, 400, "Bad Request", "malformed header name"),
    (http_errors.ObsoleteFolding, 400, "Bad Request", "folded (multi-line) headers are not accepted"),
    (http_errors.InvalidRequestLine, 400, "Bad Request", "malformed request line"),
    (http_errors.InvalidRequestMethod, 400, "Bad Request", "invalid HTTP method"),
    (http_errors.InvalidHTTPVersion, 400, "Bad Request", "unsupported HTTP version"),
    (http_errors.InvalidChunkSize, 400, "Bad Request", "malformed chunked body (chunk size)"),
    (http_errors.ChunkMissingTerminator, 400, "Bad Request", "malformed chunked body (chunk terminator)"),
    (http_errors.InvalidChunkExtension, 400, "Bad Request", "malformed chunked body (chunk extension)"),
    (http_errors.InvalidProxyLine, 400, "Bad Request", "malformed PROXY protocol line"),
    (http_errors.InvalidSchemeHeaders, 400, "Bad Request", "contradictory scheme headers (X-Forwarded-Proto)"),
)


def refusal_for(exc: BaseException) -> tuple[int, str, str] | None:
    """(status, reason phrase, message) for a request gunicorn itself refuses, or None for a server error."""
    if isinstance(exc, (http_errors.InvalidResponseHeader, http_errors.InvalidResponseHeaderName)):
        return None  # a header the app tried to send: the app's fault, a 500
    for kind, status, reason, message in _REFUSALS:
        if isinstance(exc, kind):
            return status, reason, message
    if isinstance(exc, http_errors.ParseException):
        return 400, "Bad Request", "malformed HTTP request"
    return None


def json_error_bytes(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 answer with the contract's JSON body; the connection closes after it."""
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class JsonGeventWorker(GeventWorker):
    """gevent worker: slow and idle clients each cost a greenlet; refusals answered as JSON."""

    def handle(self, listener, client, addr) -> None:
        """Give each client socket a read/write timeout instead of gunicorn's blocking mode."""
        client.settimeout(io_timeout(self.cfg.keepalive))
        AsyncWorker.handle(self, listener, client, addr)

    def handle_error(self, req, client, addr, exc) -> None:
        """Log briefly (paths redacted by the logger) and answer JSON instead of gunicorn's HTML page."""
        refusal = refusal_for(exc)
        if refusal is None:
            method = getattr(req, "method", "-")
            path = logs.redact_path(getattr(req, "path", None) or "(no URI read)")
            self.log.exception("error handling request %s %s", method, path)
            status, reason, message = 500, "Internal Server Error", "internal error"
        else:
            status, reason, message = refusal
            ip = addr[0] if addr else "-"
            self.log.warning("refused request from ip=%s: %s %s (%s)", ip, status, message, type(exc).__name__)
        try:
            util.write_nonblock(client, json_error_bytes(status, reason, message))
        except Exception:  # noqa: BLE001 - the client may be gone; nothing left to tell it
            self.log.debug("could not send the error answer")


def io_timeout(keepalive: float) -> float:
    """WEB_BODY_TIMEOUT seconds, kept above keepalive so an idle connection ends quietly by keepalive."""
    return max(web_settings().body_timeout, float(keepalive or 0) + 1.0, 1.0)


@functools.cache
def web_settings() -> WebSettings:
    """The web group of the schema, read once from this process's environment (gunicorn reads before the app)."""
    return read_group(WebSettings, os.environ)


class RedactingLogger(Logger):
    """gunicorn's logger, with every error and access line redacted (and JSON under LOG_FORMAT=json)."""

    def setup(self, cfg) -> None:
        """Install gunicorn's handlers, then wrap their formatters."""
        super().setup(cfg)
        log_format = web_settings().log_format
        for handler in (*self.error_log.handlers, *self.access_log.handlers):
            handler.setFormatter(logs.make_formatter(log_format, handler.formatter))
