"""Angel One SmartAPI order updates: the order socket's frames, postbacks and order-book rows (docs/brokers.md §9).

Every source carries the same order row (the book's field set: orderid, orderstatus, filledshares, ...); the
socket wraps it as `{"user-id", "status-code", "order-status": "AB01", "error-message", "orderData": {row}}`.
Keys arrive folded by canonical_key, where the envelope's `order-status` and the row's `orderstatus` fold alike,
so the envelope is unwrapped first: its code kept apart, its `user-id` as the client code.

A modification (AB04, AB08, AB11, or a modify word) carries the row as it was *before* the change (docs/brokers.md
§9.4): its price, trigger price and quantity are not taken (left null, so the order keeps the values it has), and
the feed asks for a reconciliation of the account, whose order-book row brings the new ones.
"""

from __future__ import annotations

from typing import Any

from app.brokers.angel.spec import SPEC, STATUS_CODES
from app.brokers.base import BrokerAdapter, BrokerSchema, by_quantity, code_from, pending_from
from app.brokers.spec import status_word
from app.events import OrderEvent, OrderStatus
from app.times import ist_to_utc_iso
from app.wire.fields import LenientCode, LenientInt, LenientNumber, LenientStr, blank_to_none
from app.wire.keys import canonical_keys

#: "19-Dec-2023 09:18:10" in IST on the socket, the book and the details API (docs/brokers.md §9.3).
ANGEL_TIME_FORMATS = ("%d-%b-%Y %H:%M:%S",)
#: The schema's key for the envelope's `order-status` code once the envelope is unwrapped (already folded: the base
#: folds the row's keys again).
CODE_KEY = "envelopecode"
#: The socket's connect acknowledgement (docs/brokers.md §9.2): never an order update.
CONNECT_ACK = "AB00"

ORDER_TYPES = {"LIMIT": "LIMIT", "MARKET": "MARKET", "STOPLOSS_LIMIT": "SL", "STOPLOSS_MARKET": "SL-M"}
PRODUCTS = {"DELIVERY": "CNC", "INTRADAY": "MIS", "CARRYFORWARD": "NRML"}
SIDES = {"BUY": "BUY", "SELL": "SELL"}
#: Statuses under which nothing has filled when the row says nothing about fills [inferred].
NOTHING_FILLED = frozenset({OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.TRIGGER_PENDING, OrderStatus.REJECTED})

_ORDER_ID_REQUIRED = "missing: an Angel One order update carries orderid (in orderData on the socket)"
_STATUS_REQUIRED = "missing: an Angel One order update carries orderstatus or status (or the socket's order-status)"


class AngelOrderSchema(BrokerSchema):
    """The order row (docs/brokers.md §9.3), as `order_row` takes it out of whichever envelope it came in."""

    order_id = LenientStr(data_key="orderid", required=True, error_messages={"required": _ORDER_ID_REQUIRED})
    status = LenientCode(data_key="orderstatus", required=True, error_messages={"required": _STATUS_REQUIRED})
    code = LenientCode(data_key=CODE_KEY)
    client_code = LenientStr(data_key="clientcode")
    exchange_order_id = LenientStr(data_key="exchangeorderid")
    side = LenientCode(data_key="transactiontype")
    exchange = LenientCode(data_key="exchange")
    symbol = LenientStr(data_key="tradingsymbol")
    product = LenientCode(data_key="producttype")
    order_type = LenientCode(data_key="ordertype")
    quantity = LenientInt(data_key="quantity")
    filled = LenientInt(data_key="filledshares")
    unfilled = LenientInt(data_key="unfilledshares")
    price = LenientNumber(data_key="price")
    trigger_price = LenientNumber(data_key="triggerprice")
    average_price = LenientNumber(data_key="averageprice")
    reason = LenientStr(data_key="text")
    tag = LenientStr(data_key="ordertag")
    update_time = LenientStr(data_key="updatetime")
    exchange_update_time = LenientStr(data_key="exchorderupdatetime")
    exchange_time = LenientStr(data_key="exchtime")


