"""The one list of brokers; every other registry (adapters, feeds, URL defaults, routes) is derived from it.

Adding a broker is its package under app/brokers/, its tests, and one line in SPECS.
"""

from __future__ import annotations

from app.brokers.dhan.spec import SPEC as DHAN
from app.brokers.flattrade.spec import SPEC as FLATTRADE
from app.brokers.jainam.spec import SPEC as JAINAM
from app.brokers.kite.spec import SPEC as KITE
from app.brokers.spec import BrokerSpec, FeedSpec

SPECS: tuple[BrokerSpec, ...] = (KITE, DHAN, FLATTRADE, JAINAM)

BY_NAME: dict[str, BrokerSpec] = {spec.name: spec for spec in SPECS}
#: Broker names as they appear in URLs and events.
BROKER_NAMES: tuple[str, ...] = tuple(BY_NAME)
#: FEEDS name -> its spec, in registry order.
FEEDS_BY_NAME: dict[str, FeedSpec] = {feed.name: feed for spec in SPECS for feed in spec.feeds}
#: FEEDS name -> the broker whose adapter normalizes that feed.
FEED_BROKERS: dict[str, str] = {feed.name: spec.name for spec in SPECS for feed in spec.feeds}
KNOWN_FEEDS: tuple[str, ...] = tuple(FEEDS_BY_NAME)


def secret_variables() -> tuple[str, ...]:
    """Broker variables whose values must never be logged or shown."""
    return tuple(var.name for spec in SPECS for var in spec.variables if var.secret)


def get_spec(broker: str) -> BrokerSpec | None:
    """A broker's spec by name, or None."""
    return BY_NAME.get(broker)
