"""Log lines for shippers and people: plain or JSON (LOG_FORMAT), a request id in each, no secrets.

Every formatter here finishes its output the same way (`finish`): the secret path segment of a postback
URL (`/postbacks/dhan/<redacted>`) and any registered secret value (POSTBACK_TOKEN) are redacted, so a
traceback, a gunicorn error line or an access line cannot print the token whatever produced it; then
every control and bidi character is escaped (app/text.py one_line), so a request path such as
`/api/x%0a...` cannot write a second, forged line and ESC, NUL or a right-to-left override never
reaches a terminal: one record is one line (docs/operations.md, Logs).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from typing import TextIO

from flask import Flask, Response, g, has_request_context, request

from app.text import one_line

ACCESS_LOGGER = "orderhook.access"
REDACTED = "<redacted>"
REQUEST_ID_HEADER = "X-Request-ID"
# A client's request id is kept only if it is short and plain (it goes into every log line).
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}")
# Everything after /postbacks/<broker>/ up to the end of the path: the token and whatever follows it.
_POSTBACK_PATH = re.compile(r"(/postbacks/+[^/\s?#\"'\\]*)/[^\s?#\"'\\]+", re.IGNORECASE)
_secrets: set[str] = set()
# Attributes every LogRecord has; anything else was passed with `extra=` and goes into JSON lines.
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


def register_secrets(values: Iterable[str]) -> None:
    """Values that must never appear in a log line (tokens of at least 8 characters)."""
    _secrets.update(v for v in values if v and len(v) >= 8)


def redact(text: str) -> str:
    """The text with postback path tokens and registered secrets replaced by <redacted>."""
    text = _POSTBACK_PATH.sub(rf"\1/{REDACTED}", text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def finish(line: str) -> str:
    """A formatted record as written: redacted, then one line with control and bidi characters escaped.

    On a JSON line the escapes are JSON's own `\\uXXXX`, so it stays valid JSON with the same content
    (docs/operations.md, Logs).
    """
    return one_line(redact(line))


def redact_path(path: str) -> str:
    """A request path fit for a log line."""
    return redact(path)


def current_request_id() -> str:
    """The id of the request being served, or '-' outside a request."""
    if has_request_context():
        return getattr(g, "request_id", None) or "-"
    return "-"


class PlainFormatter(logging.Formatter):
    """`time LEVEL logger [request id]: message`, redacted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Add the request id, format, then finish the whole line (traceback included)."""
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return finish(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line, redacted and escaped to one line."""
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        return finish(json.dumps(entry, default=str, ensure_ascii=False))


class RedactingFormatter(logging.Formatter):
    """Wraps another formatter (gunicorn's) and finishes what it produces."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        """The inner formatter's line, redacted and escaped to one line."""
        return finish(self.inner.format(record))


def make_formatter(log_format: str, fallback: logging.Formatter | None = None) -> logging.Formatter:
    """JsonFormatter for LOG_FORMAT=json; otherwise the fallback (redacted) or PlainFormatter."""
    if log_format.strip().lower() == "json":
        return JsonFormatter()
    return RedactingFormatter(fallback) if fallback is not None else PlainFormatter()


def _install_record_factory() -> None:
    """Stamp every log record with the request id when it is made (a queued or captured record keeps it)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "orderhook_request_id", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = current(*args, **kwargs)
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return record

    factory.orderhook_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def configure_logging(log_format: str, stream: TextIO | None = None) -> None:
    """One handler on the root logger in the chosen format (kept if a host already set one up), writing to
    `stream` (stdout when None)."""
    _install_record_factory()
    root = logging.getLogger()
    if root.handlers:
        for handler in root.handlers:
            if handler.formatter is None or isinstance(handler.formatter, (PlainFormatter, JsonFormatter)):
                handler.setFormatter(make_formatter(log_format))
        return
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(make_formatter(log_format))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def init_app(app: Flask) -> None:
    """Give every request an id (echoed in X-Request-ID) and write one access line per request."""
    app.before_request(_start_request)
    app.after_request(_finish_request)


def _start_request() -> None:
    """Take the client's X-Request-ID if it is sane, else make one; note the start time."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = given if given and _SANE_REQUEST_ID.fullmatch(given) else os.urandom(16).hex()
    g.request_started = time.perf_counter()


def _finish_request(response: Response) -> Response:
    """Echo the request id and log the access line (path redacted, client IP after ProxyFix)."""
    request_id = getattr(g, "request_id", None)
    if request_id is None:  # a before_request earlier in the chain answered first
        _start_request()
        request_id = g.request_id
    response.headers[REQUEST_ID_HEADER] = request_id
    started = getattr(g, "request_started", None)
    duration_ms = round((time.perf_counter() - started) * 1000, 2) if started is not None else None
    path = redact_path(request.path)
    logging.getLogger(ACCESS_LOGGER).info(
        '%s "%s %s" %s %sms',
        request.remote_addr or "-",
        request.method,
        path,
        response.status_code,
        duration_ms,
        extra={
            "client_ip": request.remote_addr,
            "method": request.method,
            "path": path,
            "status": response.status_code,
            "duration_ms": duration_ms,
            "user_agent": request.headers.get("User-Agent", "")[:200],
        },
    )
    return response
