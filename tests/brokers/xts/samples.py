"""Symphony XTS order objects as published (docs/brokers.md §14.2), the fixtures of the xts tests.

The shape is the interactive order book's row (symphonyfintech/xts-javaclient-api-sdk,
`interactive/orderbook/Result.java`: every field name below) with the values of a captured order event
(a public capture of an NSEFO market order: MessageCode 9004, OrderLegStatus SingleOrderLeg, ISO times) [secondary].
XTS has no HTTP postback, so `postbacks()` is empty; `order()` builds the variants the tests need.
"""

from __future__ import annotations

import copy
from typing import Any

ORDER_EVENT: dict[str, Any] = {
    "LoginID": "D7730001",
    "ClientID": "D7730002",
    "AppOrderID": 901464450,
    "OrderReferenceID": "",
    "GeneratedBy": "TWSAPI",
    "ExchangeOrderID": "",
    "OrderCategoryType": "NORMAL",
    "ExchangeSegment": "NSEFO",
    "ExchangeInstrumentID": 48186,
    "OrderSide": "Sell",
    "OrderType": "Market",
    "ProductType": "MIS",
    "TimeInForce": "DAY",
    "OrderPrice": 0,
    "OrderQuantity": 50,
    "OrderStopPrice": 0,
    "OrderStatus": "Filled",
    "OrderAverageTradedPrice": "",
    "LeavesQuantity": 0,
    "CumulativeQuantity": 50,
    "OrderDisclosedQuantity": 0,
    "OrderGeneratedDateTime": "2021-05-14T11:17:29",
    "ExchangeTransactTime": "2021-05-14T11:17:29+05:30",
    "LastUpdateDateTime": "2021-05-14T11:17:29",
    "OrderExpiryDate": "0001-01-01T00:00:00",
    "CancelRejectReason": "",
    "OrderUniqueIdentifier": "454845",
    "OrderLegStatus": "SingleOrderLeg",
    "MessageCode": 9004,
    "MessageVersion": 4,
    "TokenID": 0,
    "ApplicationType": 146,
    "SequenceNumber": -1,
}


def postbacks() -> list[dict[str, Any]]:
    """XTS sends no HTTP postback (docs/brokers.md §14)."""
    return []


def order(**changes: Any) -> dict[str, Any]:
    """The published order object with some fields changed."""
    return {**copy.deepcopy(ORDER_EVENT), **changes}
