"""Kite's genuine postbacks, signed with the test secret: every registry-driven test sends these.

Found through the registry by tests/support/samples.py.
"""

from __future__ import annotations

from typing import Any

from tests.support.env import KITE_SECRET
from tests.support.helpers import load_fixture, sign_kite


def postbacks() -> list[dict[str, Any]]:
    """The documented COMPLETE postback (docs/brokers.md §3.1), with the checksum Kite would send."""
    return [sign_kite(load_fixture("kite_postback_complete.json"), KITE_SECRET)]
