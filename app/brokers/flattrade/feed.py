"""Flattrade's order socket: the Noren family's connector (app/brokers/noren/feed.py) with Flattrade's declaration
(its spec.py BROKER: URL, login form, subscription and ack, heartbeat; docs/brokers.md §5)."""

from __future__ import annotations

from app.brokers.flattrade.spec import BROKER, FEED
from app.brokers.noren.feed import NorenConnector


class FlattradeConnector(NorenConnector):
    """Flattrade's order updates over the Noren socket."""

    spec = FEED
    family = BROKER
