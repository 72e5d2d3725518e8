"""Flattrade's genuine postbacks, in both shapes: every registry-driven test sends these.

Found through the registry by tests/support/samples.py.
"""

from __future__ import annotations

from typing import Any

from tests.support.helpers import load_fixture


def postbacks() -> list[dict[str, Any]]:
    """A COMPLETE update with Noren keys and the same in the camelCase Tiqs shape (docs/brokers.md §5)."""
    return [load_fixture("flattrade_noren_complete.json"), load_fixture("flattrade_tiqs_complete.json")]
