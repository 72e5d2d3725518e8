"""Dhan (DhanHQ v2): HTTP postbacks, the official order-update WebSocket and the web order feed.

Docs: https://dhanhq.co/docs/v2/postback/, https://dhanhq.co/docs/v2/order-update/; docs/brokers.md §4.
The three sources name the same roles differently (`orderId` / `orderNo` / `order_no`, `orderStatus` /
`status`, ...). Keys arrive folded by canonical_key, so one schema picks the first spelling present and
a postback and a WebSocket message of the same update normalize to the same event (and the same id).
"""

from __future__ import annotations

from typing import Any

from marshmallow import pre_load

from app.brokers.base import BrokerAdapter, BrokerSchema, by_quantity, code_from, pending_from
from app.brokers.dhan.spec import SPEC
from app.events import OrderEvent, OrderStatus
from app.times import ist_to_utc_iso
from app.wire.fields import LenientInt, LenientNumber, LenientStr, blank_to_none
from app.wire.keys import canonical_keys

# "YYYY-MM-DD HH:MM:SS" in IST on every Dhan source; all zeros means none (docs/brokers.md §4.1, §4.2, §4.3).
DHAN_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S",)

# Schema key (the postback's canonical name) -> other canonical spellings of the same role, tried in
# order when the postback's key is absent or blank: official WS camelCase (§4.2), web feed snake_case (§4.3).
ALIASES: dict[str, tuple[str, ...]] = {
    "orderid": ("orderno",),
    "orderstatus": ("status",),
    "dhanclientid": ("clientid",),
    "exchangeorderid": ("exchorderno",),
    "transactiontype": ("txntype",),
    "producttype": ("product",),
    "tradingsymbol": ("symbol", "displayname"),
    "filledqty": ("tradedqty",),
    "averagetradedprice": ("avgtradedprice",),
    "omserrordescription": ("reasondescription",),
    "updatetime": ("lastupdatedtime",),
    "exchangetime": ("exchordertime",),
}

# Postback exchangeSegment -> exchange (docs/brokers.md §4.1).
EXCHANGE_SEGMENTS = {
    "NSE_EQ": "NSE",
    "NSE_FNO": "NFO",
    "BSE_EQ": "BSE",
    "BSE_FNO": "BFO",
    "MCX_COMM": "MCX",
    "NSE_CURRENCY": "CDS",
    "BSE_CURRENCY": "BCD",
}
# WebSocket exchange + segment letter (E equity, D derivatives, C currency, M commodity) -> exchange (§4.2, §4.3).
WS_SEGMENTS = {
    ("NSE", "E"): "NSE",
    ("NSE", "D"): "NFO",
    ("BSE", "E"): "BSE",
    ("BSE", "D"): "BFO",
    ("NSE", "C"): "CDS",
    ("BSE", "C"): "BCD",
    ("MCX", "M"): "MCX",
}
# Postback words and WS codes LMT/MKT/SL/SLM -> normalized order types (§4.1, §4.2).
ORDER_TYPES = {
    "LIMIT": "LIMIT",
    "LMT": "LIMIT",
    "MARKET": "MARKET",
    "MKT": "MARKET",
    "STOP_LOSS": "SL",
    "SL": "SL",
    "STOP_LOSS_MARKET": "SL-M",
    "SLM": "SL-M",
    "SL-M": "SL-M",
}
STOP_ORDER_TYPES = frozenset({"SL", "SL-M"})
# Dhan statuses under which nothing has filled yet (§4.4) [inferred].
NOTHING_FILLED_STATUSES = frozenset({"TRANSIT", "PENDING", "REJECTED"})
# WS product letters C/I/M/F/V/B -> the postback's productType words (§4.2), so both sources agree.
PRODUCTS = {"C": "CNC", "I": "INTRADAY", "M": "MARGIN", "F": "MTF", "V": "CO", "B": "BO"}
SIDES = {"BUY": "BUY", "B": "BUY", "SELL": "SELL", "S": "SELL"}

_ORDER_ID_REQUIRED = (
    "missing: a Dhan order update carries orderId (postback) or orderNo / order_no (WebSocket order_alert Data)"
)
_STATUS_REQUIRED = "missing: a Dhan order update carries orderStatus (postback) or status (WebSocket)"


class DhanOrderSchema(BrokerSchema):
    """The postback field set (seed 002, §4.1) with the WebSocket spellings folded onto it (§4.2, §4.3)."""

    order_id = LenientStr(data_key="orderid", required=True, error_messages={"required": _ORDER_ID_REQUIRED})
    status = LenientStr(data_key="orderstatus", required=True, error_messages={"required": _STATUS_REQUIRED})
    client_id = LenientStr(data_key="dhanclientid")
    exchange_order_id = LenientStr(data_key="exchangeorderid")
    transaction_type = LenientStr(data_key="transactiontype")
    exchange_segment = LenientStr(data_key="exchangesegment")
    exchange = LenientStr(data_key="exchange")
    segment = LenientStr(data_key="segment")
    product = LenientStr(data_key="producttype")
    order_type = LenientStr(data_key="ordertype")
    symbol = LenientStr(data_key="tradingsymbol")
    quantity = LenientInt(data_key="quantity")
    filled_quantity = LenientInt(data_key="filledqty")
    remaining_quantity = LenientInt(data_key="remainingquantity")
    price = LenientNumber(data_key="price")
    trigger_price = LenientNumber(data_key="triggerprice")
    average_price = LenientNumber(data_key="averagetradedprice")
    reason = LenientStr(data_key="omserrordescription")
    tag = LenientStr(data_key="correlationid")
    update_time = LenientStr(data_key="updatetime")
    exchange_time = LenientStr(data_key="exchangetime")

    @pre_load
    def fold_sources(self, data: Any, **kwargs: Any) -> Any:
        """Give every role its postback key, taken from the first spelling present on this source."""
        if not isinstance(data, dict):
            return data
        data = _unwrap_order_alert(data)
        folded = dict(data)
        for key, alternatives in ALIASES.items():
            value = _first_present(data, (key, *alternatives))
            if value is None:
                folded.pop(key, None)  # blank counts as absent, so a required role is reported missing
            else:
                folded[key] = value
        return folded


