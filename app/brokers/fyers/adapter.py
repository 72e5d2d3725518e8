"""Fyers API v3 order updates: the webhook (postback), the order socket and the order book share one shape.

Docs: myapi.fyers.in/docsv3 "Postback (Webhooks)", "General Socket (orders)", "Order Websocket Usage Guide" and
"Orders"; docs/brokers.md §11. The postback, the SDK's parsed socket message and an order-book row carry the long
names (`id`, `status`, `filledQty`, `limitPrice`, ...); the socket itself sends short names (`org_ord_status`,
`qty_filled`, `price_limit`, `tran_side`, ...), which are renamed onto the long ones with the SDK's own order
mapper, so every copy of one update normalizes to the same event.
"""

from __future__ import annotations

import math
import re
from typing import Any

from marshmallow import pre_load

from app.brokers.base import BrokerAdapter, BrokerSchema, by_quantity, pending_from
from app.brokers.fyers.spec import SPEC
from app.events import OrderEvent, OrderStatus
from app.times import ist_to_utc_iso
from app.wire.fields import LenientInt, LenientNumber, LenientStr, blank_to_none
from app.wire.keys import canonical_keys

# "18-Jul-2023 11:44:29" (order book, postback sample, socket) in IST; the postback table says epoch seconds,
# which ist_to_utc_iso reads too (docs/brokers.md §11.1).
FYERS_TIME_FORMATS = ("%d-%b-%Y %H:%M:%S", "%d-%m-%Y %H:%M:%S")

# The socket's short keys (canonical) -> the long keys (canonical), per the SDK's order_mapper in the Order
# Websocket Usage Guide (docs/brokers.md §11.2). Keys that fold alike (client_id/clientId) need no entry.
SHORT_TO_LONG = {
    "idexchange": "exchordid",
    "idparent": "parentid",
    "qtyremaining": "remainingquantity",
    "qtyfilled": "filledqty",
    "pricelimit": "limitprice",
    "pricestop": "stopprice",
    "pricetraded": "tradedprice",
    "ordtype": "type",
    "omsmsg": "message",
    "statusmsg": "message",
    "offlineflag": "offlineorder",
    "timeoms": "orderdatetime",
    "validity": "ordervalidity",
    "transide": "side",
    "orgordstatus": "status",
    "ordsource": "source",
}
#: Envelopes an order may come in: the socket's {"orders": {...}}, and the `d`/`data` OpenAlgo also accepts.
ENVELOPES = ("orders", "d", "data")
#: `orderNumStatus` is "<id>:<status code>" (order book, postback, socket).
ORDER_NUM_STATUS = re.compile(r":\s*(-?\d+)\s*$")

SIDES = {1: "BUY", -1: "SELL"}
SIDE_WORDS = {"BUY": "BUY", "B": "BUY", "SELL": "SELL", "S": "SELL"}
ORDER_TYPES = {1: "LIMIT", 2: "MARKET", 3: "SL-M", 4: "SL"}
STOP_ORDER_TYPES = frozenset({3, 4})
EXCHANGES = {10: "NSE", 11: "MCX", 12: "BSE"}
#: Codes under which nothing has traded yet (transit, rejected, pending) [inferred from the status table].
NOTHING_FILLED = frozenset({"4", "5", "6"})
#: Raw socket `report_type` words of a modification (the flag, never a status: docs/brokers.md §2) [inferred].
MODIFY_REPORT = re.compile(r"modif", re.IGNORECASE)

_ID_REQUIRED = "missing: a Fyers order update carries id (the order id), as the postback and the order book do"
_STATUS_REQUIRED = "missing: a Fyers order update carries status (the socket: org_ord_status)"


class FyersOrderSchema(BrokerSchema):
    """The order book's / postback's long field set (docs/brokers.md §11.1), over canonical keys."""

    order_id = LenientStr(data_key="id", required=True, error_messages={"required": _ID_REQUIRED})
    status = LenientStr(data_key="status", required=True, error_messages={"required": _STATUS_REQUIRED})
    client_id = LenientStr(data_key="clientid")
    exchange_order_id = LenientStr(data_key="exchordid")
    symbol = LenientStr(data_key="symbol")
    exchange = LenientStr(data_key="exchange")
    product = LenientStr(data_key="producttype")
    order_type = LenientStr(data_key="type")
    side = LenientStr(data_key="side")
    quantity = LenientInt(data_key="qty")
    filled_quantity = LenientInt(data_key="filledqty")
    remaining_quantity = LenientInt(data_key="remainingquantity")
    limit_price = LenientNumber(data_key="limitprice")
    stop_price = LenientNumber(data_key="stopprice")
    traded_price = LenientNumber(data_key="tradedprice")
    message = LenientStr(data_key="message")
    order_tag = LenientStr(data_key="ordertag")
    order_time = LenientStr(data_key="orderdatetime")
    report_type = LenientStr(data_key="reporttype")

    @pre_load
    def to_long_keys(self, data: Any, **kwargs: Any) -> Any:
        """Unwrap an envelope, rename the socket's short keys, and take the status code where it is reliable."""
        if not isinstance(data, dict):
            return data
        data = _unwrap(data)
        renamed = dict(data)
        for short, long in SHORT_TO_LONG.items():
            if short in data and blank_to_none(renamed.get(long)) is None:
                renamed[long] = data[short]
        code = _status_code(data)
        if code is not None:
            renamed["status"] = code
        for key in ("id", "status"):  # a blank id or status counts as missing, not as null
            if blank_to_none(renamed.get(key)) is None:
                renamed.pop(key, None)
        return renamed


