"""Bearer ADMIN_TOKEN for /api/*."""

from __future__ import annotations

import hmac
from functools import wraps

from flask import current_app, request

from app.api.errors import error_response


def require_admin(view):
    """401 unless `Authorization: Bearer <ADMIN_TOKEN>` (constant-time compare; no token configured = locked)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        expected = current_app.extensions["orderhook"].config.admin_token
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if (
            not expected
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(given.strip().encode(), expected.encode())
        ):
            response = error_response(401, "missing or wrong bearer token: send 'Authorization: Bearer <ADMIN_TOKEN>'")
            response.headers["WWW-Authenticate"] = 'Bearer realm="orderhook"'
            return response
        return view(*args, **kwargs)

    return wrapper
