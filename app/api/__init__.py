"""HTTP surface: postbacks, health, and the bearer-protected admin API."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Attach every blueprint and the JSON error handlers."""
    from app import web
    from app.api import deliveries, errors, feeds, health, metrics, openapi, orders, postbacks, reconcile, stream

    errors.register(app)
    app.register_blueprint(postbacks.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(orders.bp)
    app.register_blueprint(deliveries.bp)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(reconcile.bp)
    app.register_blueprint(metrics.bp)
    # The blotter: its live stream and its pages (docs/frontend.md).
    app.register_blueprint(stream.bp)
    app.register_blueprint(web.bp)
