"""Dhan (DhanHQ v2): postbacks, the official order-update WebSocket and the web order feed (docs/brokers.md §4)."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """The adapter module's names (`from app.brokers.<name> import ...Adapter`), loaded on first use:
    importing the package for its spec must not import the config (which reads the specs)."""
    from importlib import import_module

    return getattr(import_module(f"{__name__}.adapter"), name)
