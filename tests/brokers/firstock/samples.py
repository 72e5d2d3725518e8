"""Firstock's published samples: every registry-driven test sends these (found by tests/support/samples.py)."""

from __future__ import annotations

from typing import Any

from tests.support.helpers import load_fixture


def postbacks() -> list[dict[str, Any]]:
    """The ORDER ACK frame of firstock.in/api/docs/order-update-feed, verbatim: Noren keys, `pcode`, no `t`
    (docs/brokers.md §5.5)."""
    return [load_fixture("firstock_order_update_ack.json")]
