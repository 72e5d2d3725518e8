"""Groww order book: GET /v1/order/list, page by page (docs/brokers.md §15.1), polled every GROWW_POLL_SECONDS.

Headers `Authorization: Bearer <access token>`, `X-API-VERSION: 1.0`, `Accept: application/json`; the answer is
`{"status": "SUCCESS", "payload": {"order_list": [...]}}`, an error `{"status": "FAILURE", "error": {"code",
"message"}}`; a 401/403 is a refused token. One row per order is all there is to read (its detail is the same
row), so `has_history` is False and a differing row is queued as it is.
"""

from __future__ import annotations

from typing import Any

from app.brokers.rest import AuthExpired, BadResponse, OrderBookClient, Unavailable

#: Rows per page: the SDK's default page size (get_order_list page_size=25) [secondary].
PAGE_SIZE = 25
#: Pages read at most per poll (RECONCILE_MAX_ROWS also bounds the rows).
MAX_PAGES = 40


class GrowwClient(OrderBookClient):
    """Groww's REST order list, within its read limit (20/s, 500/min for non-trading APIs)."""

    broker = "groww"
    credentials = ("GROWW_ACCESS_TOKEN",)
    url_variable = "GROWW_API_URL"
    rate = "10/second"  # half the documented 20/s of non-trading reads (docs/brokers.md §15.1)
    limit_variable = "GROWW_ACCESS_TOKEN"  # Groww counts per user; the token is the one holder we know
    has_history = False
    auth_message = "Groww refused the access token (expired or invalid): paste a new one"
    title = "Groww"

    def _page(self, page: int) -> list[dict[str, Any]]:
        """One page of the order list."""
        headers = {
            "Authorization": f"Bearer {self.variables['GROWW_ACCESS_TOKEN']}",
            "X-API-VERSION": "1.0",
            "Accept": "application/json",
        }
        params = {"page": str(page), "page_size": str(PAGE_SIZE)}
        response = self.request("GET", "/v1/order/list", params=params, headers=headers)
        if response.status_code in (401, 403):
            raise AuthExpired(self.auth_message)
        if response.status_code == 429 or response.status_code >= 500:
            raise Unavailable(f"Groww REST answered {response.status_code} after retries; will retry at the next run")
        body = self.json_of(response)
        if not isinstance(body, dict):
            raise BadResponse(f"Groww REST answered {response.status_code} without a JSON object")
        if response.status_code != 200 or str(body.get("status", "")).upper() != "SUCCESS":
            error = body.get("error") if isinstance(body.get("error"), dict) else {}
            message = str(error.get("message") or body.get("message") or "")[:120]
            if "token" in message.lower() and ("expired" in message.lower() or "invalid" in message.lower()):
                raise AuthExpired(self.auth_message)
            raise BadResponse(f"Groww REST refused the request ({response.status_code}): {message}")
        payload = body.get("payload") if isinstance(body.get("payload"), dict) else {}
        rows = payload.get("order_list") or []
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise BadResponse("Groww REST answered SUCCESS without an order_list")
        return rows

    def orders(self) -> list[dict[str, Any]]:
        """Today's orders, every page until a short one."""
        rows: list[dict[str, Any]] = []
        for page in range(MAX_PAGES):
            batch = self._page(page)
            rows.extend(batch)
            self.checked_rows(rows)
            if len(batch) < PAGE_SIZE:
                break
        return rows

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """Not read: the book's row is the order's whole story here (has_history is False)."""
        return []

    def order_id(self, row: dict[str, Any]) -> str | None:
        """groww_order_id."""
        value = row.get("groww_order_id") or row.get("growwOrderId")
        return str(value) if value not in (None, "") else None
