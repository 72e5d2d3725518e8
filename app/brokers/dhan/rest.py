"""Dhan v2 order book: GET /v2/orders and GET /v2/orders/{id} (docs/reconcile.md, Dhan)."""

from __future__ import annotations

from typing import Any

from app.brokers.rest import AuthExpired, BadResponse, OrderBookClient, OrderNotFound, Unavailable

#: Dhan's error codes for a refused token or client id (DhanHQ v2 annexure: DH-901 invalid authentication,
#: DH-902 invalid access).
AUTH_ERROR_CODES = frozenset({"DH-901", "DH-902"})


class DhanClient(OrderBookClient):
    """Header `access-token` (and `client-id`, as the SDK sends); 25 order requests per second."""

    broker = "dhan"
    credentials = ("DHAN_CLIENT_ID", "DHAN_ACCESS_TOKEN")
    url_variable = "DHAN_API_URL"
    # 25/s for order APIs, 20/s for the rest (docs/brokers.md §10): stay at the lower figure.
    rate = "20/second"
    # Each Dhan account has its own token and limits (docs/reconcile.md).
    limit_variable = "DHAN_CLIENT_ID"
    # GET /v2/orders/{id} is the same current row as the book's, not a history.
    has_history = False
    auth_message = "Dhan access token expired or invalid: refresh DHAN_ACCESS_TOKEN (and check DHAN_CLIENT_ID)"
    title = "Dhan"

    def _headers(self) -> dict[str, str]:
        """Dhan's auth headers (DhanHQ-py)."""
        return {
            "access-token": self.variables["DHAN_ACCESS_TOKEN"],
            "client-id": self.variables["DHAN_CLIENT_ID"],
            "Accept": "application/json",
        }

    def _get(self, path: str, order_id: str | None = None) -> Any:
        """GET a JSON answer; typed errors for refusals."""
        response = self.request("GET", path, headers=self._headers())
        body = self.json_of(response) if response.content else None
        code = str(body.get("errorCode") or "") if isinstance(body, dict) else ""
        if response.status_code in (401, 403) or code in AUTH_ERROR_CODES:
            raise AuthExpired(self.auth_message)
        if order_id is not None and response.status_code == 404:
            raise OrderNotFound(f"Dhan does not know order {order_id}")
        if response.status_code == 429 or response.status_code >= 500:
            raise Unavailable(f"Dhan REST answered {response.status_code} after retries; will retry at the next run")
        if response.status_code != 200 or (isinstance(body, dict) and code):
            message = body.get("errorMessage") if isinstance(body, dict) else None
            detail = str(message or code or "unexpected body")[:120]
            raise BadResponse(f"Dhan REST answered {response.status_code}: {detail}")
        return body

    def orders(self) -> list[dict[str, Any]]:
        """Today's orders: a JSON array of order dicts."""
        body = self._get("/v2/orders")
        if body is None:
            return []
        if not isinstance(body, list) or not all(isinstance(row, dict) for row in body):
            raise BadResponse("Dhan REST answered /v2/orders without a list of orders")
        return self.checked_rows(body)

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """Dhan keeps no history: the order's current row (an object, or a one-item list)."""
        body = self._get(f"/v2/orders/{self.path_segment(order_id)}", order_id=order_id)
        rows = self.checked_rows(body if isinstance(body, list) else [body])
        if not rows or not all(isinstance(row, dict) for row in rows):
            raise OrderNotFound(f"Dhan does not know order {order_id}")
        return rows

    def order_id(self, row: dict[str, Any]) -> str | None:
        """Dhan's orderId."""
        value = row.get("orderId")
        return str(value) if value not in (None, "") else None
