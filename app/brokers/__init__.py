"""Broker registry: adding a broker is its adapter module, its test module and one line here."""

from __future__ import annotations

from app.brokers.base import BrokerAdapter
from app.brokers.dhan import DhanAdapter
from app.brokers.flattrade import FlattradeAdapter
from app.brokers.jainam import JainamAdapter
from app.brokers.kite import KiteAdapter
from app.config import Config

ADAPTERS: dict[str, type[BrokerAdapter]] = {
    "kite": KiteAdapter,
    "dhan": DhanAdapter,
    "flattrade": FlattradeAdapter,
    "jainam": JainamAdapter,
}


def get_adapter(name: str, config: Config) -> BrokerAdapter | None:
    """The adapter for a broker name, or None (the caller answers 404)."""
    adapter_class = ADAPTERS.get(name)
    return adapter_class(config) if adapter_class else None