class AngelAdapter(BrokerAdapter):
    """Angel One signs nothing (docs/brokers.md §9.1): the secret path token is the gate."""

    # Status words and AB codes and the path-token route come from the spec (angel/spec.py); the quantities then
    # decide PARTIALLY_FILLED and FILLED (docs/brokers.md §2).
    spec = SPEC
    schema = AngelOrderSchema()

    def validate(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The row out of its envelope first, so the schema has no hook and loads compiled (app/wire/loader.py)."""
        return super().validate(order_row(payload))

    def normalize(self, data: dict[str, Any], raw: Any, *, source: str, received_at: str) -> OrderEvent:
        """One event shape for the socket, the postback and the book (docs/brokers.md §9.3)."""
        broker_status = status_word(data["status"])
        code = (data["code"] or "").upper() or None
        modified = self.is_modification(broker_status, code)
        quantity = data["quantity"]
        base = self.map_status(broker_status) or self.map_status(code)
        filled = _filled(base, quantity, data["filled"])
        status = by_quantity(base or self.unmapped_status(broker_status, quantity, filled), quantity, filled)
        return OrderEvent(
            broker=self.name,
            source=source,
            order_id=data["order_id"],
            status=status,
            broker_status=broker_status,
            received_at=received_at,
            raw=raw,
            account_id=data["client_code"],
            exchange_order_id=data["exchange_order_id"],
            side=SIDES.get((data["side"] or "").upper()),
            exchange=code_from({}, data["exchange"]),
            symbol=data["symbol"],
            product=code_from(PRODUCTS, data["product"]),
            order_type=code_from(ORDER_TYPES, data["order_type"]),
            # A modification's row holds the values from before it (docs/brokers.md §9.4): none are taken.
            quantity=None if modified else quantity,
            filled_quantity=filled,
            pending_quantity=None if modified else pending_from(status, quantity, filled, data["unfilled"]),
            price=None if modified else data["price"],
            trigger_price=None if modified else _trigger(data["trigger_price"]),
            average_price=data["average_price"] if filled else None,
            reason=data["reason"],
            tag=data["tag"],
            exchange_time=_exchange_time(data),
            modified=modified,
        )

    def is_modification(self, broker_status: str, code: str | None) -> bool:
        """A modify word or code (docs/brokers.md §9.4): the flag, and the row's figures are stale."""
        return broker_status in self.MODIFY_STATUSES or (code is not None and code in self.MODIFY_STATUSES)


def order_row(payload: dict[str, Any]) -> dict[str, Any]:
    """The order row, keys folded, out of the socket's envelope (or a `data` wrapper), with the envelope's code and
    user-id under the row's names, and the status word out of `status` (or the code) when `orderstatus` is blank."""
    row, code, user = _unwrapped(canonical_keys(payload))
    if blank_to_none(row.get("orderstatus")) is None:
        word = blank_to_none(row.get("status"))
        if word is None and code is not None and code.upper() in STATUS_CODES:
            word = code
        row.pop("orderstatus", None)
        if word is not None:
            row["orderstatus"] = word
    if code is not None:
        row[CODE_KEY] = code
    if user is not None and blank_to_none(row.get("clientcode")) is None:
        row["clientcode"] = user
    if blank_to_none(row.get("orderid")) is None:
        row.pop("orderid", None)  # a blank id is reported as missing, with the word that says where it goes
    return row


def _unwrapped(data: dict[str, Any]) -> tuple[dict[str, Any], str | None, str | None]:
    """(row, the envelope's order-status code, its user-id): a socket frame's orderData, a `data` object, or the
    row itself (then there is no code)."""
    inner = data.get("orderdata")
    if isinstance(inner, dict):
        code = blank_to_none(data.get("orderstatus"))  # the envelope's "order-status", folded
        user = blank_to_none(data.get("userid"))
        return canonical_keys(inner), _text(code), _text(user)
    inner = data.get("data")
    if isinstance(inner, dict) and "orderid" not in data:
        return canonical_keys(inner), None, None
    return dict(data), None, None


def _text(value: Any) -> str | None:
    """A code or id as text (None stays None; anything but text or a number is dropped)."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _filled(status: str | None, quantity: int | None, filled: int | None) -> int | None:
    """filledshares when sent (cumulative); else all of it for a complete order, none for a working or rejected one."""
    if filled is not None:
        return filled
    if status == OrderStatus.FILLED:
        return quantity
    if status in NOTHING_FILLED:
        return 0
    return None


def _trigger(value: float | None) -> float | None:
    """A trigger price of 0 means none (the book and the socket send 0 for a plain order) [inferred]."""
    return value if value else None


def _exchange_time(data: dict[str, Any]) -> str | None:
    """The update's time: updatetime, which the socket, the book and the details API all carry (docs/brokers.md §9.3);
    the exchange's times only when it is blank (a rejected order has no exchange time)."""
    for name in ("update_time", "exchange_update_time", "exchange_time"):
        moment = ist_to_utc_iso(data[name], ANGEL_TIME_FORMATS)
        if moment is not None:
            return moment
    return None
