"""Upstox's published order updates and order-book rows, as fixtures: every registry-driven test sends postbacks().

Each sample is copied from the page it cites (values as published, `******` where Upstox masks them), so the
tests read what Upstox says it sends (docs/brokers.md §10).
"""

from __future__ import annotations

import copy
from typing import Any

#: upstox.com/developer/api-documentation/webhook, "Response structure" (current page): a new market order.
WEBHOOK_PUT_ORDER = {
    "update_type": "order",
    "user_id": "******",
    "userId": "******",
    "exchange": "NSE",
    "instrument_token": "NSE_EQ|INE848E01016",
    "instrument_key": "NSE_EQ|INE848E01016",
    "trading_symbol": "NHPC-EQ",
    "tradingsymbol": "NHPC-EQ",
    "product": "D",
    "order_type": "MARKET",
    "average_price": 0,
    "price": 0,
    "trigger_price": 0,
    "quantity": 1,
    "disclosed_quantity": 0,
    "pending_quantity": 1,
    "transaction_type": "BUY",
    "order_ref_id": "57744821658411",
    "exchange_order_id": "",
    "parent_order_id": None,
    "validity": "DAY",
    "status": "put order req received",
    "is_amo": False,
    "variety": "SIMPLE",
    "tag": None,
    "exchange_timestamp": None,
    "status_message": "",
    "order_id": "240221025997024",
    "order_request_id": "1",
    "order_timestamp": "2024-02-21 14:40:02",
    "filled_quantity": 0,
    "guid": None,
    "placed_by": "******",
    "status_message_raw": None,
}

#: The same page's earlier version (2023, before `update_type`): an AMO cancelled before the market opened.
WEBHOOK_CANCELLED_AMO = {
    "exchange": "BSE",
    "product": "D",
    "price": 16.78,
    "quantity": 1,
    "status": "cancelled after market order",
    "guid": None,
    "tag": None,
    "userId": "******",
    "instrument_token": "BSE_EQ|INE306A01021",
    "placed_by": "******",
    "trading_symbol": "BAJAJHIND",
    "tradingsymbol": "BAJAJHIND",
    "order_type": "LIMIT",
    "validity": "DAY",
    "trigger_price": 0,
    "disclosed_quantity": 0,
    "transaction_type": "BUY",
    "average_price": None,
    "filled_quantity": 0,
    "pending_quantity": 1,
    "status_message": None,
    "status_message_raw": None,
    "exchange_order_id": "",
    "parent_order_id": None,
    "order_id": "230822025708869",
    "variety": "SIMPLE",
    "order_timestamp": "2023-08-23 08:11:57",
    "exchange_timestamp": None,
    "is_amo": False,
    "order_request_id": None,
    "order_ref_id": "4744398539148202487-53A8YA-JAPIA",
}

#: upstox.com/developer/api-documentation/get-order-book, the sample's first row (a filled limit order).
BOOK_COMPLETE = {
    "exchange": "BSE",
    "product": "D",
    "price": 0.8,
    "quantity": 1,
    "status": "complete",
    "guid": None,
    "tag": None,
    "instrument_token": "BSE_EQ|INE220J01025",
    "placed_by": "*****",
    "trading_symbol": "FCONSUMER",
    "tradingsymbol": "FCONSUMER",
    "order_type": "LIMIT",
    "validity": "DAY",
    "trigger_price": 0,
    "disclosed_quantity": 0,
    "transaction_type": "BUY",
    "average_price": 0.8,
    "filled_quantity": 1,
    "pending_quantity": 0,
    "status_message": None,
    "status_message_raw": None,
    "exchange_order_id": "1697686200000169148",
    "parent_order_id": None,
    "order_id": "231019025057849",
    "variety": "SIMPLE",
    "order_timestamp": "2023-10-19 09:23:23",
    "exchange_timestamp": "2023-10-19 09:23:23",
    "is_amo": False,
    "order_request_id": "2",
    "order_ref_id": "57744821658411",
}

