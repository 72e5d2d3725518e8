"""Fake Groww and 5paisa REST order books on 127.0.0.1 (docs/brokers.md §15), for the polled-book tests.

Each checks its broker's auth (Groww's `Authorization: Bearer` and `X-API-VERSION`, 5paisa's Bearer plus the
body's head.key and ClientCode), answers in the published shapes and records when each request came.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.fakes.rest import FakeRestBroker


class _Timed(FakeRestBroker):
    """A fake that notes the monotonic time of each request it answers."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self.times_lock = threading.Lock()

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        with self.times_lock:
            self.times.append(time.monotonic())
        return self.serve(method, path, headers, body)

    def serve(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        raise NotImplementedError

    @property
    def reads(self) -> int:
        """Requests answered so far."""
        with self.times_lock:
            return len(self.times)


class FakeGrowwRest(_Timed):
    """GET /v1/order/list?page=&page_size= → {"status": "SUCCESS", "payload": {"order_list": [...]}}."""

    book_path = "/v1/order/list"

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def serve(self, method, path, headers, body):
        if headers.get("Authorization") != f"Bearer {self.token}" or self.expired:
            self.auth_failures += 1
            return 401, {"status": "FAILURE", "error": {"code": "GA005", "message": "Invalid or expired token"}}
        if headers.get("X-API-VERSION") != "1.0":
            return 400, {"status": "FAILURE", "error": {"code": "GA000", "message": "X-API-VERSION missing"}}
        parts = urlsplit(path)
        if method != "GET" or parts.path != "/v1/order/list":
            return 404, {"status": "FAILURE", "error": {"code": "GA004", "message": "not found"}}
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        page, size = int(query.get("page", "0")), int(query.get("page_size", "25"))
        rows = self.book()[page * size : (page + 1) * size]
        return 200, {"status": "SUCCESS", "payload": {"order_list": rows}}


class FakeFivepaisaRest(_Timed):
    """POST /V3/OrderBook {"head": {"key"}, "body": {"ClientCode"}} → {"body": {"OrderBookDetail": [...]}}."""

    prefix = "/VendorsAPI/Service1.svc"
    book_path = "/V3/OrderBook"

    def __init__(self, client_code: str, app_key: str, token: str) -> None:
        super().__init__()
        self.client_code, self.app_key, self.token = client_code, app_key, token

    def serve(self, method, path, headers, body):
        if method != "POST" or path != self.prefix + self.book_path:
            return 404, {"body": {"Status": 1, "Message": "not found"}}
        if headers.get("Authorization") != f"Bearer {self.token}" or self.expired:
            self.auth_failures += 1
            return 401, {"body": {"Status": 2, "Message": "Invalid token"}}
        request = json.loads(body or b"{}")
        if request.get("head", {}).get("key") != self.app_key or request.get("body", {}).get("ClientCode") != (
            self.client_code
        ):
            return 200, {"body": {"Status": 1, "Message": "Invalid head key or client code", "OrderBookDetail": []}}
        return 200, {"head": {"status": "0"}, "body": {"Status": 0, "Message": "", "OrderBookDetail": self.book()}}


def groww_order(order_id: str, status: str, *, filled: int = 0, quantity: int = 10, **extra: Any) -> dict[str, Any]:
    """A Groww order row in the order list's published shape (docs/brokers.md §15.1)."""
    row = {
        "groww_order_id": order_id,
        "trading_symbol": "RELIANCE",
        "order_status": status,
        "remark": "Order placed successfully",
        "quantity": quantity,
        "price": 2500,
        "trigger_price": 0,
        "filled_quantity": filled,
        "remaining_quantity": quantity - filled,
        "average_fill_price": 2500 if filled else 0,
        "deliverable_quantity": filled,
        "amo_status": "NA",
        "validity": "DAY",
        "exchange": "NSE",
        "order_type": "LIMIT",
        "transaction_type": "BUY",
        "segment": "CASH",
        "product": "CNC",
        "created_at": "2026-05-08T11:55:00",
        "exchange_time": "2026-05-08T11:55:01",
        "trade_date": "2026-05-08T00:00:00",
        "order_reference_id": "Ab-654321234-1628190",
    }
    return {**row, **extra}


def fivepaisa_order(order_id: int, status: str, *, filled: int = 0, quantity: int = 10, **extra: Any) -> dict[str, Any]:
    """A 5paisa OrderBookDetail row in its published shape (docs/brokers.md §15.2)."""
    row = {
        "AtMarket": "N",
        "BrokerOrderId": order_id,
        "BrokerOrderTime": "/Date(1778221500000+0530)/",
        "BuySell": "B",
        "DelvIntra": "D",
        "Exch": "N",
        "ExchOrderID": "1100000012345678" if status != "Placed" else "0",
        "ExchOrderTime": "/Date(1778221501000+0530)/",
        "ExchType": "C",
        "OrderStatus": status,
        "PendingQty": quantity - filled,
        "Qty": quantity,
        "Rate": 1500.5,
        "Reason": "",
        "RemoteOrderID": "ORDERHOOK1",
        "SLTriggerRate": 0,
        "ScripCode": 1660,
        "ScripName": "ITC",
        "TradedQty": filled,
        "AveragePrice": 1500.5 if filled else 0,
    }
    return {**row, **extra}


class FakeXtsRest(_Timed):
    """XTS interactive REST: GET /interactive/orders (the book) and ?appOrderID= (the trail, newest first here, so
    the client's sort by time is what puts it in order), `Authorization: <token>` bare; a wrong token is HTTP 400
    {"type": "error", "description": "Invalid Token"} as the SDK expects (docs/brokers.md §14.3)."""

    book_path = "/interactive/orders"

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def serve(self, method, path, headers, body):
        if headers.get("Authorization") != self.token or self.expired:
            self.auth_failures += 1
            return 400, {"type": "error", "code": "e-session-0002", "description": "Invalid Token", "result": {}}
        parts = urlsplit(path)
        if method != "GET" or parts.path != self.book_path:
            return 404, {"type": "error", "description": "Not Found", "result": {}}
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if "appOrderID" in query:
            rows = self.history(query["appOrderID"])
            if rows is None:
                return 400, {"type": "error", "description": "Order not found", "result": {}}
            return 200, {"type": "success", "code": "s-orders-0001", "result": rows[::-1]}
        return 200, {"type": "success", "code": "s-orders-0001", "result": self.book()}