class FyersAdapter(BrokerAdapter):
    """Unsigned (docs/brokers.md §11.1): the secret path token is the gate; numeric codes mapped by the spec."""

    spec = SPEC
    schema = FyersOrderSchema()

    def normalize(self, data: dict[str, Any], raw: Any, *, source: str, received_at: str) -> OrderEvent:
        """Fyers' fields to the event; quantities decide PARTIALLY_FILLED (docs/brokers.md §2, §11.4)."""
        broker_status = _code_text(data["status"])
        quantity = data["quantity"]
        filled = _filled(broker_status, quantity, data["filled_quantity"], data["remaining_quantity"])
        order_type = _as_code(data["order_type"])
        status = self._status(broker_status, quantity, filled, order_type)
        pending = data["remaining_quantity"] if status not in OrderStatus.TERMINAL else None
        return OrderEvent(
            broker=self.name,
            source=source,
            order_id=data["order_id"],
            status=status,
            broker_status=broker_status,
            received_at=received_at,
            raw=raw,
            account_id=data["client_id"],
            exchange_order_id=data["exchange_order_id"],
            side=_side(data["side"]),
            exchange=_exchange(data["exchange"], data["symbol"]),
            symbol=data["symbol"],
            product=(data["product"] or "").upper() or None,
            order_type=ORDER_TYPES.get(order_type) if order_type is not None else _upper(data["order_type"]),
            quantity=quantity,
            filled_quantity=filled,
            pending_quantity=pending_from(status, quantity, filled, pending),
            price=data["limit_price"],
            trigger_price=data["stop_price"],
            average_price=data["traded_price"],
            reason=data["message"],
            tag=data["order_tag"],
            exchange_time=ist_to_utc_iso(data["order_time"], FYERS_TIME_FORMATS),
            modified=bool(data["report_type"] and MODIFY_REPORT.search(data["report_type"])),
        )

    def _status(self, broker_status: str, quantity: int | None, filled: int | None, order_type: int | None) -> str:
        """The code's status; a pending stop order with nothing filled waits for its trigger [inferred]."""
        status = self.map_status(broker_status) or self.unmapped_status(broker_status, quantity, filled)
        if status == OrderStatus.OPEN and order_type in STOP_ORDER_TYPES and not filled:
            status = OrderStatus.TRIGGER_PENDING
        return by_quantity(status, quantity, filled)


def _unwrap(data: dict[str, Any]) -> dict[str, Any]:
    """The order object inside {"orders": {...}, "s": "ok"} (and `d`/`data`), its keys folded; else the body."""
    if "id" in data:
        return data
    for key in ENVELOPES:
        inner = data.get(key)
        if isinstance(inner, dict):
            return canonical_keys(inner)
    return data


def _status_code(data: dict[str, Any]) -> Any:
    """The 1-7 code: the socket's org_ord_status, else the code in orderNumStatus, else None (keep `status`).

    Some SDK versions put the OMS's internal `ord_status` (20, 90) in `status` while orderNumStatus keeps the
    documented code (the Usage Guide's and the General Socket's samples: status 90, orderNumStatus "…:2").
    """
    if blank_to_none(data.get("orgordstatus")) is not None:
        return data["orgordstatus"]
    match = ORDER_NUM_STATUS.search(str(data.get("ordernumstatus") or ""))
    return match.group(1) if match else None


def _as_code(value: Any) -> int | None:
    """1, "1", 1.0 and "-1" are codes; words and blanks are None."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) and number == int(number) else None


def _code_text(value: str) -> str:
    """A status as stored and keyed: "2" for 2, "2.0" and " 2 "; a word as sent (unknown, stored, counted)."""
    code = _as_code(value)
    return str(code) if code is not None else value


def _filled(broker_status: str, quantity: int | None, filled: int | None, remaining: int | None) -> int | None:
    """filledQty when sent; else qty - remainingQuantity; else what the status proves (the socket's New Ack has
    neither qty_filled nor a fill: docs/brokers.md §11.2)."""
    if filled is not None:
        return filled
    if quantity is not None and remaining is not None and broker_status in NOTHING_FILLED | {"2"}:
        return max(quantity - remaining, 0)
    if broker_status == "2":
        return quantity
    if broker_status in NOTHING_FILLED:
        return 0
    return None


def _side(value: str | None) -> str | None:
    """1 buy, -1 sell (docs/brokers.md §11.4); BUY/SELL words as well."""
    code = _as_code(value)
    if code is not None:
        return SIDES.get(code)
    return SIDE_WORDS.get((value or "").strip().upper())


def _exchange(value: str | None, symbol: str | None) -> str | None:
    """10 NSE, 11 MCX, 12 BSE (docs/brokers.md §11.4); else the symbol's prefix ("NSE:SBIN-EQ")."""
    code = _as_code(value)
    if code is not None and code in EXCHANGES:
        return EXCHANGES[code]
    if symbol and ":" in symbol:
        return symbol.partition(":")[0].strip().upper() or None
    return _upper(value) if code is None else None


def _upper(value: str | None) -> str | None:
    """A word as our fields spell codes."""
    return value.upper() if value else None