#: The same sample's second row, as far as the page shows it (a stop-loss sell refused for margin).
BOOK_REJECTED = {
    "exchange": "NFO",
    "product": "I",
    "price": 0,
    "quantity": 1500,
    "status": "rejected",
    "guid": None,
    "tag": None,
    "instrument_token": "NSE_FO|52567",
    "placed_by": "******",
    "trading_symbol": "SBIN23OCTFUT",
    "tradingsymbol": "SBIN23OCTFUT",
    "order_type": "SL-M",
    "validity": "DAY",
    "trigger_price": 570,
    "disclosed_quantity": 0,
    "transaction_type": "SELL",
    "average_price": 0,
    "filled_quantity": 0,
    "pending_quantity": 0,
    "status_message": "You need to add Rs. 138385.27 in your account to place this trade.",
}

#: upstox.com/developer/api-documentation/get-order-history, the sample's first row (as far as the page shows it).
HISTORY_FIRST = {
    "exchange": "NSE",
    "price": 571.35,
    "product": "D",
    "quantity": 1,
    "status": "put order req received",
    "tag": None,
    "validity": "DAY",
    "average_price": 0.0,
    "disclosed_quantity": 0,
    "exchange_order_id": None,
    "exchange_timestamp": None,
    "instrument_token": "NSE_EQ|INE062A01020",
    "is_amo": False,
    "status_message": None,
    "order_id": "231019025564798",
    "order_request_id": "1",
    "order_type": "LIMIT",
    "parent_order_id": "NA",
    "trading_symbol": "SBIN",
    "tradingsymbol": "SBIN",
    "order_timestamp": "2023-10-19 13:25:56",
    "filled_quantity": 0,
    "transaction_type": "SELL",
    "trigger_price": 0.0,
    "placed_by": "******",
}

#: upstox.com/developer/api-documentation/get-portfolio-stream-feed-authorize, "Response Body".
AUTHORIZE_ANSWER = {
    "status": "success",
    "data": {
        "authorized_redirect_uri": "wss://xyz.upstox.com/upstox-developer-api/order-updates/feed?requestId=2f646f57-a097-4402-bb36-c44085c5f8e7&code=9355b100-25cf-4fa7-b038-06d27ddb4823",
        "authorizedRedirectUri": "wss://xyz.upstox.com/upstox-developer-api/order-updates/feed?requestId=2f646f57-a097-4402-bb36-c44085c5f8e7&code=9355b100-25cf-4fa7-b038-06d27ddb4823",
    },
}


def postbacks() -> list[dict[str, Any]]:
    """The webhook page's two samples (docs/brokers.md §10.1)."""
    return [copy.deepcopy(WEBHOOK_PUT_ORDER), copy.deepcopy(WEBHOOK_CANCELLED_AMO)]


def order_update(order_id: str = "250512000123456", user_id: str = "UP1234", **changes: Any) -> dict[str, Any]:
    """The webhook page's update for another order and user, with fields changed (a feed or book row)."""
    update = copy.deepcopy(WEBHOOK_PUT_ORDER)
    update.update(order_id=order_id, user_id=user_id, userId=user_id, placed_by=user_id)
    update.update(
        order_type="LIMIT", price=271.5, quantity=10, pending_quantity=10, trading_symbol="NHPC-EQ", product="I"
    )
    update.update(changes)
    return update


def lifecycle(order_id: str, user_id: str = "UP1234") -> list[dict[str, Any]]:
    """One limit order placed, opened, partly filled and filled, as its updates arrive (docs/brokers.md §10.3)."""
    placed = order_update(order_id, user_id, order_timestamp="2025-05-12 10:15:00")
    opened = dict(
        placed,
        status="open",
        exchange_order_id="1100000012345678",
        exchange_timestamp="2025-05-12 10:15:01",
    )
    partly = dict(
        opened, filled_quantity=4, pending_quantity=6, average_price=271.5, exchange_timestamp="2025-05-12 10:16:00"
    )
    filled = dict(
        partly, status="complete", filled_quantity=10, pending_quantity=0, exchange_timestamp="2025-05-12 10:17:00"
    )
    return [placed, opened, partly, filled]
