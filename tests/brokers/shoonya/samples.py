"""Shoonya's published samples: every registry-driven test sends these (found by tests/support/samples.py)."""

from __future__ import annotations

from typing import Any

from tests.support.helpers import load_fixture


def postbacks() -> list[dict[str, Any]]:
    """The COMPLETE row of the ShoonyaApi-py README's `single_order_history` sample (`10c719c`, verbatim): Noren keys,
    `rpt` for the report type (docs/brokers.md §5.4)."""
    return [load_fixture("shoonya_history_complete.json")]
