"""Kotak Neo's published samples (docs/brokers.md §13). Kotak has no postback: `postbacks()` is not needed.

Each is copied from Kotak Neo Trade API v2's client documentation as mirrored in marketcalls/broker-api-docs
(kotak-api-docs/): the page is named by each.
"""

from __future__ import annotations

import copy
from typing import Any

#: 13-order-position-streaming-websocket.md, "Connection Acknowledgement".
ACK: dict[str, Any] = {"ak": "ok", "type": "cn", "task": "cn", "msg": "connected"}

#: 13-order-position-streaming-websocket.md, "Example Order Message": a market buy, complete.
ORDER_FRAME: dict[str, Any] = {
    "type": "order",
    "data": {
        "nOrdNo": "260216000308219",
        "ordSt": "complete",
        "avgPrc": "35.88",
        "qty": 1,
        "fldQty": 1,
        "unFldSz": 0,
        "sym": "ITBEES",
        "trnsTp": "B",
        "prcTp": "MKT",
        "prod": "NRML",
        "exSeg": "nse_cm",
        "ordDtTm": "16-Feb-2026 12:29:31",
        "exOrdId": "1100000049435826",
    },
}

#: 13-order-position-streaming-websocket.md, "Example Position Message".
POSITION_FRAME: dict[str, Any] = {
    "type": "position",
    "data": {
        "actId": "XP6M4",
        "sym": "ITBEES",
        "exSeg": "nse_cm",
        "prod": "NRML",
        "flBuyQty": "1",
        "flSellQty": "0",
        "buyAmt": "35.88",
        "sellAmt": "0.00",
        "posFlg": "true",
        "hsUpTm": "2026/02/16 12:29:31",
    },
}

#: 11-order-reports.md, "Order Book Response".
BOOK: dict[str, Any] = {
    "stat": "Ok",
    "data": [
        {
            "nOrdNo": "250720000007242",
            "ordSt": "rejected",
            "trdSym": "ITBEES-EQ",
            "qty": 1,
            "prc": "0.00",
            "avgPrc": "0.00",
            "trnsTp": "B",
            "prcTp": "L",
            "vldt": "DAY",
        },
        {
            "nOrdNo": "250720000007588",
            "ordSt": "after market order req received",
            "trdSym": "ITBEES-EQ",
            "qty": 1,
            "prc": "0.00",
            "avgPrc": "0.00",
        },
    ],
    "stCode": 200,
}

#: 11-order-reports.md, "Order History Response" (newest first, as published).
HISTORY: dict[str, Any] = {
    "stat": "Ok",
    "stCode": 200,
    "data": [
        {
            "nOrdNo": "250720000007242",
            "flDtTm": "20-Jul-2025 20:21:42",
            "ordSt": "rejected",
            "rejRsn": "ADAPTER is down",
            "qty": 1,
            "prc": "0.00",
            "avgPrc": "0.00",
            "prod": "MIS",
            "trnsTp": "B",
            "prcTp": "L",
        },
        {"nOrdNo": "250720000007242", "flDtTm": "20-Jul-2025 20:21:42", "ordSt": "open pending"},
    ],
}

#: 02-authentication.md, the two steps' "Success Example" (masked values given shape) and "Error Example".
VIEW_OK: dict[str, Any] = {
    "data": {"token": "eyJview.token", "sid": "view-sid-0001", "rid": "rid-1", "kType": "View", "status": "success"}
}
TRADE_OK: dict[str, Any] = {
    "data": {
        "token": "eyJtrade.token",
        "sid": "trade-sid-0001",
        "rid": "rid-2",
        "baseUrl": "https://cis.kotaksecurities.com",
        "kType": "Trade",
        "status": "success",
    }
}
TOTP_REFUSED: dict[str, Any] = {"status": "error", "message": "Invalid credentials or TOTP.", "errorCode": "401"}


def order(**fields: Any) -> dict[str, Any]:
    """An `order` frame from the documented one with some of its data changed."""
    frame = copy.deepcopy(ORDER_FRAME)
    frame["data"].update(fields)
    return frame
