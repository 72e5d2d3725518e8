"""AliceBlue's published samples (docs/brokers.md §12): every registry-driven test sends `postbacks()`.

Each is copied from AliceBlue's product documentation as mirrored in marketcalls/broker-api-docs
(aliceblue-api-docs/, source https://ant.aliceblueonline.com/productdocumentation/): the page is named by each.
"""

from __future__ import annotations

import copy
from typing import Any

#: 10-webhooks.md, "Order Status Feed", its sample payload: a market order rejected for margin.
FEED_ORDER: dict[str, Any] = {
    "t": "om",
    "norenordno": "24070600000744",
    "uid": "1332014",
    "actid": "1332014",
    "qty": "1",
    "prc": "0.00",
    "pcode": "I",
    "remarks": "",
    "rejreason": "RED:Margin Shortfall:INR 28,030.64 Available:INR 29.36 for C-1332014 [ABFSFREEDOM]",
    "prctyp": "MKT",
    "ret": "DAY",
    "dscqty": "0",
    "trantype": "B",
    "exch": "NSE",
    "tsym": "MRF-EQ",
    "status": "REJECTED",
    "reporttype": "Rejected",
}

#: 10-webhooks.md, "Webhook Order Updates", "Sample Order Update": the field set, every status field blank.
WEBHOOK_TEMPLATE: dict[str, Any] = {
    "norenordno": "123456789",
    "actid": "DEMO123",
    "exch": "NSE",
    "tsym": "INFY-EQ",
    "qty": "1",
    "prc": "1594.00",
    "prd": "CNC",
    "status": "",
    "reporttype": "",
    "trantype": "",
    "prctyp": "",
    "ret": "",
    "fillshares": "",
    "avgprc": "",
    "fltm": "",
    "flid": "",
    "flqty": "",
    "flprc": "",
    "rejreason": "",
    "exchordid": "",
    "cancelqty": "",
    "remarks": "",
    "dscqty": "",
    "trgprc": "",
    "snonum": "",
    "snoordt": "",
    "blprc": "",
    "bpprc": "",
    "trailprc": "",
    "exch_tm": "",
    "amo": "",
    "tm": "",
    "ntm": "",
    "kidid": "",
    "sno_fillid": "",
    "pcode": "",
}

#: 04-orders-management.md, "Order Book" response: one limit order rejected for its tick size.
BOOK_ROW: dict[str, Any] = {
    "clientId": "912444",
    "placedBy": "912444",
    "brokerOrderId": "25071400112229",
    "exchange": "NSE",
    "exchangeOrderId": "",
    "formattedInstrumentName": "ACC-EQ",
    "tradingSymbol": "ACC",
    "instrumentId": "22",
    "transactionType": "BUY",
    "quantity": 30,
    "product": "LONGTERM",
    "orderComplexity": "REGULAR",
    "orderType": "LIMIT",
    "price": 1120.15,
    "averageTradedPrice": 0,
    "slTriggerPrice": 0,
    "validity": "DAY",
    "disclosedQuantity": 0,
    "orderTime": "",
    "exchangeUpdateTime": "",
    "rejectionReason": "ORA:Price 1120.15 is not a multiple of tick size 0.10 ",
    "mainLegOrderId": "",
    "cancelledQuantity": 0,
    "pendingQuantity": 0,
    "filledQuantity": 0,
    "appKey": "",
    "algoId": "",
    "source": "API",
    "orderTag": "",
    "trailingSlAmount": 0,
    "brokerUpdateTime": "",
    "marketProtectionPercent": "",
    "exchangeTimestamp": "",
    "orderStatus": "REJECTED",
}

#: 02-authentication.md, "Success Response" (the userSession cut short) and "Error Response".
SESSION_OK: dict[str, Any] = {"stat": "Ok", "clientId": "912444", "userSession": "eyJhbGciOiJSUzI1NiIsInR5cCIg.sample"}
SESSION_REFUSED: dict[str, Any] = {"stat": "Not_ok", "emsg": "Invalid auth code"}


def postbacks() -> list[dict[str, Any]]:
    """The documented order frame as a webhook: the webhook sample's keys are the feed's (docs/brokers.md §12)."""
    webhook = {key: value for key, value in FEED_ORDER.items() if key != "t"}
    return [webhook, copy.deepcopy(FEED_ORDER)]


def order(**fields: Any) -> dict[str, Any]:
    """A feed frame of a working order, from the documented one with some fields changed."""
    frame = copy.deepcopy(FEED_ORDER)
    frame.update({"rejreason": "", "status": "OPEN", "reporttype": "New", "prctyp": "L", "prc": "2450.50"})
    frame.update(fields)
    return frame
