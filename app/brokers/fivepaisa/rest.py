"""5paisa order book: POST {base}/V3/OrderBook (docs/brokers.md §15.2), polled every FIVEPAISA_POLL_SECONDS.

The body is `{"head": {"key": <app key>}, "body": {"ClientCode": <client code>}}` with `Authorization: Bearer
<access token>`; the answer's `body.OrderBookDetail` is the list of today's orders. `body.Status` other than 0
is an error (`body.Message` says why); a 401/403 or an "invalid token" message is a refused token. 5paisa keeps
one row per order, so `has_history` is False.
"""

from __future__ import annotations

from typing import Any

from app.brokers.rest import AuthExpired, BadResponse, OrderBookClient, Unavailable

TOKEN_WORDS = ("token", "unauthori", "session", "login")


class FivepaisaClient(OrderBookClient):
    """One account's order book; one rate window per client code."""

    broker = "fivepaisa"
    credentials = ("FIVEPAISA_CLIENT_CODE", "FIVEPAISA_APP_KEY", "FIVEPAISA_ACCESS_TOKEN")
    url_variable = "FIVEPAISA_API_URL"
    rate = "2/second"  # undocumented (docs/brokers.md §15.2): a cautious figure
    limit_variable = "FIVEPAISA_CLIENT_CODE"
    has_history = False
    auth_message = "5paisa refused the access token (expired or invalid): paste a new one"
    title = "5paisa"

    def orders(self) -> list[dict[str, Any]]:
        """Today's orders."""
        body = {
            "head": {"key": self.variables["FIVEPAISA_APP_KEY"]},
            "body": {"ClientCode": self.variables["FIVEPAISA_CLIENT_CODE"]},
        }
        headers = {"Authorization": f"Bearer {self.variables['FIVEPAISA_ACCESS_TOKEN']}", "Accept": "application/json"}
        response = self.request("POST", "/V3/OrderBook", json=body, headers=headers)
        if response.status_code in (401, 403):
            raise AuthExpired(self.auth_message)
        if response.status_code == 429 or response.status_code >= 500:
            raise Unavailable(f"5paisa REST answered {response.status_code} after retries; will retry at the next run")
        answer = self.json_of(response)
        inner = answer.get("body") if isinstance(answer, dict) else None
        if response.status_code != 200 or not isinstance(inner, dict):
            raise BadResponse(f"5paisa REST answered {response.status_code} without a body object")
        if str(inner.get("Status", 0)) not in ("0", ""):
            message = str(inner.get("Message") or "")[:120]
            if any(word in message.lower() for word in TOKEN_WORDS) and "invalid" in message.lower():
                raise AuthExpired(self.auth_message)
            raise BadResponse(f"5paisa REST refused the request: {message}")
        rows = inner.get("OrderBookDetail") or []
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise BadResponse("5paisa REST answered without an OrderBookDetail list")
        return self.checked_rows(rows)

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """Not read: the book's row is the order's whole story here (has_history is False)."""
        return []

    def order_id(self, row: dict[str, Any]) -> str | None:
        """BrokerOrderId (a number on the wire)."""
        value = row.get("BrokerOrderId")
        return str(value) if value not in (None, "", 0, "0") else None
