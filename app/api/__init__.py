"""HTTP surface: postbacks, health, and the bearer-protected admin API."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Attach every blueprint and the JSON error handlers."""
    from app.api import deliveries, errors, feeds, health, orders, postbacks

    errors.register(app)
    app.register_blueprint(postbacks.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(orders.bp)
    app.register_blueprint(deliveries.bp)
    app.register_blueprint(feeds.bp)
    # ops: /metrics (app/api/metrics.py)
    from app.api import metrics

    app.register_blueprint(metrics.bp)
