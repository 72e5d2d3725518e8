"""GET /api/brokers: what an account of each broker needs, so the Accounts page renders its add form per broker.

Derived from each broker's `AccountSpec` (app/brokers/<name>/spec.py), the one place that says what credentials
a broker needs (docs/accounts.md "API"). Only brokers that take accounts are listed.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from app.accounts.model import SESSION_CREDENTIAL
from app.api.account_input import account_id_required
from app.api.auth import require_admin
from app.brokers.registry import SPECS
from app.brokers.spec import BrokerSpec

bp = Blueprint("brokers", __name__, url_prefix="/api/brokers")


@bp.get("")
@require_admin
def list_brokers():
    """Every broker that takes accounts: its login kind, postback kind, whether account_id is needed, credentials."""
    return jsonify(brokers=[broker_view(spec) for spec in SPECS if spec.accounts is not None])


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
