"""AliceBlue order updates: Noren `om` frames (the feed), Noren-keyed webhooks, and book rows renamed onto them.

Docs: https://ant.aliceblueonline.com/productdocumentation/Webhooks/; docs/brokers.md §12. The fields are the
Noren OMS's (norenordno, status, reporttype, qty, fillshares, prc, trgprc, avgprc ...), so the Noren mapping
(app/brokers/noren/adapter.py) normalizes them; AliceBlue only spells some price types its own way.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from app.brokers.aliceblue.spec import SPEC
from app.brokers.base import code_from
from app.brokers.noren.adapter import ORDER_TYPES as NOREN_ORDER_TYPES
from app.brokers.noren.adapter import NorenAdapter
from app.events import OrderEvent

#: prctyp as AliceBlue spells it: `L` on the feed, LIMIT/MARKET/SL/SLM in the book (docs/brokers.md §12).
ORDER_TYPES = {**NOREN_ORDER_TYPES, "L": "LIMIT", "LIMIT": "LIMIT", "MARKET": "MARKET", "SLM": "SL-M"}


class AliceBlueAdapter(NorenAdapter):
    """Unsigned Noren-keyed updates (the path token is the gate), with AliceBlue's price-type codes."""

    spec = SPEC

    def normalize(self, data: dict[str, Any], raw: Any, *, source: str, received_at: str) -> OrderEvent:
        """The Noren event, its order type read through AliceBlue's codes."""
        event = super().normalize(data, raw, source=source, received_at=received_at)
        return replace(event, order_type=code_from(ORDER_TYPES, data["order_type"]))
