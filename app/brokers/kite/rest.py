"""Kite Connect order book: GET /orders and GET /orders/{id} (docs/reconcile.md, Kite)."""

from __future__ import annotations

from typing import Any

from app.brokers.rest import (
    AuthExpired,
    BadResponse,
    OrderBookClient,
    OrderNotFound,
    Unavailable,
    parse_time,
    sort_by_time,
)

KITE_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S",)


class KiteClient(OrderBookClient):
    """`Authorization: token <api_key>:<access_token>` and `X-Kite-Version: 3`; 10 order reads per second."""

    broker = "kite"
    credentials = ("KITE_API_KEY", "KITE_ACCESS_TOKEN")
    url_variable = "KITE_API_URL"
    rate = "10/second"
    # Counted per Kite Connect app: accounts logged in through one api_key share its window (docs/reconcile.md).
    limit_variable = "KITE_API_KEY"
    auth_message = "Kite access token expired or invalid: refresh KITE_ACCESS_TOKEN"
    title = "Kite"

    def _headers(self) -> dict[str, str]:
        """Kite's auth headers (pykiteconnect connect.py)."""
        key, token = self.variables["KITE_API_KEY"], self.variables["KITE_ACCESS_TOKEN"]
        return {"X-Kite-Version": "3", "Authorization": f"token {key}:{token}"}

    def _get(self, path: str, order_id: str | None = None) -> list[dict[str, Any]]:
        """GET a `{"status":"success","data":[...]}` answer; typed errors otherwise."""
        response = self.request("GET", path, headers=self._headers())
        body = self.json_of(response) if response.content else None
        error_type = body.get("error_type") if isinstance(body, dict) else None
        if response.status_code == 403 or error_type == "TokenException":
            raise AuthExpired(self.auth_message)
        if order_id is not None and (response.status_code == 404 or error_type == "InputException"):
            raise OrderNotFound(f"Kite does not know order {order_id}")
        if response.status_code == 429 or response.status_code >= 500:
            raise Unavailable(f"Kite REST answered {response.status_code} after retries; will retry at the next run")
        if response.status_code != 200 or not isinstance(body, dict) or body.get("status") != "success":
            message = body.get("message") if isinstance(body, dict) else None
            raise BadResponse(f"Kite REST answered {response.status_code}: {str(message or 'unexpected body')[:120]}")
        data = body.get("data")
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise BadResponse("Kite REST answered without a list of orders in data")
        return self.checked_rows(data)

    def orders(self) -> list[dict[str, Any]]:
        """Today's orders (not guaranteed chronological, docs/brokers.md §10)."""
        return self._get("/orders")

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """Every state of one order; Kite sends them oldest first, sorted here by time anyway."""
        rows = self._get(f"/orders/{self.path_segment(order_id)}", order_id=order_id)
        return sort_by_time(rows, _row_time, newest_first=False)

    def order_id(self, row: dict[str, Any]) -> str | None:
        """Kite's order_id."""
        value = row.get("order_id")
        return str(value) if value not in (None, "") else None

    def to_payload(self, row: dict[str, Any]) -> dict[str, Any]:
        """Current order dicts carry account_id instead of user_id (kiteconnect-mocks orders.json)."""
        payload = dict(row)
        if payload.get("user_id") in (None, "") and payload.get("account_id") not in (None, ""):
            payload["user_id"] = payload["account_id"]
        return payload


def _row_time(row: dict[str, Any]):
    """When this state was reached: the exchange's update time, else the OMS's order_timestamp."""
    return parse_time(row.get("exchange_update_timestamp"), KITE_TIME_FORMATS) or parse_time(
        row.get("order_timestamp"), KITE_TIME_FORMATS
    )
