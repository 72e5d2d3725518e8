"""Zebu's order socket: the Noren family's connector (app/brokers/noren/feed.py) with Zebu's declaration
(its spec.py BROKER: URL, login form, subscription and ack, heartbeat; docs/brokers.md §5)."""

from __future__ import annotations

from app.brokers.noren.feed import NorenConnector
from app.brokers.zebu.spec import BROKER, FEED


class ZebuConnector(NorenConnector):
    """Zebu's order updates over the Noren socket."""

    spec = FEED
    family = BROKER
