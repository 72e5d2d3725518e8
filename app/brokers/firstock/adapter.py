"""Firstock's adapter: the Noren family's (app/brokers/noren/adapter.py) with its spec (docs/brokers.md §5)."""

from __future__ import annotations

from app.brokers.firstock.spec import SPEC
from app.brokers.noren.adapter import NorenAdapter


class FirstockAdapter(NorenAdapter):
    """Noren keys or the Tiqs camelCase shape; unsigned, gated by the path token (docs/brokers.md §5.2)."""

    spec = SPEC
