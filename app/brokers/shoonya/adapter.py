"""Shoonya's adapter: the Noren family's (app/brokers/noren/adapter.py) with its spec (docs/brokers.md §5)."""

from __future__ import annotations

from app.brokers.noren.adapter import NorenAdapter
from app.brokers.shoonya.spec import SPEC


class ShoonyaAdapter(NorenAdapter):
    """Noren keys or the Tiqs camelCase shape; unsigned, gated by the path token (docs/brokers.md §5.2)."""

    spec = SPEC
