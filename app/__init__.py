"""Orderhook: one verified inbox for broker order updates (Flask app factory)."""

from __future__ import annotations

import logging
import os
import sys

from flask import Flask, Request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.middleware.proxy_fix import ProxyFix

from app import logs
from app.config import Config, load_config
from app.db import upgrade
from app.services import Services, set_services

log = logging.getLogger(__name__)


class BoundedRequest(Request):
    """One body limit whatever the transfer encoding, and no body we cannot read as sent.

    Werkzeug cuts a chunked body (no Content-Length) at MAX_CONTENT_LENGTH instead of refusing it, so a
    body of exactly the limit and a longer one look alike: one more byte is read to tell them apart
    (65,536 bytes chunked is 202 as with Content-Length; 65,537 is 413). A Content-Encoding (gzip,
    deflate, br...) is refused with 415 rather than decoded: brokers send plain JSON, and decoding would
    need its own size cap against a decompression bomb (docs/ingest.md).
    """

    def get_data(self, *args, **kwargs):
        encoding = self.environ.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if encoding and encoding != "identity":
            raise UnsupportedMediaType(
                f"Content-Encoding {encoding[:40]!r} is not accepted: send the body uncompressed, "
                "without a Content-Encoding header"
            )
        data = super().get_data(*args, **kwargs)
        limit = self.max_content_length
        if limit is not None and self.content_length is None and len(data) >= limit and self._more_than_read():
            raise RequestEntityTooLarge()
        return data

    def _more_than_read(self) -> bool:
        """True when the client sent more than the limit (the server terminates chunked input, so
        reading the raw stream past werkzeug's LimitedStream is safe and returns b"" at the end)."""
        if not self.environ.get("wsgi.input_terminated"):
            return True  # cannot tell: refuse, as before
        try:
            return bool(self.environ["wsgi.input"].read(1))
        except Exception:  # noqa: BLE001 - a broken client stream: treat as too large, never a 500
            return True


def create_app(config: Config | None = None, services: Services | None = None, *, migrate: bool | None = None) -> Flask:
    """Build the web app; configuration is checked here, so `import wsgi` fails on a bad one."""
    if migrate is None:
        migrate = config is None
    config = config or load_config()
    if migrate:
        _migrate(config)
    services = services or Services.build(config)
    set_services(services)
    app = Flask(__name__, instance_path=str(config.instance_path))
    app.request_class = BoundedRequest
    app.config.update(MAX_CONTENT_LENGTH=config.max_body_bytes, JSON_SORT_KEYS=False)
    app.json.sort_keys = False
    # No redirects: a broker posting to a mistyped URL gets a JSON 404 it can log, not a 308 it may not follow.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    app.extensions["orderhook"] = services
    _configure_logging(config)
    _wire_edges(app, config)

    _register_web_layer(app)
    return app


def _register_web_layer(app: Flask) -> None:
    """The API, the blotter's pages (after the API they call, docs/frontend.md) and the CLI commands."""
    # Imported here, not at the top: every `import app.<module>` in the worker and feeds processes runs this
    # file first, and they need none of the web layer (blueprints, Prometheus metrics, the live-stream hub).
    from app import web
    from app.api import register
    from app.cli import register_cli
    from app.web.logins import bp as logins_bp

    register(app)
    app.register_blueprint(web.bp)
    app.register_blueprint(logins_bp)
    register_cli(app)


def _migrate(config: Config) -> None:
    """Apply migrations at start-up; a database that is down now is reported by /readyz, not fatal."""
    try:
        upgrade(config.database_url)
    except OperationalError as exc:
        log.warning("database unavailable at start-up (%s); /readyz answers 503 until it is", type(exc.orig).__name__)


def _configure_logging(config: Config) -> None:
    """Log to stdout in one format (LOG_FORMAT=json for shippers); secrets registered for redaction. Under the
    `flask` command the log goes to stderr: stdout is the command's output (`flask consumers add … | head -1`)."""
    logs.register_secrets(config.secret_values())
    from_cli = os.environ.get("FLASK_RUN_FROM_CLI") == "true"  # set by the `flask` command (flask/cli.py)
    logs.configure_logging(config.web.log_format, sys.stderr if from_cli else None)


def _wire_edges(app: Flask, config: Config) -> None:
    """ProxyFix behind trusted proxies, request ids and access lines, the /api guard, postback metrics."""
    # The web layer, imported here for the reason _register_web_layer gives.
    from app import metrics
    from app.api.auth import guard_api

    proxies = config.web.trusted_proxies
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    logs.init_app(app)  # first: every later hook and log line has the request id
    app.before_request(guard_api)
    metrics.init_app(app)
