"""The one setting every XTS deployment differs by: its root URL (docs/brokers.md §14)."""

from __future__ import annotations

from typing import Any


def root_url(value: str) -> str:
    """A root URL fit to dial: http(s), without a trailing slash; ValueError names the account setting."""
    text = (value or "").strip().rstrip("/")
    if not text.startswith(("https://", "http://")) or any(c.isspace() for c in text):
        raise ValueError("the XTS root URL must start with https:// (XTS_ROOT_URL or the account's root_url)")
    return text


def deployment_root(variables: Any) -> str:
    """The account's own root URL (its root_url credential), else XTS_ROOT_URL; checked by root_url."""
    return root_url(variables["XTS_ACCOUNT_ROOT_URL"] or variables["XTS_ROOT_URL"])
