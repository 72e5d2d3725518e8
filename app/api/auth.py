"""Bearer ADMIN_TOKEN for /api/*."""

from __future__ import annotations

import hmac
from functools import wraps

from flask import current_app, request

from app.api.errors import error_response


def unauthorized():
    """A 401 response unless `Authorization: Bearer <ADMIN_TOKEN>` (constant time; no token configured = locked)."""
    expected = current_app.extensions["orderhook"].config.admin_token
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if expected and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode()):
        return None
    response = error_response(401, "missing or wrong bearer token: send 'Authorization: Bearer <ADMIN_TOKEN>'")
    response.headers["WWW-Authenticate"] = 'Bearer realm="orderhook"'
    return response


def require_admin(view):
    """Guard an /api view with the bearer token."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        return unauthorized() or view(*args, **kwargs)

    return wrapper
