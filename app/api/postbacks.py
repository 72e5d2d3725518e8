"""POST /postbacks/<broker>[/<token>]: verify -> validate -> normalize -> dedup + enqueue -> 202/200."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response, current_app, jsonify, request

from app.exceptions import UnknownTokenError
from app.ingest.postback_accounts import PostbackAccounts
from app.times import utc_now_iso

if TYPE_CHECKING:
    from app.services import Services

bp = Blueprint("postbacks", __name__)
#: The app's PostbackAccounts (its caches live as long as the app): current_app.extensions[ACCOUNTS].
ACCOUNTS = "orderhook.postback_accounts"


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
    event = adapter.receive(body, request.headers, token=token, received_at=utc_now_iso(), accounts=_accounts(services))
    is_new = services.ingestor.submit(event, body)
    return _ack("accepted" if is_new else "duplicate", event.id, 202 if is_new else 200)


def _accounts(services: Services) -> PostbackAccounts:
    """The accounts' postback tokens and Kite secrets, kept for seconds (docs/accounts.md "Postbacks")."""
    accounts = current_app.extensions.get(ACCOUNTS)
    if accounts is None:
        accounts = current_app.extensions.setdefault(ACCOUNTS, PostbackAccounts(services.accounts))
    return accounts


def _ack(status: str, event_id: str, code: int) -> Response:
    """The answer to a broker, built directly (event ids are hex: nothing to escape)."""
    return Response(f'{{"status":"{status}","id":"{event_id}"}}', status=code, mimetype="application/json")
