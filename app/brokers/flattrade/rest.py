"""Flattrade's order book: the Noren family's client (app/brokers/noren/rest.py), docs/brokers.md §5.4."""

from __future__ import annotations

from app.brokers.flattrade.spec import BROKER
from app.brokers.noren.rest import NorenClient


class FlattradeClient(NorenClient):
    """OrderBook and SingleOrdHist of Flattrade."""

    family = BROKER
