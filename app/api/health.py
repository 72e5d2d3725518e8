"""/healthz (the process runs) and /readyz (Redis and the database answer)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from app.db import schema_ready

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Liveness: 200 while the process serves requests."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Readiness: 200 only when Redis and the database both answer."""
    services = current_app.extensions["orderhook"]
    checks = {"redis": _check(lambda: services.redis.ping()), "database": _check(lambda: _db_ping(services.engine))}
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "unavailable", checks=checks), 200 if ready else 503


def _db_ping(engine) -> None:
    """The database answers and its schema is migrated."""
    schema_ready(engine)


def _check(probe) -> str:
    """'ok' or the failure's class name (never its message: it may hold a URL with credentials)."""
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure as unavailable
        return f"unavailable: {type(exc).__name__}"
    return "ok"
