"""Firstock's order socket: the Noren family's connector (app/brokers/noren/feed.py) with Firstock's declaration
(its spec.py BROKER: URL, login form, subscription and ack, heartbeat; docs/brokers.md §5)."""

from __future__ import annotations

from app.brokers.firstock.spec import BROKER, FEED
from app.brokers.noren.feed import NorenConnector


class FirstockConnector(NorenConnector):
    """Firstock's order updates over the Noren socket."""

    spec = FEED
    family = BROKER
