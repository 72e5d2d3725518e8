"""The one list of brokers; every other registry (adapters, feeds, URL defaults, routes) is derived from it.

Adding a broker is its package under app/brokers/, one line in SPECS, its section of docs/brokers.md and
its tests under tests/brokers/<name>/ (samples.py among them: the registry-driven tests send its bodies).
"""

from __future__ import annotations

import math
from typing import Any

from app.brokers.aliceblue.spec import SPEC as ALICEBLUE
from app.brokers.angel.spec import SPEC as ANGEL
from app.brokers.dhan.spec import SPEC as DHAN
from app.brokers.firstock.spec import SPEC as FIRSTOCK
from app.brokers.fivepaisa.spec import SPEC as FIVEPAISA
from app.brokers.flattrade.spec import SPEC as FLATTRADE
from app.brokers.fyers.spec import SPEC as FYERS
from app.brokers.groww.spec import SPEC as GROWW
from app.brokers.jainam.spec import SPEC as JAINAM
from app.brokers.kite.spec import SPEC as KITE
from app.brokers.kotak.spec import SPEC as KOTAK
from app.brokers.shoonya.spec import SPEC as SHOONYA
from app.brokers.spec import BrokerSpec, FeedSpec, status_word
from app.brokers.upstox.spec import SPEC as UPSTOX
from app.brokers.xts.spec import SPEC as XTS
from app.brokers.zebu.spec import SPEC as ZEBU

SPECS: tuple[BrokerSpec, ...] = (
    KITE,
    DHAN,
    FLATTRADE,
    SHOONYA,
    ZEBU,
    FIRSTOCK,
    JAINAM,
    ANGEL,
    UPSTOX,
    FYERS,
    ALICEBLUE,
    KOTAK,
    XTS,
    GROWW,
    FIVEPAISA,
)

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


def postback_brokers() -> list[tuple[str, str]]:
    """(broker, route) for every broker that takes HTTP postbacks, e.g. ("dhan", "/postbacks/dhan/<POSTBACK_TOKEN>")."""
    return [(spec.name, spec.postback_route) for spec in SPECS if spec.postback_route]


def is_known_status(broker: str, broker_status: Any) -> bool:
    """True when the broker's status word (or code) is one its spec maps; unknown words are stored but counted.

    For Jainam the default numeric table is used; a deployment's JAINAM_STATUS_MAP is known to its adapter,
    so prefer `services.adapters[broker].is_known_status(...)` where an adapter is at hand.
    """
    spec = BY_NAME.get(broker)
    if spec is None or broker_status is None:
        return False
    return _status_key(broker_status) in spec.status_map


def _status_key(broker_status: Any) -> str:
    """A status as the maps spell it: words folded, numbers (5, "5", 5.0) as their integer text."""
    word = status_word(broker_status)
    try:
        number = float(word)
    except ValueError:
        return word
    return str(int(number)) if math.isfinite(number) and number == int(number) else word
