"""Fyers' published sample payloads (docs/brokers.md §11), each as its source prints it: the registry-driven tests
send `postbacks()`, and the adapter, feed and reconciliation tests start from these.

Sources: the FYERS API v3 reference (myapi.fyers.in/docsv3), sections "Postback (Webhooks)" (3. Response),
"Transaction Info / Orders" (sample success response), "General Socket (orders)" (sample success response) and
"Order Websocket Usage Guide" (the raw frame and the SDK's parsed data); read in the PDF export of 2026-07-09.
"""

from __future__ import annotations

import copy
from typing import Any

#: "Postback (Webhooks)", 3. Response: "Response Output" (a traded MARGIN order, sent flat as the raw POST body).
POSTBACK_TRADED: dict[str, Any] = {
    "orderDateTime": "18-Jul-2023 11:44:29",
    "id": "23071800238607",
    "exchOrdId": "2500000061319029",
    "side": -1,
    "segment": 11,
    "instrument": 15,
    "productType": "MARGIN",
    "status": 2,
    "qty": 5400,
    "remainingQuantity": 0,
    "filledQty": 5400,
    "limitPrice": 2.15,
    "stopPrice": 0,
    "type": 2,
    "discloseQty": 0,
    "dqQtyRem": 0,
    "orderValidity": "DAY",
    "source": "M",
    "fyToken": "101123072754619",
    "offlineOrder": False,
    "message": "Completed",
    "orderNumStatus": "23071800238607:2",
    "tradedPrice": 2.15,
    "exchange": 10,
    "pan": "",
    "clientId": "xxxx",
    "symbol": "NSE:ABCAPITAL23JUL190CE",
}

#: "Orders" (GET /api/v3/orders): the sample success response, {"s","code","message","orderBook": [...]}.
ORDER_BOOK: dict[str, Any] = {
    "s": "ok",
    "code": 200,
    "message": "",
    "orderBook": [
        {
            "clientId": "X******",
            "id": "23030900015105",
            "id_fyers": "c6697c04-d9ab-4a7c-a6f4-b0cc4ca698f6",
            "exchOrdId": "1100000001089341",
            "qty": 1,
            "remainingQuantity": 0,
            "filledQty": 1,
            "discloseQty": 0,
            "limitPrice": 6.95,
            "stopPrice": 0,
            "tradedPrice": 6.95,
            "type": 1,
            "fyToken": "101000000014366",
            "exchange": 10,
            "segment": 10,
            "symbol": "NSE:IDEA-EQ",
            "instrument": 0,
            "message": "",
            "offlineOrder": False,
            "orderDateTime": "09-Mar-2023 09:34:38",
            "orderValidity": "DAY",
            "pan": "",
            "productType": "CNC",
            "side": -1,
            "status": 2,
            "source": "W",
            "ex_sym": "IDEA",
            "description": "VODAFONE IDEA LIMITED",
            "ch": -0.1,
            "chp": -1.44,
            "lp": 6.85,
            "slNo": 1,
            "dqQtyRem": 0,
            "orderNumStatus": "23030900015105:2",
            "disclosedQty": 0,
            "orderTag": "1:Ordertag",
            "takeProfit": 0,
            "stopLoss": 0,
        }
    ],
}

#: "General Socket (orders)": the SDK's parsed message. Its `status` is 90 (an internal code some SDK versions put
#: there) while orderNumStatus keeps the documented 2 (docs/brokers.md §11.2).
SOCKET_PARSED_TRADED: dict[str, Any] = {
    "s": "ok",
    "orders": {
        "clientId": "FY****",
        "id": "23080400089344",
        "exchOrdId": "1100000009596016",
        "qty": 1,
        "filledQty": 1,
        "limitPrice": 7.95,
        "type": 1,
        "fyToken": "101000000014366",
        "exchange": 10,
        "segment": 10,
        "symbol": "NSE:IDEA-EQ",
        "instrument": 0,
        "offlineOrder": False,
        "orderDateTime": "04-Aug-2023 10:12:58",
        "orderValidity": "DAY",
        "productType": "INTRADAY",
        "side": -1,
        "status": 90,
        "source": "W",
        "ex_sym": "IDEA",
        "description": "VODAFONE IDEA LIMITED",
        "orderNumStatus": "23080400089344:2",
        "id_fyers": "1b30241e-2819-4ec9-a3e4-69b6155cacab",
    },
}

