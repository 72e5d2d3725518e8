"""The classes the specs name as "module:Class" (adapters, connectors, REST clients), imported on demand.

The specs are plain data that app/config.py reads at import time, and adapters import the config, so a
spec names its classes instead of importing them. Nothing the config imports imports this module, so
loading a class never meets a half-initialized config (docs/brokers.md, "Where the code lives").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from app.brokers.registry import SPECS

if TYPE_CHECKING:
    from app.brokers.base import BrokerAdapter
    from app.brokers.feed import FeedConnector


def load(path: str) -> Any:
    """The object a spec names as "module:attribute"."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def adapter_classes() -> dict[str, type[BrokerAdapter]]:
    """Broker name -> adapter class, from the specs."""
    return {spec.name: load(spec.adapter) for spec in SPECS}


def connector_classes() -> dict[str, type[FeedConnector]]:
    """FEEDS name -> connector class, from the specs (only the feeds process needs these)."""
    return {feed.name: load(feed.connector) for spec in SPECS for feed in spec.feeds}


def rest_client_classes() -> dict[str, Any]:
    """Broker name -> REST order-book client class, for the brokers whose spec names one."""
    return {spec.name: load(spec.rest) for spec in SPECS if spec.rest}
