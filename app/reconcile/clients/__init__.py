"""Per-broker REST order-book clients for reconciliation (docs/reconcile.md).

Jainam is not here: its order-book endpoint is known only from third-party code (brokers.md §10
[secondary]), so it is not reconciled; docs/reconcile.md says why.
"""

from __future__ import annotations

from app.config import Config
from app.reconcile.clients.base import (
    AuthExpired,
    BadResponse,
    OrderBookClient,
    OrderNotFound,
    ReconcileClientError,
    Unavailable,
)
from app.reconcile.clients.dhan import DhanClient
from app.reconcile.clients.flattrade import FlattradeClient
from app.reconcile.clients.kite import KiteClient

CLIENTS: dict[str, type[OrderBookClient]] = {
    "kite": KiteClient,
    "dhan": DhanClient,
    "flattrade": FlattradeClient,
}

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
