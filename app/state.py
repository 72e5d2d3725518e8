"""The monotonic per-order state machine (brokers.md §1 finding 2, §2).

Updates arrive twice, late and out of order (a partial fill after COMPLETE, two cancels per cancel),
so the state is a join over the events seen, not "the last one wins":

- a terminal status (FILLED, CANCELLED, REJECTED, EXPIRED) is never left;
- filled_quantity is the largest ever reported, and average_price is that report's (null if it has none);
- among working statuses the most advanced wins (PENDING < OPEN = TRIGGER_PENDING), later exchange
  time breaking ties; PARTIALLY_FILLED and FILLED follow from the quantities;
- prices and quantities come from the update with the latest exchange time, modifications included;
- a modification (`modified`) proves the order is live (at least OPEN) but never sets a status beyond that.
"""

from __future__ import annotations

from typing import Any

from app.events import OrderStatus

DESCRIPTIVE = (
    "account_id",
    "exchange_order_id",
    "side",
    "exchange",
    "symbol",
    "product",
    "order_type",
    "tag",
)
AMENDABLE = ("quantity", "price", "trigger_price")


def _status_key(event: dict[str, Any]) -> tuple:
    """Which working status is further along: rank, then exchange time, then id (deterministic).

    A modification counts as evidence of a live order only: at most rank 1, and it loses every tie.
    """
    rank = OrderStatus.RANK.get(event["status"], 0)
    if event.get("modified"):
        return (min(rank, 1), "", "")
    return (rank, event.get("exchange_time") or "", event.get("id") or "")


def _amend_key(event: dict[str, Any]) -> tuple:
    """Which update's prices and quantities are the latest."""
    return (event.get("exchange_time") or "", event.get("id") or "")


def _fill_key(event: dict[str, Any]) -> tuple:
    """Which event's fill figures (filled_quantity, average_price) are the latest."""
    # Flat, so the key survives the JSON round trip through the database unchanged (no nested tuple).
    return (event.get("filled_quantity") or 0, event.get("average_price") is not None, *_status_key(event))


def new_state(event: dict[str, Any]) -> dict[str, Any]:
    """The state of an order known from one event."""
    state = {name: event.get(name) for name in ("broker", "order_id", *DESCRIPTIVE, *AMENDABLE)}
    state.update(
        status=event["status"],
        broker_status=event.get("broker_status"),
        filled_quantity=event.get("filled_quantity") or 0,
        average_price=event.get("average_price"),
        reason=event.get("reason"),
        exchange_time=event.get("exchange_time"),
        created_at=event.get("received_at"),
        updated_at=event.get("received_at"),
        last_event_id=event.get("id"),
        event_count=0,
        _status_key=list(_status_key(event)),
        _fill_key=list(_fill_key(event)),
        _amend_key=list(_amend_key(event)),
    )
    return _derive(state)


def apply_event(state: dict[str, Any] | None, event: dict[str, Any]) -> dict[str, Any]:
    """The state after one more event, whatever order events arrive in."""
    if state is None:
        state = new_state(event)
        state["event_count"] = 1
        return state
    state = dict(state)
    state["event_count"] = state.get("event_count", 0) + 1
    state["updated_at"] = event.get("received_at") or state.get("updated_at")
    for name in DESCRIPTIVE:
        if state.get(name) is None and event.get(name) is not None:
            state[name] = event[name]
    if list(_fill_key(event)) > state["_fill_key"]:
        state["_fill_key"] = list(_fill_key(event))
        state["filled_quantity"] = max(state.get("filled_quantity") or 0, event.get("filled_quantity") or 0)
        # The average belongs to that fill: an older fill's average would be wrong, unknown is honest.
        state["average_price"] = event.get("average_price")
    if list(_amend_key(event)) > state.get("_amend_key", []):
        state["_amend_key"] = list(_amend_key(event))
        for name in AMENDABLE:
            if event.get(name) is not None:
                state[name] = event[name]
    if state["status"] in OrderStatus.TERMINAL:
        return _derive(state)
    terminal = event["status"] in OrderStatus.TERMINAL and not event.get("modified")
    if terminal or list(_status_key(event)) > state["_status_key"]:
        _adopt(state, event)
    return _derive(state)


def _adopt(state: dict[str, Any], event: dict[str, Any]) -> None:
    """Take status and reason from the event that now leads."""
    state["_status_key"] = list(_status_key(event))
    state["status"] = event["status"]
    state["broker_status"] = event.get("broker_status")
    state["last_event_id"] = event.get("id")
    state["exchange_time"] = event.get("exchange_time") or state.get("exchange_time")
    if event.get("reason") is not None:
        state["reason"] = event["reason"]


def _derive(state: dict[str, Any]) -> dict[str, Any]:
    """PARTIALLY_FILLED and FILLED come from quantities; pending follows from them."""
    filled = state.get("filled_quantity") or 0
    quantity = state.get("quantity")
    status = state["status"]
    if status not in OrderStatus.TERMINAL and quantity:
        if filled >= quantity:
            status = OrderStatus.FILLED
        elif filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
    state["status"] = status
    if status in OrderStatus.TERMINAL:
        state["pending_quantity"] = 0
    elif quantity is not None:
        state["pending_quantity"] = max(quantity - filled, 0)
    else:
        state["pending_quantity"] = None
    return state


def public_view(state: dict[str, Any]) -> dict[str, Any]:
    """The state as the API shows it (bookkeeping keys dropped)."""
    return {k: v for k, v in state.items() if not k.startswith("_")}
