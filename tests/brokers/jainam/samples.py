"""Jainam's genuine webhooks: every registry-driven test sends these.

Found through the registry by tests/support/samples.py.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.support.fakes.samples import JAINAM_ORD_NRML_SEED


def postbacks() -> list[dict[str, Any]]:
    """Seed 000's documented ORD_NRML webhook, a surveillance reject (docs/brokers.md §6)."""
    return [copy.deepcopy(JAINAM_ORD_NRML_SEED)]
