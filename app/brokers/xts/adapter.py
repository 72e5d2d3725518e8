"""Symphony XTS order updates: the interactive socket's `order` and `trade` events and the REST order book's rows.

Docs: the XTS SDKs (symphonyfintech/xts-pythonclient-api-sdk, xts-javaclient-api-sdk `orderbook/Result.java`);
docs/brokers.md §14. An order event, a trade event and a book row of the same update carry the same fields
(AppOrderID, OrderStatus, CumulativeQuantity…), so they are one event whichever way it arrived.
"""

from __future__ import annotations

from typing import Any

from app.brokers.base import BrokerAdapter, BrokerSchema, code_from, pending_from
from app.brokers.spec import status_word
from app.brokers.xts.spec import SPEC
from app.events import OrderEvent
from app.times import ist_to_utc_iso
from app.wire.fields import LenientCode, LenientInt, LenientNumber, LenientStr

#: "14-05-2021 11:17:29" and "14-May-2021 11:17:29" (deployments differ), or ISO text (docs/brokers.md §14.2).
XTS_TIME_FORMATS = (
    "%d-%m-%Y %H:%M:%S",
    "%d-%b-%Y %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
)
#: ExchangeSegment -> exchange, in the words the other brokers use (docs/brokers.md §14.2).
EXCHANGES = {
    "NSECM": "NSE",
    "NSEFO": "NFO",
    "NSECD": "CDS",
    "BSECM": "BSE",
    "BSEFO": "BFO",
    "BSECD": "BCD",
    "MCXFO": "MCX",
    "NSECO": "NCO",
}


class XtsOrderSchema(BrokerSchema):
    """The order/trade object over canonical keys; numbers may come as numbers or strings ("" is null)."""

    app_order_id = LenientStr(data_key="apporderid", required=True)
    exchange_order_id = LenientStr(data_key="exchangeorderid")
    client_id = LenientStr(data_key="clientid")
    login_id = LenientStr(data_key="loginid")
    status = LenientCode(data_key="orderstatus", required=True)
    exchange_segment = LenientCode(data_key="exchangesegment")
    symbol = LenientStr(data_key="tradingsymbol")
    instrument_id = LenientStr(data_key="exchangeinstrumentid")
    side = LenientCode(data_key="orderside")
    order_type = LenientCode(data_key="ordertype")
    product = LenientCode(data_key="producttype")
    quantity = LenientInt(data_key="orderquantity")
    filled = LenientInt(data_key="cumulativequantity")
    leaves = LenientInt(data_key="leavesquantity")
    price = LenientNumber(data_key="orderprice")
    stop_price = LenientNumber(data_key="orderstopprice")
    average_price = LenientNumber(data_key="orderaveragetradedprice")
    reason = LenientStr(data_key="cancelrejectreason")
    unique_identifier = LenientStr(data_key="orderuniqueidentifier")
    last_update = LenientStr(data_key="lastupdatedatetime")
    exchange_time = LenientStr(data_key="exchangetransacttime")
    generated = LenientStr(data_key="ordergenerateddatetime")


class XtsAdapter(BrokerAdapter):
    """No postback route: the socket (app/brokers/xts/feed.py) and the order book (rest.py) end here."""

    spec = SPEC
    schema = XtsOrderSchema()

    def normalize(self, data: dict[str, Any], raw: Any, *, source: str, received_at: str) -> OrderEvent:
        """One XTS order object as the normalized event (docs/brokers.md §14.2)."""
        quantity, filled = data["quantity"], data["filled"]
        word = data["status"]
        status = self.status_of(word, quantity, filled)
        return OrderEvent(
            broker=self.name,
            source=source,
            order_id=data["app_order_id"],
            status=status,
            broker_status=word,
            received_at=received_at,
            raw=raw,
            account_id=data["client_id"] or data["login_id"],
            exchange_order_id=data["exchange_order_id"],
            side=code_from({"BUY": "BUY", "SELL": "SELL"}, data["side"]),
            exchange=code_from(EXCHANGES, data["exchange_segment"]),
            symbol=data["symbol"] or data["instrument_id"],
            product=code_from({}, data["product"]),
            order_type=code_from({}, data["order_type"]),
            quantity=quantity,
            filled_quantity=filled,
            pending_quantity=pending_from(status, quantity, filled, data["leaves"]),
            price=data["price"],
            trigger_price=data["stop_price"],
            average_price=data["average_price"] or None,
            reason=data["reason"],
            tag=data["unique_identifier"],
            exchange_time=ist_to_utc_iso(data["last_update"] or data["exchange_time"], XTS_TIME_FORMATS),
            modified=status_word(word) in self.MODIFY_STATUSES,
        )
