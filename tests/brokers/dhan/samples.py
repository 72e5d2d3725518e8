"""Dhan's genuine postbacks: every registry-driven test sends these.

Found through the registry by tests/support/samples.py.
"""

from __future__ import annotations

from typing import Any

from tests.support.helpers import load_fixture


def postbacks() -> list[dict[str, Any]]:
    """A TRADED postback as Dhan sends it (docs/brokers.md §4.1)."""
    return [load_fixture("dhan_postback_traded.json")]
