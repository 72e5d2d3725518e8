"""Broker registry: adding a broker is its adapter module, its test module and one line here."""

from __future__ import annotations

from app.brokers.base import BrokerAdapter
from app.brokers.dhan import DhanAdapter
from app.brokers.flattrade import FlattradeAdapter
from app.brokers.jainam import JainamAdapter
from app.brokers.kite import KiteAdapter

ADAPTERS: dict[str, type[BrokerAdapter]] = {
    "kite": KiteAdapter,
    "dhan": DhanAdapter,
    "flattrade": FlattradeAdapter,
    "jainam": JainamAdapter,
}
