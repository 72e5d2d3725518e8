"""Firstock's order book: the Noren family's client (app/brokers/noren/rest.py), docs/brokers.md §5.4."""

from __future__ import annotations

from app.brokers.firstock.spec import BROKER
from app.brokers.noren.rest import NorenClient


class FirstockClient(NorenClient):
    """OrderBook and SingleOrdHist of Firstock."""

    family = BROKER