#: "Order Websocket Usage Guide": the frame as the socket sends it, short keys (a market buy's New Ack, in transit).
SOCKET_RAW_NEW_ACK: dict[str, Any] = {
    "orders": {
        "client_id": "XP0001",
        "exchange": 10,
        "fy_token": "10100000001628",
        "id": "23121800292158",
        "id_fyers": "df013f50-6925-4e2d-ba0f-0becf1229298",
        "instrument": 0,
        "lot_size": 1,
        "offline_flag": False,
        "oms_flag": "K:1",
        "ord_source": "W",
        "ord_status": 20,
        "ord_type": 2,
        "ordertag": "2:Untagged",
        "org_ord_status": 4,
        "pan": "LVJPS3998E",
        "precision": 2,
        "price_multiplier": 1,
        "product_type": "CNC",
        "qty": 1,
        "qty_multiplier": 1,
        "qty_remaining": 1,
        "report_type": "New Ack",
        "segment": 10,
        "status_msg": "New Ack",
        "symbol": "NSE:BECTORFOOD-EQ",
        "symbol_desc": "MRS BECTORS FOOD SPE LTD",
        "symbol_exch": "BECTORFOOD",
        "tick_size": 0.05,
        "time_epoch_oms": 1702887690,
        "time_exch": "NA",
        "time_oms": "18-Dec-2023 13:51:30",
        "tran_side": 1,
        "update_time_epoch_oms": 1702887690,
        "update_time_exch": "01-Jan-1970 05:30:00",
        "validity": "DAY",
    },
    "s": "ok",
}

#: "Order Websocket Usage Guide": the SDK's "Parsed Data" of such a frame (printed as a Python dict there).
SOCKET_PARSED_TRANSIT: dict[str, Any] = {
    "s": "ok",
    "orders": {
        "clientId": "XP03754",
        "id": "23121800388066",
        "qty": 1,
        "remainingQuantity": 1,
        "type": 2,
        "fyToken": "10100000002705",
        "exchange": 10,
        "segment": 10,
        "symbol": "NSE:PRAJIND-EQ",
        "instrument": 0,
        "offlineOrder": False,
        "orderDateTime": "18-Dec-2023 16:33:24",
        "orderValidity": "DAY",
        "productType": "CNC",
        "side": 1,
        "status": 4,
        "source": "W",
        "ex_sym": "PRAJIND",
        "description": "PRAJ INDUSTRIES LTD",
        "orderNumStatus": "23121800388066:4",
    },
}

#: "Order Websocket Usage Guide", Subscribe Method: the sample response to SUB_ORD.
SUBSCRIBED: dict[str, Any] = {"code": 1605, "message": "Successfully subscribed", "s": "ok"}


def postbacks() -> list[dict[str, Any]]:
    """Bodies the webhook route takes: the documented postback, an order-book row, the SDK's socket messages."""
    return [
        copy.deepcopy(POSTBACK_TRADED),
        copy.deepcopy(ORDER_BOOK["orderBook"][0]),
        copy.deepcopy(SOCKET_PARSED_TRADED),
    ]


def order(**changes: Any) -> dict[str, Any]:
    """A flat long-form order (the postback's shape) of one account's limit buy, with changes (test helper)."""
    base = {
        "id": "25120400011111",
        "clientId": "XP0001",
        "exchOrdId": "1100000012345678",
        "symbol": "NSE:SBIN-EQ",
        "exchange": 10,
        "segment": 10,
        "productType": "INTRADAY",
        "type": 1,
        "side": 1,
        "qty": 10,
        "filledQty": 0,
        "remainingQuantity": 10,
        "limitPrice": 801.5,
        "stopPrice": 0,
        "tradedPrice": 0,
        "status": 4,
        "message": "",
        "orderValidity": "DAY",
        "orderDateTime": "04-Dec-2025 10:15:02",
        "orderTag": "1:Ordertag",
        "source": "ITS",
    }
    base.update(changes)
    base["orderNumStatus"] = f"{base['id']}:{base['status']}"
    return base
