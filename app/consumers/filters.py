"""Which events a consumer gets: lists of brokers, accounts, statuses and sources (docs/consumers.md "Filters").

An absent or empty list matches everything; an event goes to a consumer when every given list holds the
event's `broker`, `account_id`, `status` and `source`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The filter's keys and the event field each one reads.
FIELDS = {"brokers": "broker", "accounts": "account_id", "statuses": "status", "sources": "source"}
MAX_ITEMS = 500
MAX_ITEM_LENGTH = 128


class BadFilters(ValueError):
    """Filters the API answers 400; the message says what to fix."""


@dataclass(frozen=True)
class Filters:
    """Each list as a frozenset (empty: everything)."""

    brokers: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()

    def matches(self, event: Mapping[str, Any]) -> bool:
        """True when the event passes every given list."""
        return (
            (not self.brokers or event.get("broker") in self.brokers)
            and (not self.accounts or event.get("account_id") in self.accounts)
            and (not self.statuses or event.get("status") in self.statuses)
            and (not self.sources or event.get("source") in self.sources)
        )

    @property
    def everything(self) -> bool:
        """No list given: every event matches."""
        return not (self.brokers or self.accounts or self.statuses or self.sources)

    def shown(self) -> dict[str, list[str]]:
        """The view's form: all four keys, sorted lists."""
        return {name: sorted(getattr(self, name)) for name in FIELDS}


def parse_filters(value: Any, *, known: Mapping[str, frozenset[str]] | None = None) -> Filters:
    """Filters from a request (or the stored JSON); BadFilters naming what is wrong.

    `known`: the values a list may hold (brokers, statuses, sources); accounts are free text.
    """
    if value is None:
        return Filters()
    if not isinstance(value, dict):
        raise BadFilters('filters must be an object: {"brokers": [], "accounts": [], "statuses": [], "sources": []}')
    unknown = sorted(set(value) - set(FIELDS))
    if unknown:
        raise BadFilters(f"unknown filters {unknown}; use {list(FIELDS)}")
    lists: dict[str, frozenset[str]] = {}
    for name in FIELDS:
        items = value.get(name)
        if items is None:
            items = []
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise BadFilters(f"filters.{name} must be a list of strings")
        if len(items) > MAX_ITEMS:
            raise BadFilters(f"filters.{name} holds more than {MAX_ITEMS} items")
        for item in items:
            if not item or len(item) > MAX_ITEM_LENGTH or not item.isprintable():
                raise BadFilters(f"filters.{name}: each item is 1-{MAX_ITEM_LENGTH} printable characters")
        allowed = (known or {}).get(name)
        if allowed is not None:
            wrong = sorted(set(items) - allowed)
            if wrong:
                raise BadFilters(f"filters.{name}: unknown {wrong}; known: {sorted(allowed)}")
        lists[name] = frozenset(items)
    return Filters(**lists)


def stored_filters(value: Any) -> Filters:
    """The stored JSON as Filters (lenient: a stored row was checked when it was written)."""
    try:
        return parse_filters(value)
    except BadFilters:
        return Filters()
