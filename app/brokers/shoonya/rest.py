"""Shoonya's order book: the Noren family's client (app/brokers/noren/rest.py) in its dialect (docs/brokers.md §5.4)."""

from __future__ import annotations

from app.brokers.noren.rest import NorenClient
from app.brokers.shoonya.spec import BROKER


class ShoonyaClient(NorenClient):
    """OrderBook and SingleOrdHist of Shoonya."""

    family = BROKER
