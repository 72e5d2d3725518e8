"""GET /api/brokers: what an account of each broker needs, so the Accounts page renders its add form per broker,
and, for a polled broker (docs/reconcile.md "Polled order books"), how often its accounts' books are read.

Derived from each broker's `AccountSpec` (app/brokers/<name>/spec.py), the one place that says what credentials
a broker needs (docs/accounts.md "API"). Only brokers that take accounts are listed.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

from app.accounts.model import SESSION_CREDENTIAL
from app.api.account_input import account_id_required
from app.api.auth import require_admin
from app.brokers.registry import SPECS
from app.brokers.spec import BrokerSpec
from app.reconcile.polling import poll_seconds

bp = Blueprint("brokers", __name__, url_prefix="/api/brokers")


@bp.get("")
@require_admin
def list_brokers():
    """Every broker that takes accounts: its login kind, postback kind, whether account_id is needed, credentials."""
    config = current_app.extensions["orderhook"].config
    views = [dict(broker_view(spec), polled_seconds=poll_seconds(config, spec.name)) for spec in SPECS if spec.accounts]
    return jsonify(brokers=views)


def broker_view(spec: BrokerSpec) -> dict[str, Any]:
    """One broker's entry; the day's access_token is listed last (optional: pasted now or logged in later)."""
    accounts = spec.accounts
    assert accounts is not None
    credentials = [
        {"name": c.name, "secret": c.secret, "required": c.required, "doc": c.doc} for c in accounts.credentials
    ]
    credentials.append(
        {
            "name": SESSION_CREDENTIAL,
            "secret": True,
            "required": False,
            "doc": "the day's token, if you have one now (else log in or paste it later)",
        }
    )
    return {
        "name": spec.name,
        "login": accounts.login,
        "postback": spec.postback,
        "account_id_required": account_id_required(accounts),
        "credentials": credentials,
    }
