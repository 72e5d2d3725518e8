"""The JSON refusal every endpoint answers with: `{"error": "..."}` saying what to fix (docs/interface.md).

A leaf: the /api guard (app/api/auth.py), the error handlers (app/api/errors.py) and the views all build
their refusals here, so none of them imports another for it.
"""

from __future__ import annotations

from flask import Response, g, has_request_context, jsonify

MESSAGES = {
    404: "not found: check the URL (postbacks go to /postbacks/<broker>[/<token>])",
    405: "method not allowed for this URL",
    413: "body is larger than the 64 KiB limit for an order update",
}


def error_response(status_code: int, message: str | None = None) -> Response:
    """A JSON error with the status; the message says what to fix."""
    text = message or MESSAGES.get(status_code, "request failed")
    if has_request_context():
        g.error_message = text  # the refusal log line (app/metrics.py) says the same as the answer
    response = jsonify(error=text)
    response.status_code = status_code
    return response
