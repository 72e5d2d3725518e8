"""The one short line per alert a trader reads at a glance, e.g.
"REJECTED kite 251128000123 INFY BUY 10 @ 101.50 — RMS: margin exceeds"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

STATUS_KINDS = ("REJECTED", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "EXPIRED")
MAX_REASON = 160


def _qty(value: Any) -> str:
    """A quantity as a whole number, or ? when unknown."""
    return "?" if value is None else str(int(value))


def _price(value: Any) -> str:
    """A price with two decimals, MKT for a market order's zero price."""
    if value is None:
        return "?"
    number = float(value)
    return "MKT" if number == 0 else f"{number:.2f}"


def _head(event: dict[str, Any], status: str) -> str:
    """STATUS broker order_id SYMBOL SIDE."""
    parts = [status, event.get("broker") or "?", event.get("order_id") or "?"]
    parts += [p for p in (event.get("symbol"), event.get("side")) if p]
    return " ".join(str(p) for p in parts)


def event_line(event: dict[str, Any], status: str) -> str:
    """The line for an order update with this (normalized) status."""
    head = _head(event, status)
    if status in ("FILLED", "PARTIALLY_FILLED"):
        filled = _qty(event.get("filled_quantity"))
        line = f"{head} {filled}/{_qty(event.get('quantity'))}"
        if event.get("average_price"):
            line += f" @ avg {_price(event.get('average_price'))}"
    else:
        line = f"{head} {_qty(event.get('quantity'))} @ {_price(event.get('price'))}"
    reason = (event.get("reason") or "").strip()
    if reason and status in ("REJECTED", "CANCELLED", "EXPIRED"):
        line += " — " + (reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…")
    if event.get("account_id"):
        line += f" [{event['account_id']}]"
    return line


def event_alert(event: dict[str, Any], state: dict[str, Any] | None) -> Iterator[tuple[str, str, str]]:
    """(kind, once-key, text) for a stored event worth announcing.

    Keyed on the order and what happened to it, not on the event: the postback, the WebSocket copy
    and a reconciliation row of one fill are one piece of news; each larger partial fill is another.
    """
    status = event.get("status")
    if status not in STATUS_KINDS or event.get("modified"):
        return
    current = (state or {}).get("status")
    if status == "PARTIALLY_FILLED" and current in ("FILLED",):
        return  # a late partial fill of an order already filled (docs/brokers.md §1: out-of-order updates)
    order = f"{event.get('broker')}:{event.get('order_id')}"
    key = f"{order}:{status}"
    if status == "PARTIALLY_FILLED":
        key += f":{event.get('filled_quantity')}"
    yield status, key, event_line(event, status)
