"""The one setting every XTS deployment differs by: its root URL (docs/brokers.md §14)."""

from __future__ import annotations


def root_url(value: str) -> str:
    """A root URL fit to dial: http(s), without a trailing slash; ValueError names the account setting."""
    text = (value or "").strip().rstrip("/")
    if not text.startswith(("https://", "http://")) or any(c.isspace() for c in text):
        raise ValueError("the XTS root URL must start with https:// (XTS_ROOT_URL or the account's root_url)")
    return text
