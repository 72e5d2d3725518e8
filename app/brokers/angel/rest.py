"""Angel One SmartAPI order book: GET getOrderBook and GET details/{uniqueorderid} (docs/brokers.md §9.5).

Headers as smartapi-python sends them (SmartConnect.requestHeaders): `Authorization: Bearer <jwtToken>`,
`X-PrivateKey: <api_key>`, `X-UserType: USER`, `X-SourceID: WEB`, the client's IP and MAC headers, JSON in and out.
Answers are `{"status": true, "message": "SUCCESS", "errorcode": "", "data": [...]}`; a refused token is
`{"success": false, "message": "Invalid Token", "errorCode": "AG8001"}` (or HTTP 401/403); more than the rate
limit answers the plain text "Access denied because of exceeding access rate".
"""

from __future__ import annotations

from typing import Any

from app.brokers.rest import AuthExpired, BadResponse, OrderBookClient, OrderNotFound, Unavailable

BOOK_PATH = "/rest/secure/angelbroking/order/v1/getOrderBook"
DETAILS_PATH = "/rest/secure/angelbroking/order/v1/details/"
#: Angel's codes of a token it does not take (docs/brokers.md §9.5): invalid, expired, missing.
AUTH_ERROR_CODES = frozenset({"AG8001", "AG8002", "AG8003"})
#: "Order not found" from the details API.
NOT_FOUND_CODES = frozenset({"AB1007"})
RATE_LIMITED = "exceeding access rate"


class AngelClient(OrderBookClient):
    """Bearer jwtToken + X-PrivateKey; getOrderBook is limited to 1 request per second per client code."""

    broker = "angel"
    credentials = ("ANGEL_CLIENT_CODE", "ANGEL_JWT_TOKEN", "ANGEL_API_KEY")
    url_variable = "ANGEL_API_URL"
    # getOrderBook 1/s, details 10/s, counted per user id (docs/brokers.md §9.5): one window at the lower figure.
    rate = "1/second"
    limit_variable = "ANGEL_CLIENT_CODE"
    # The details API answers the order's current row, not its history: the book row is as good.
    has_history = False
    auth_message = "Angel One session expired or invalid: the account logs in again by itself (or log in)"
    title = "Angel One"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: orderid -> uniqueorderid, learnt from the book: the details API is keyed by the latter.
        self.unique_ids: dict[str, str] = {}

    def _headers(self) -> dict[str, str]:
        """smartapi-python's request headers; the IP and MAC headers carry placeholders, as OpenAlgo sends them."""
        return {
            "Authorization": f"Bearer {self.variables['ANGEL_JWT_TOKEN']}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-UserType": "USER",
            "X-SourceID": "WEB",
            "X-ClientLocalIP": "127.0.0.1",
            "X-ClientPublicIP": "127.0.0.1",
            "X-MACAddress": "00:00:00:00:00:00",
            "X-PrivateKey": self.variables["ANGEL_API_KEY"],
        }

    def _get(self, path: str, order_id: str | None = None) -> Any:
        """GET an answer's `data`; typed errors for refusals, limits and odd bodies."""
        response = self.request("GET", path, headers=self._headers())
        if RATE_LIMITED in response.content[:200].decode("utf-8", "replace").lower():
            raise Unavailable("Angel One REST answered its rate limit after retries; will retry at the next run")
        body = self.json_of(response) if response.content.strip() else None
        code = _error_code(body)
        if response.status_code in (401, 403) or code in AUTH_ERROR_CODES:
            raise AuthExpired(self.auth_message)
        if order_id is not None and (code in NOT_FOUND_CODES or response.status_code == 404):
            raise OrderNotFound(f"Angel One does not know order {order_id}")
        if response.status_code == 429 or response.status_code >= 500:
            raise Unavailable(
                f"Angel One REST answered {response.status_code} after retries; will retry at the next run"
            )
        if response.status_code != 200 or not isinstance(body, dict) or body.get("status") is not True:
            message = body.get("message") if isinstance(body, dict) else None
            detail = str(message or code or "unexpected body")[:120]
            raise BadResponse(f"Angel One REST answered {response.status_code}: {detail}")
        return body.get("data")

    def orders(self) -> list[dict[str, Any]]:
        """Today's orders; `data` is null when there are none."""
        data = self._get(BOOK_PATH)
        if data is None:
            return []
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise BadResponse("Angel One REST answered getOrderBook without a list of orders in data")
        rows = self.checked_rows(data)
        for row in rows:
            order_id, unique = self.order_id(row), row.get("uniqueorderid")
            if order_id and isinstance(unique, str) and unique:
                self.unique_ids[order_id] = unique
        return rows

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """The order's current row from the details API, by the uniqueorderid its book row named; an order not in
        today's book has none to ask for."""
        unique = self.unique_ids.get(order_id)
        if unique is None:
            raise OrderNotFound(f"Angel One's book of today does not hold order {order_id}")
        data = self._get(DETAILS_PATH + self.path_segment(unique), order_id=order_id)
        if not isinstance(data, dict):
            raise OrderNotFound(f"Angel One does not know order {order_id}")
        return [data]

    def order_id(self, row: dict[str, Any]) -> str | None:
        """Angel's orderid (a number in older answers, text in newer)."""
        value = row.get("orderid")
        if value in (None, "") or isinstance(value, bool):
            return None
        return str(value).strip() or None


def _error_code(body: Any) -> str:
    """The error code of an answer, spelled `errorcode` (SmartAPI) or `errorCode` (the gateway)."""
    if not isinstance(body, dict):
        return ""
    return str(body.get("errorcode") or body.get("errorCode") or "").strip().upper()
