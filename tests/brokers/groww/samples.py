"""Groww order rows as the order list publishes them (docs/brokers.md §15.1): tests/support/fakes/polled.py
`groww_order` builds them; Groww has no HTTP postback, so `postbacks()` is empty."""

from __future__ import annotations

from typing import Any


def postbacks() -> list[dict[str, Any]]:
    """Groww sends no HTTP postback (docs/brokers.md §15.1)."""
    return []
