"""5paisa order-book rows as events (docs/brokers.md §15.2): OrderBookDetail rows of V3/OrderBook.

No postback route, and the order-tracking feed is not used (one feed connection per token, which market data
holds): every row arrives by the polled order book (source "reconcile").
"""

from __future__ import annotations

import re
from typing import Any

from app.brokers.base import BrokerAdapter, BrokerSchema, pending_from
from app.brokers.fivepaisa.spec import SPEC
from app.brokers.spec import status_word
from app.events import OrderEvent
from app.times import epoch_to_utc_iso
from app.wire.fields import LenientCode, LenientInt, LenientNumber, LenientStr

#: Exch N/B/M (docs/brokers.md §15.2); ExchType D (derivatives) on NSE is NFO, U (currency) CDS.
EXCHANGES = {("N", "C"): "NSE", ("N", "D"): "NFO", ("N", "U"): "CDS", ("B", "C"): "BSE", ("B", "D"): "BFO"}
EXCHANGE_LETTERS = {"N": "NSE", "B": "BSE", "M": "MCX"}
SIDES = {"B": "BUY", "S": "SELL", "BUY": "BUY", "SELL": "SELL"}
PRODUCTS = {"I": "MIS", "D": "CNC"}
#: .NET's "/Date(1700000000000+0530)/": epoch milliseconds (the offset only says how to show it).
NET_DATE = re.compile(r"^/Date\((-?\d+)(?:[+-]\d{4})?\)/$")


class FivepaisaOrderSchema(BrokerSchema):
    """An OrderBookDetail row (PascalCase) over canonical keys."""

    order_id = LenientStr(data_key="brokerorderid", required=True)
    status = LenientCode(data_key="orderstatus", required=True)
    exchange_order_id = LenientStr(data_key="exchorderid")
    exch = LenientCode(data_key="exch")
    exch_type = LenientCode(data_key="exchtype")
    symbol = LenientStr(data_key="scripname")
    side = LenientCode(data_key="buysell")
    product = LenientCode(data_key="delvintra")
    at_market = LenientCode(data_key="atmarket")
    quantity = LenientInt(data_key="qty")
    filled = LenientInt(data_key="tradedqty")
    pending = LenientInt(data_key="pendingqty")
    price = LenientNumber(data_key="rate")
    trigger_price = LenientNumber(data_key="sltriggerrate")
    average_price = LenientNumber(data_key="averageprice")
    reason = LenientStr(data_key="reason")
    remote_order_id = LenientStr(data_key="remoteorderid")
    broker_time = LenientStr(data_key="brokerordertime")
    exchange_time = LenientStr(data_key="exchordertime")


class FivepaisaAdapter(BrokerAdapter):
    """No postback route; the polled book ends here."""

    spec = SPEC
    schema = FivepaisaOrderSchema()

    def normalize(self, data: dict[str, Any], raw: Any, *, source: str, received_at: str) -> OrderEvent:
        """One 5paisa order row as the normalized event."""
        quantity, filled = data["quantity"], data["filled"]
        word = data["status"]
        status = self.status_of(word, quantity, filled)
        exchange_order_id = data["exchange_order_id"]
        return OrderEvent(
            broker=self.name,
            source=source,
            order_id=data["order_id"],
            status=status,
            broker_status=word,
            received_at=received_at,
            raw=raw,
            exchange_order_id=None if exchange_order_id in (None, "0") else exchange_order_id,
            side=SIDES.get((data["side"] or "").upper()),
            exchange=_exchange(data["exch"], data["exch_type"]),
            symbol=data["symbol"],
            product=PRODUCTS.get((data["product"] or "").upper(), data["product"]),
            order_type=_order_type(data),
            quantity=quantity,
            filled_quantity=filled,
            pending_quantity=pending_from(status, quantity, filled, data["pending"]),
            price=data["price"],
            trigger_price=data["trigger_price"],
            average_price=data["average_price"] or None,
            reason=data["reason"],
            tag=data["remote_order_id"],
            exchange_time=net_date(data["exchange_time"]) or net_date(data["broker_time"]),
            modified=status_word(word) in self.MODIFY_STATUSES,
        )


def net_date(value: str | None) -> str | None:
    """ "/Date(ms+0530)/" as UTC ISO 8601; None for blanks, zero dates and other shapes."""
    match = NET_DATE.match(value or "")
    if match is None or int(match.group(1)) <= 0:
        return None
    return epoch_to_utc_iso(int(match.group(1)) / 1000)


def _exchange(exch: str | None, exch_type: str | None) -> str | None:
    """Exch and ExchType as the exchange's name."""
    if not exch:
        return None
    letter = exch.upper()
    return EXCHANGES.get((letter, (exch_type or "C").upper())) or EXCHANGE_LETTERS.get(letter, letter)


def _order_type(data: dict[str, Any]) -> str | None:
    """AtMarket Y is a market order; a trigger makes it a stop order (SL / SL-M)."""
    market = (data["at_market"] or "").upper() == "Y"
    if data["trigger_price"]:
        return "SL-M" if market else "SL"
    if data["at_market"] is None:
        return None
    return "MARKET" if market else "LIMIT"
