"""Upstox order updates: the webhook, the Portfolio Stream Feed and the order book share one field set.

Docs: https://upstox.com/developer/api-documentation/webhook ("The payloads sent to the webhook URL will be
identical to the updates received via WebSocket"), /get-order-book, /get-order-history; docs/brokers.md §10.
"""

from __future__ import annotations

from typing import Any

from app.brokers.base import BrokerAdapter, BrokerSchema, by_quantity, code_from, pending_from
from app.brokers.spec import status_word
from app.brokers.upstox.spec import SPEC
from app.events import OrderEvent, OrderStatus
from app.exceptions import PostbackPayloadError
from app.times import ist_to_utc_iso
from app.wire.fields import LenientInt, LenientNumber, LenientStr, blank_to_none

# "YYYY-MM-DD HH:MM:SS" in IST (docs/brokers.md §10.1).
UPSTOX_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S",)
#: The only update_type that is an order's update; gtt_order, position and holding are not orders (§10.2).
ORDER_UPDATE = "order"
#: Spellings of one field the payload carries together (`user_id` and `userId`; `trading_symbol` and the deprecated
#: `tradingsymbol`): the first non-blank one is read, so a blank first spelling never hides a filled second (§10.1).
TWIN_KEYS = (("user_id", "userId", "userid"), ("trading_symbol", "tradingsymbol"))
STOP_ORDER_TYPES = frozenset({"SL", "SL-M"})
#: The one word that says an order is live at the exchange; the other words mapped to OPEN are requests in flight.
OPEN_WORD = "OPEN"
SIDES = frozenset({"BUY", "SELL"})


class UpstoxOrderSchema(BrokerSchema):
    """The webhook's field set (docs/brokers.md §10.1); order book and history rows carry the same keys."""

    order_id = LenientStr(data_key="orderid", required=True)
    status = LenientStr(data_key="status", required=True)
    update_type = LenientStr(data_key="updatetype")
    user_id = LenientStr(data_key="userid")
    exchange_order_id = LenientStr(data_key="exchangeorderid")
    exchange = LenientStr(data_key="exchange")
    symbol = LenientStr(data_key="tradingsymbol")
    product = LenientStr(data_key="product")
    order_type = LenientStr(data_key="ordertype")
    transaction_type = LenientStr(data_key="transactiontype")
    quantity = LenientInt(data_key="quantity")
    filled_quantity = LenientInt(data_key="filledquantity")
    pending_quantity = LenientInt(data_key="pendingquantity")
    price = LenientNumber(data_key="price")
    trigger_price = LenientNumber(data_key="triggerprice")
    average_price = LenientNumber(data_key="averageprice")
    status_message = LenientStr(data_key="statusmessage")
    status_message_raw = LenientStr(data_key="statusmessageraw")
    tag = LenientStr(data_key="tag")
    exchange_timestamp = LenientStr(data_key="exchangetimestamp")


class UpstoxAdapter(BrokerAdapter):
    """Unsigned webhooks (docs/brokers.md §10.1): the secret path token is the gate; the words come from the spec."""

    spec = SPEC
    schema = UpstoxOrderSchema()

    def validate(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The shared validation over the payload with its twin spellings resolved; only order updates pass."""
        data = super().validate(prefer_filled(payload))
        kind = (data["update_type"] or ORDER_UPDATE).strip().lower()
        if kind != ORDER_UPDATE:
            raise PostbackPayloadError(
                f"invalid upstox order update: update_type {kind[:40]!r} is not an order's update; "
                "only order updates are taken (turn GTT updates off in the app's settings)"
            )
        return data

    def normalize(self, data: dict[str, Any], raw: Any, *, source: str, received_at: str) -> OrderEvent:
        """Upstox fields map one to one; the status needs the quantities (docs/brokers.md §10.3)."""
        broker_status = data["status"]
        quantity, filled = data["quantity"], data["filled_quantity"]
        status, modified = self._status(broker_status, data["order_type"], quantity, filled)
        side = (data["transaction_type"] or "").upper()
        return OrderEvent(
            broker=self.name,
            source=source,
            order_id=data["order_id"],
            status=status,
            broker_status=broker_status,
            received_at=received_at,
            raw=raw,
            account_id=data["user_id"],
            exchange_order_id=data["exchange_order_id"],
            side=side if side in SIDES else None,
            exchange=code_from({}, data["exchange"]),
            symbol=data["symbol"],
            product=code_from({}, data["product"]),
            order_type=code_from({}, data["order_type"]),
            quantity=quantity,
            filled_quantity=filled,
            pending_quantity=pending_from(status, quantity, filled, data["pending_quantity"]),
            price=data["price"],
            trigger_price=data["trigger_price"],
            average_price=data["average_price"],
            reason=data["status_message"] or data["status_message_raw"],
            tag=data["tag"],
            exchange_time=ist_to_utc_iso(data["exchange_timestamp"], UPSTOX_TIME_FORMATS),
            modified=modified,
        )

    def _status(
        self, broker_status: str, order_type: str | None, quantity: int | None, filled: int | None
    ) -> tuple[str, bool]:
        """Normalized status and the modified flag; a stop order with a request in flight (modify, cancel, or one
        refused) still waits for its trigger: only `open` itself says it was triggered (docs/brokers.md §10.3)."""
        key = status_word(broker_status)
        status = self.map_status(key) or self.unmapped_status(broker_status, quantity, filled)
        modified = key in self.MODIFY_STATUSES
        stop = (order_type or "").upper() in STOP_ORDER_TYPES
        if status == OrderStatus.OPEN and key != OPEN_WORD and stop and not filled:
            status = OrderStatus.TRIGGER_PENDING
        return by_quantity(status, quantity, filled), modified


def prefer_filled(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with each twin spelling's blank copies dropped when another copy holds a value."""
    if not isinstance(payload, dict):
        return payload
    trimmed = None
    for twins in TWIN_KEYS:
        present = [key for key in twins if key in payload]
        if len(present) < 2 or not any(blank_to_none(payload[key]) is not None for key in present):
            continue
        for key in present:
            if blank_to_none(payload[key]) is None:
                trimmed = trimmed if trimmed is not None else dict(payload)
                trimmed.pop(key, None)
    return trimmed if trimmed is not None else payload
