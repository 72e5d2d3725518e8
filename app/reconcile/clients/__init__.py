"""The brokers' REST order-book clients, as the reconciliation sees them (docs/reconcile.md).

Each client lives in its broker's package (`app/brokers/<name>/rest.py`, named by the spec's `rest`);
this registry is derived from the specs. Jainam has none: its order-book endpoint is known only from
third-party code (docs/brokers.md §10 [secondary]), so it is not reconciled; docs/reconcile.md says why.
"""

from __future__ import annotations

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
    "client_for",
    "configured_brokers",
]


def configured_brokers(config: Config) -> tuple[str, ...]:
    """Brokers whose REST credentials are all set: the ones reconciled (and whose postbacks are confirmed)."""
    return tuple(name for name, cls in CLIENTS.items() if cls.configured(config))


def client_for(config: Config, broker: str) -> OrderBookClient | None:
    """A client for the broker, or None when it has no client or its credentials are not set."""
    cls = CLIENTS.get(broker)
    if cls is None or not cls.configured(config):
        return None
    return cls(config)
