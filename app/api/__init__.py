"""HTTP surface: postbacks, health, and the bearer-protected admin API."""

from __future__ import annotations

from flask import Flask

from app.api import (
    accounts,
    brokers,
    consumers,
    deliveries,
    errors,
    feeds,
    health,
    metrics,
    openapi,
    orders,
    postbacks,
    reconcile,
    stream,
)


def register(app: Flask) -> None:
    """Attach every API blueprint and the JSON error handlers (the blotter's pages are app/web/)."""
    errors.register(app)
    app.register_blueprint(postbacks.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(orders.bp)
    app.register_blueprint(deliveries.bp)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(reconcile.bp)
    app.register_blueprint(accounts.bp)
    app.register_blueprint(brokers.bp)
    app.register_blueprint(consumers.bp)
    app.register_blueprint(metrics.bp)
    # The blotter's live stream (docs/frontend.md).
    app.register_blueprint(stream.bp)
