"""Zebu's published samples: every registry-driven test sends these (found by tests/support/samples.py)."""

from __future__ import annotations

from typing import Any

from tests.support.helpers import load_fixture


def postbacks() -> list[dict[str, Any]]:
    """The first row of the OrderBook sample on Zebu's API pages (zebumyntapi.web.app `OAuth/Order`, as copied;
    title-case `Open`, an AMO; docs/brokers.md §5.4)."""
    return [load_fixture("zebu_orderbook_open.json")]
