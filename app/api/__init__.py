"""HTTP surface: postbacks, health, and the bearer-protected admin API."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Attach every blueprint and the JSON error handlers."""
    from app.api import deliveries, errors, feeds, health, openapi, orders, postbacks, reconcile

    errors.register(app)
    app.register_blueprint(postbacks.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(orders.bp)
    app.register_blueprint(deliveries.bp)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(reconcile.bp)
    # The blotter: its live stream and its pages (docs/frontend.md).
    from app.api import stream
    from app.web import bp as web_bp

    app.register_blueprint(stream.bp)
    app.register_blueprint(web_bp)
