"""Groww order-book rows as events (docs/brokers.md §15.1): GET /v1/order/list rows, snake_case over canonical keys.

Groww has no postback route and its push is not used: every row arrives by the polled order book
(source "reconcile"). The feed's camelCase spellings (growwOrderId, filledQty, avgFillPrice) fold to other keys
and are read too, so a captured feed message normalizes the same.
"""

from __future__ import annotations

from typing import Any

from app.brokers.base import BrokerAdapter, BrokerSchema, code_from, pending_from
from app.brokers.groww.spec import SPEC
from app.brokers.spec import status_word
from app.events import OrderEvent
from app.times import ist_to_utc_iso
from app.wire.fields import LenientCode, LenientInt, LenientNumber, LenientStr

#: created_at / exchange_time: ISO text in IST without an offset (docs/brokers.md §15.1) [secondary].
GROWW_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")


class GrowwOrderSchema(BrokerSchema):
    """An order row; numbers may arrive as strings."""

    order_id = LenientStr(data_key="growworderid", required=True)
    status = LenientCode(data_key="orderstatus", required=True)
    exchange_order_id = LenientStr(data_key="exchangeorderid")
    symbol = LenientStr(data_key="tradingsymbol")
    exchange = LenientCode(data_key="exchange")
    segment = LenientCode(data_key="segment")
    product = LenientCode(data_key="product")
    order_type = LenientCode(data_key="ordertype")
    side = LenientCode(data_key="transactiontype")
    quantity = LenientInt(data_key="quantity")
    qty = LenientInt(data_key="qty")
    filled = LenientInt(data_key="filledquantity")
    filled_qty = LenientInt(data_key="filledqty")
    remaining = LenientInt(data_key="remainingquantity")
    price = LenientNumber(data_key="price")
    trigger_price = LenientNumber(data_key="triggerprice")
    average_price = LenientNumber(data_key="averagefillprice")
    avg_fill = LenientNumber(data_key="avgfillprice")
    remark = LenientStr(data_key="remark")
    reference = LenientStr(data_key="orderreferenceid")
    exchange_time = LenientStr(data_key="exchangetime")
    created_at = LenientStr(data_key="createdat")


class GrowwAdapter(BrokerAdapter):
    """No postback route; the polled book ends here."""

    spec = SPEC
    schema = GrowwOrderSchema()

    def normalize(self, data: dict[str, Any], raw: Any, *, source: str, received_at: str) -> OrderEvent:
        """One Groww order row as the normalized event."""
        quantity = data["quantity"] if data["quantity"] is not None else data["qty"]
        filled = data["filled"] if data["filled"] is not None else data["filled_qty"]
        word = data["status"]
        status = self.status_of(word, quantity, filled)
        average = data["average_price"] if data["average_price"] is not None else data["avg_fill"]
        return OrderEvent(
            broker=self.name,
            source=source,
            order_id=data["order_id"],
            status=status,
            broker_status=word,
            received_at=received_at,
            raw=raw,
            exchange_order_id=data["exchange_order_id"],
            side=code_from({}, data["side"]),
            exchange=data["exchange"],
            symbol=data["symbol"],
            product=data["product"],
            order_type=code_from({}, data["order_type"]),
            quantity=quantity,
            filled_quantity=filled,
            pending_quantity=pending_from(status, quantity, filled, data["remaining"]),
            price=data["price"],
            trigger_price=data["trigger_price"],
            average_price=average or None,
            reason=data["remark"],
            tag=data["reference"],
            exchange_time=ist_to_utc_iso(data["exchange_time"] or data["created_at"], GROWW_TIME_FORMATS),
            modified=status_word(word) in self.MODIFY_STATUSES,
        )
