"""GET /metrics: Prometheus text behind the same bearer token as /api (docs/interface.md)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from app.api.auth import unauthorized
from app.metrics import render

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    """Counters summed over every web worker plus the pipeline figures read from Redis."""
    refused = unauthorized()
    if refused is not None:
        return refused
    body, content_type = render(current_app.extensions["orderhook"].config)
    return Response(body, status=200, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