class DhanAdapter(BrokerAdapter):
    """Dhan does not sign postbacks (docs/brokers.md §1): the secret path token is the gate."""

    # Status words and the path-token route come from the spec (dhan/spec.py); PENDING, PART_TRADED and
    # TRADED are then checked against the quantities in _status().
    spec = SPEC
    # The documented sample has `"legName": ,` (docs/brokers.md §4): repair it rather than refuse it.
    lenient_json = True
    schema = DhanOrderSchema()

    def normalize(self, data: dict[str, Any], raw: Any, *, source: str, received_at: str) -> OrderEvent:
        """One event shape for the postback, the official WS and the web feed (docs/brokers.md §4)."""
        broker_status = data["status"].upper()  # WS sends "Pending"/"Traded" (§4.2)
        order_type = code_from(ORDER_TYPES, data["order_type"])
        quantity = data["quantity"]
        filled = self._filled(broker_status, quantity, data["filled_quantity"])
        status = self._status(broker_status, order_type, quantity, filled)
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
            side=SIDES.get((data["transaction_type"] or "").upper()),
            exchange=_exchange(data["exchange_segment"], data["exchange"], data["segment"]),
            symbol=data["symbol"],
            product=code_from(PRODUCTS, data["product"]),  # WS letters spelled out as the postback does (§4.2)
            order_type=order_type,
            quantity=quantity,
            filled_quantity=filled,
            pending_quantity=pending_from(status, quantity, filled, data["remaining_quantity"]),
            price=data["price"],
            trigger_price=data["trigger_price"],
            average_price=_average_price(data["average_price"]),
            reason=data["reason"],
            tag=data["tag"],
            exchange_time=_exchange_time(data["update_time"], data["exchange_time"]),
        )

    def _filled(self, broker_status: str, quantity: int | None, filled: int | None) -> int | None:
        """The filled figure, inferred when a postback omits it (§4.1: the documented sample has none).

        TRADED without one means the whole quantity. TRANSIT, PENDING and REJECTED mean nothing filled
        (a partial fill is PART_TRADED, §4.4) [inferred]: the WS always sends tradedQty 0 there, so the
        postback and the WS copy of one update keep the same event id. CANCELLED and EXPIRED may follow
        a partial fill, so they stay unknown.
        """
        if filled is not None:
            return filled
        if self.map_status(broker_status) == OrderStatus.FILLED:
            return quantity
        if broker_status.replace("_", " ") in NOTHING_FILLED_STATUSES:
            return 0
        return None

    def _status(self, broker_status: str, order_type: str | None, quantity: int | None, filled: int | None) -> str:
        """Normalized status for a Dhan status word, checked against the quantities (docs/brokers.md §2, §4.4)."""
        status = self.map_status(broker_status) or self.unmapped_status(broker_status, quantity, filled)
        # Dhan documents no trigger status; a resting stop order with no fill is waiting for its
        # trigger (§4.4, [inferred]).
        if status == OrderStatus.OPEN and order_type in STOP_ORDER_TYPES and not filled:
            status = OrderStatus.TRIGGER_PENDING
        return by_quantity(status, quantity, filled)


def _first_present(data: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """The first non-blank value among several spellings of one role (None if none has one)."""
    for key in keys:
        value = blank_to_none(data.get(key))
        if value is not None:
            return value
    return None


def _unwrap_order_alert(data: dict[str, Any]) -> dict[str, Any]:
    """Accept a whole `{"Type":"order_alert","Data":{...}}` frame as its Data object (§4.2 envelope)."""
    inner = data.get("data")
    if isinstance(inner, dict) and "orderid" not in data and "orderno" not in data:
        return canonical_keys(inner)
    return data


def _exchange(segment_code: str | None, exchange: str | None, segment: str | None) -> str | None:
    """NSE/NFO/BSE/BFO/MCX/CDS/BCD from exchangeSegment (postback) or exchange + segment (WS)."""
    if segment_code:
        return EXCHANGE_SEGMENTS.get(segment_code.upper(), segment_code.upper())
    if not exchange:
        return None
    exchange = exchange.upper()
    if exchange in EXCHANGE_SEGMENTS:
        return EXCHANGE_SEGMENTS[exchange]
    return WS_SEGMENTS.get((exchange, (segment or "").upper()), exchange)


def _average_price(value: float | None) -> float | None:
    """An average traded price of 0 means nothing traded yet (the WS sends 0, postbacks omit it) [inferred]."""
    return value if value else None


def _exchange_time(update_time: str | None, exchange_time: str | None) -> str | None:
    """The time of this update: updateTime / lastUpdatedTime, which the postback and the WS share.

    It is part of the dedup key, so it must be the same field on both sources (docs/brokers.md §7); the
    order's exchange time (exchangeTime / exchOrderTime) is only a fallback, and all-zero dates are none.
    """
    return ist_to_utc_iso(update_time, DHAN_TIME_FORMATS) or ist_to_utc_iso(exchange_time, DHAN_TIME_FORMATS)
