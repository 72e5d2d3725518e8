"""5paisa OrderBookDetail rows as V3/OrderBook publishes them (docs/brokers.md §15.2): tests/support/fakes/polled.py
`fivepaisa_order` builds them; 5paisa has no HTTP postback, so `postbacks()` is empty."""

from __future__ import annotations

from typing import Any


def postbacks() -> list[dict[str, Any]]:
    """5paisa sends no HTTP postback (docs/brokers.md §15.2)."""
    return []
