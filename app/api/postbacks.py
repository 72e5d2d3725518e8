"""POST /postbacks/<broker>[/<token>]: verify -> validate -> normalize -> dedup + enqueue -> 202/200."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from app.exceptions import UnknownTokenError
from app.parsing import utc_now_iso
from app.services import Services

bp = Blueprint("postbacks", __name__)


@bp.post("/postbacks/<broker>", defaults={"token": None})
@bp.post("/postbacks/<broker>/<token>")
def receive(broker: str, token: str | None):
    """Take one broker postback; the raw body is read once, before anything is trusted."""
    services: Services = current_app.extensions["orderhook"]
    adapter = services.adapters.get(broker)
    if adapter is None or not adapter.http_postbacks or (token is not None and not adapter.path_token):
        return jsonify(error=f"unknown postback URL: no broker {broker!r} here"), 404
    if adapter.path_token and token is None:
        raise UnknownTokenError(f"unknown postback URL: {broker} postbacks go to /postbacks/{broker}/<POSTBACK_TOKEN>")
    body = request.get_data(cache=False)
    event = adapter.receive(body, request.headers, token=token, received_at=utc_now_iso())
    is_new = services.ingestor.submit(event, body)
    if is_new:
        return jsonify(status="accepted", id=event.id), 202
    return jsonify(status="duplicate", id=event.id), 200
