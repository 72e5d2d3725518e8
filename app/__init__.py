"""Orderhook: one verified inbox for broker order updates (Flask app factory)."""

from __future__ import annotations

import logging

from flask import Flask

from app.config import Config, load_config
from app.services import Services, set_services


def create_app(config: Config | None = None, services: Services | None = None) -> Flask:
    """Build the web app; configuration is checked here, so `import wsgi` fails on a bad one."""
    config = config or load_config()
    services = services or Services.build(config)
    set_services(services)
    app = Flask(__name__, instance_path=str(config.instance_path))
    app.config.update(MAX_CONTENT_LENGTH=config.max_body_bytes, JSON_SORT_KEYS=False)
    app.json.sort_keys = False
    app.extensions["orderhook"] = services
    _configure_logging()

    from app.api import register

    register(app)

    from app.cli import register_cli

    register_cli(app)
    return app


def _configure_logging() -> None:
    """Log to stdout/stderr in one format (Procfile processes)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
