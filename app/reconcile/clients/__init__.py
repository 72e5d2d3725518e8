"""The brokers' REST order-book clients, as the reconciliation sees them (docs/reconcile.md).

Each client lives in its broker's package (`app/brokers/<name>/rest.py`, named by the spec's `rest`);
this registry is derived from the specs. Jainam has none: its order-book endpoint is known only from
third-party code (docs/brokers.md §10 [secondary]), so it is not reconciled; docs/reconcile.md says why.
"""

from __future__ import annotations

from app.accounts.model import Account
from app.brokers.loader import rest_client_classes
from app.brokers.rest import (
    AuthExpired,
    BadResponse,
    OrderBookClient,
    OrderNotFound,
    ReconcileClientError,
    Unavailable,
)
from app.config import Config

CLIENTS: dict[str, type[OrderBookClient]] = rest_client_classes()

__all__ = [
    "CLIENTS",
    "AuthExpired",
    "BadResponse",
    "OrderBookClient",
    "OrderNotFound",
    "ReconcileClientError",
    "Unavailable",
    "account_ready",
    "client_for",
    "configured_brokers",
]


def configured_brokers(config: Config) -> tuple[str, ...]:
    """Brokers whose REST credentials are all set: the ones reconciled (and whose postbacks are confirmed)."""
    return tuple(name for name, cls in CLIENTS.items() if cls.configured(config))


def client_for(config: Config, target: str | Account) -> OrderBookClient | None:
    """A client for one account (its credentials and day's token over the broker's settings), or for a broker's
    environment variables when given its name; None when the broker has no client or a credential is missing."""
    if isinstance(target, str):
        cls = CLIENTS.get(target)
        return cls(config) if cls is not None and cls.configured(config) else None
    cls = CLIENTS.get(target.broker)
    if cls is None:
        return None
    variables = target.variables(config.broker(target.broker))
    return cls(config, variables=variables) if cls.ready(variables) else None


def account_ready(config: Config, account: Account) -> bool:
    """True when an account added as data is to be reconciled: switched on, a usable session, and every REST
    credential its broker's client needs (the account read with its secrets)."""
    return not account.read_only and not why_not(config, account)


def why_not(config: Config, account: Account) -> str:
    """Why an account added as data is not reconciled, in plain words ("" when it is; read with its secrets)."""
    cls = CLIENTS.get(account.broker)
    if cls is None:
        return f"{account.broker} has no REST order book client (docs/reconcile.md)"
    if not account.reconcile:
        return "reconciliation is switched off for this account"
    if not account.session.usable:
        return "no active session: log in or paste the day's token"
    if not cls.ready(account.variables(config.broker(account.broker))):
        return "a credential its order book needs is missing"
    return ""
