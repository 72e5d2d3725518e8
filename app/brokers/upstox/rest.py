"""Upstox order book: GET /v2/order/retrieve-all and GET /v2/order/history?order_id= (docs/brokers.md §10.4)."""

from __future__ import annotations

import time
from typing import Any

from limits import parse as parse_rate

from app.brokers.rest import (
    AuthExpired,
    BadResponse,
    OrderBookClient,
    OrderNotFound,
    Unavailable,
    parse_time,
    sort_by_time,
)

UPSTOX_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S",)
#: The API version header the SDK sends with every v2 call (upstox-python `api_version` "2.0").
API_VERSION = "2.0"
#: Error codes of a refused token: "Invalid token used to access API", "Invalid Credentials" (error-codes page).
AUTH_ERROR_CODES = frozenset({"UDAPI100050", "UDAPI100016"})
#: "Order not found" (the cancel-order page's error codes).
NOT_FOUND_CODES = frozenset({"UDAPI100010"})
#: Upstox counts Standard APIs per user and per API in three windows at once: 50/second, 500/minute and
#: 2000/30 minutes (docs/brokers.md §10.4). `rate` holds the tightest; these the longer two, at 90 % to leave
#: room for the trader's other tools on the same account.
LONGER_WINDOWS = ("450/minute", "1800/30 minutes")


class UpstoxClient(OrderBookClient):
    """`Authorization: Bearer <access_token>`; answers `{"status": "success", "data": [...]}` or `errors[]`."""

    broker = "upstox"
    credentials = ("UPSTOX_ACCESS_TOKEN",)
    url_variable = "UPSTOX_API_URL"
    # 50/s documented; reconciliation needs a handful of reads per run, so it stays far below.
    rate = "10/second"
    # Limits are per user (docs/brokers.md §10.4): each account has its own windows.
    limit_variable = "UPSTOX_USER_ID"
    auth_message = "Upstox access token expired or invalid: log in again (tokens end at 03:30 IST)"
    title = "Upstox"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._longer = tuple(parse_rate(window) for window in LONGER_WINDOWS)

    def wait_turn(self) -> None:
        """The per-second window, then the per-minute and per-30-minute ones (moving windows, per user)."""
        super().wait_turn()
        for window in self._longer:
            while not self._limiter.hit(window, self.limit_key):
                stats = self._limiter.get_window_stats(window, self.limit_key)
                self._sleep(max(0.01, min(1.0, stats.reset_time - _now())))

    def _headers(self) -> dict[str, str]:
        """Upstox's auth headers (upstox-python `Configuration.access_token` -> OAUTH2 bearer)."""
        return {
            "Authorization": f"Bearer {self.variables['UPSTOX_ACCESS_TOKEN']}",
            "Accept": "application/json",
            "Api-Version": API_VERSION,
        }

    def _get(self, path: str, *, order_id: str | None = None) -> list[dict[str, Any]]:
        """GET a `data` list; typed errors for refusals, unknown orders and an unavailable broker."""
        params = {"order_id": order_id} if order_id is not None else None
        response = self.request("GET", path, headers=self._headers(), params=params)
        body = self.json_of(response) if response.content else None
        codes = error_codes(body)
        if response.status_code in (401, 403) or codes & AUTH_ERROR_CODES:
            raise AuthExpired(self.auth_message)
        if order_id is not None and (response.status_code == 404 or codes & NOT_FOUND_CODES):
            raise OrderNotFound(f"Upstox does not know order {order_id}")
        if response.status_code == 429 or response.status_code >= 500:
            raise Unavailable(f"Upstox REST answered {response.status_code} after retries; will retry at the next run")
        data = body.get("data") if isinstance(body, dict) and body.get("status") == "success" else body
        if response.status_code != 200 or not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise BadResponse(f"Upstox REST answered {response.status_code}: {error_text(body)}")
        return self.checked_rows(data)

    def orders(self) -> list[dict[str, Any]]:
        """Today's orders, each at its latest state."""
        return self._get("/v2/order/retrieve-all")

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """Every state of one order; the documented sample is oldest first, sorted here by time anyway."""
        rows = self._get("/v2/order/history", order_id=self.checked_id(order_id))
        if not rows:
            raise OrderNotFound(f"Upstox does not know order {order_id}")
        return sort_by_time(rows, _row_time, newest_first=False)

    def order_id(self, row: dict[str, Any]) -> str | None:
        """Upstox's order_id."""
        value = row.get("order_id")
        return str(value) if value not in (None, "") else None


def error_codes(body: Any) -> set[str]:
    """The `errors[].errorCode` (or `error_code`) values of an error answer."""
    errors = body.get("errors") if isinstance(body, dict) else None
    codes = set()
    for error in errors if isinstance(errors, list) else ():
        if isinstance(error, dict):
            code = error.get("errorCode") or error.get("error_code")
            if isinstance(code, str):
                codes.add(code.strip().upper())
    return codes


def error_text(body: Any) -> str:
    """The first error's message, bounded, or a generic phrase."""
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    return str(first.get("message") or "unexpected body")[:120]


def _row_time(row: dict[str, Any]):
    """When this state was reached: the exchange's time, else the order's placement time."""
    return parse_time(row.get("exchange_timestamp"), UPSTOX_TIME_FORMATS) or parse_time(
        row.get("order_timestamp"), UPSTOX_TIME_FORMATS
    )


def _now() -> float:
    """Wall clock seconds (the limiter's windows are in wall time)."""
    return time.time()
