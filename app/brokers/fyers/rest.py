"""Fyers API v3 order book: GET /api/v3/orders and GET /api/v3/orders?id= (docs/brokers.md §11.3).

Fyers keeps no order history over the API: `?id=` answers the order's current row, as the book does (like Dhan),
so the engine reads the book row. Answers are `{"s": "ok", "code": 200, "message": "", "orderBook": [...]}`;
errors `{"s": "error", "code": <negative>, "message": ...}` with the HTTP status of the error table.
"""

from __future__ import annotations

import time
from typing import Any

from limits import parse as parse_rate

from app.brokers.rest import AuthExpired, BadResponse, OrderBookClient, OrderNotFound, Unavailable

#: Fyers' error codes for a token that is expired or invalid (-8, -15, -16, -17: "Common API Error Codes").
AUTH_ERROR_CODES = frozenset({-8, -15, -16, -17})
#: "invalid Order ID is passed while fetching Orders" (-51).
UNKNOWN_ORDER_CODE = -51
#: The rate limit exceeded, per second, minute or day (-429).
RATE_LIMIT_CODE = -429
#: The documented per-minute limit (the per-second one is `rate`); a user over it more than 3 times a day is blocked
#: for the rest of the day (docs/brokers.md §11.3), so both windows are kept.
PER_MINUTE = "200/minute"


class FyersClient(OrderBookClient):
    """Header `Authorization: <app_id>:<access_token>`; 10 requests a second and 200 a minute."""

    broker = "fyers"
    credentials = ("FYERS_APP_ID", "FYERS_ACCESS_TOKEN")
    url_variable = "FYERS_API_URL"
    rate = "10/second"
    # The limits are the user's (a user over them is blocked): one window per Fyers client id (docs/reconcile.md).
    limit_variable = "FYERS_USER_ID"
    has_history = False
    auth_message = "Fyers access token expired or invalid: log in again (or refresh FYERS_ACCESS_TOKEN)"
    title = "Fyers"

    def wait_turn(self) -> None:
        """The per-minute window first, then the per-second one (the shared client's)."""
        minute = parse_rate(PER_MINUTE)
        while not self._limiter.hit(minute, self.limit_key):
            stats = self._limiter.get_window_stats(minute, self.limit_key)
            self._sleep(max(0.05, min(1.0, stats.reset_time - _now())))
        super().wait_turn()

    def _headers(self) -> dict[str, str]:
        """Fyers' auth header (docs/brokers.md §11.3: "api_id:access_token")."""
        return {
            "Authorization": f"{self.variables['FYERS_APP_ID']}:{self.variables['FYERS_ACCESS_TOKEN']}",
            "Accept": "application/json",
        }

    def _get(self, path: str, order_id: str | None = None) -> list[dict[str, Any]]:
        """GET an `orderBook` answer; typed errors otherwise."""
        response = self.request("GET", path, headers=self._headers())
        body = self.json_of(response) if response.content else None
        code = _code(body)
        if response.status_code in (401, 403) or code in AUTH_ERROR_CODES:
            raise AuthExpired(self.auth_message)
        if order_id is not None and (code == UNKNOWN_ORDER_CODE or response.status_code == 404):
            raise OrderNotFound(f"Fyers does not know order {order_id}")
        if response.status_code == 429 or code == RATE_LIMIT_CODE or response.status_code >= 500:
            raise Unavailable(f"Fyers REST answered {response.status_code} after retries; will retry at the next run")
        if response.status_code != 200 or not isinstance(body, dict) or str(body.get("s", "")).lower() != "ok":
            message = body.get("message") if isinstance(body, dict) else None
            raise BadResponse(f"Fyers REST answered {response.status_code}: {str(message or 'unexpected body')[:120]}")
        rows = body.get("orderBook", [])
        if rows is None:
            return []
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise BadResponse("Fyers REST answered without a list of orders in orderBook")
        return self.checked_rows(rows)

    def orders(self) -> list[dict[str, Any]]:
        """Today's orders, across every platform the user trades on."""
        return self._get("/api/v3/orders")

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """The order's current row (`?id=`); Fyers keeps no history."""
        rows = self._get(f"/api/v3/orders?id={self.path_segment(order_id)}", order_id=order_id)
        rows = [row for row in rows if str(row.get("id", "")) == order_id]
        if not rows:
            raise OrderNotFound(f"Fyers does not know order {order_id}")
        return rows

    def order_id(self, row: dict[str, Any]) -> str | None:
        """Fyers' id."""
        value = row.get("id")
        return str(value) if value not in (None, "") else None


def _code(body: Any) -> int | None:
    """The answer's numeric `code`, when it has one."""
    if not isinstance(body, dict):
        return None
    try:
        return int(body.get("code"))
    except (TypeError, ValueError):
        return None


def _now() -> float:
    """Wall clock seconds (the limiter's windows are in wall time)."""
    return time.time()
