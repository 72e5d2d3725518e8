"""Symphony XTS order book: GET /interactive/orders and one order's trail, GET /interactive/orders?appOrderID=.

Auth is the session token as the `Authorization` header, bare (Connect.py `_request`). Answers are
`{"type": "success", "result": [...]}`; a refused token is HTTP 400 `{"type": "error", "description": "Invalid
Token"}` (Connect.py raises XTSTokenException for it), 401/403 the same (docs/brokers.md §14.3).
"""

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
from app.brokers.xts.adapter import XTS_TIME_FORMATS
from app.brokers.xts.root import deployment_root

#: Words of an error answer that mean the token is not (or no longer) good.
TOKEN_WORDS = ("invalid token", "token expired", "session expired", "unauthori", "logged out")


class XtsClient(OrderBookClient):
    """One XTS deployment's interactive REST (its root URL per account), one rate window per userID."""

    broker = "xts"
    credentials = ("XTS_USER_ID", "XTS_TOKEN")
    url_variable = "XTS_ROOT_URL"
    rate = "1/second"  # undocumented per deployment (docs/brokers.md §14.3): a cautious figure
    limit_variable = "XTS_USER_ID"
    auth_message = "XTS refused the session token (Invalid Token): log in again or paste a new token"
    title = "XTS"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            self.base_url = deployment_root(self.variables)
        except ValueError as exc:
            raise BadResponse(str(exc)) from None

    def _get(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """GET /interactive/orders with `params`; the result rows, or typed errors."""
        headers = {"Authorization": self.variables["XTS_TOKEN"], "Accept": "application/json"}
        response = self.request("GET", "/interactive/orders", params=params, headers=headers)
        if response.status_code == 429 or response.status_code >= 500:
            raise Unavailable(f"XTS REST answered {response.status_code} after retries; will retry at the next run")
        if response.status_code in (401, 403):
            raise AuthExpired(self.auth_message)
        body = self.json_of(response)
        if not isinstance(body, dict):
            raise BadResponse(f"XTS REST answered {response.status_code} without a JSON object")
        if str(body.get("type", "")).lower() == "error" or response.status_code != 200:
            description = str(body.get("description") or "")
            if any(word in description.lower() for word in TOKEN_WORDS):
                raise AuthExpired(self.auth_message)
            if "appOrderID" in params and response.status_code in (400, 404):
                raise OrderNotFound(f"XTS does not know order {params['appOrderID']}")
            raise BadResponse(f"XTS REST refused the request ({response.status_code}): {description[:120]}")
        result = body.get("result")
        if result in (None, ""):
            return []
        if not isinstance(result, list) or not all(isinstance(row, dict) for row in result):
            raise BadResponse("XTS REST answered success without a list of orders")
        return self.checked_rows(result)

    def orders(self) -> list[dict[str, Any]]:
        """Today's orders (an investor client's own: no clientID parameter, as the SDK for isInvestorClient)."""
        return self._get({})

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """The order's trail ("Pending New to New, New to PartiallyFilled…"), sorted oldest first by its times."""
        rows = self._get({"appOrderID": self.checked_id(order_id)})
        if not rows:
            raise OrderNotFound(f"XTS does not know order {order_id}")
        return sort_by_time(rows, _row_time, newest_first=False)

    def order_id(self, row: dict[str, Any]) -> str | None:
        """AppOrderID, a number on the wire."""
        value = row.get("AppOrderID")
        return str(value) if value not in (None, "") else None


def _row_time(row: dict[str, Any]):
    """The row's last update, else the exchange's time, else when it was generated."""
    for key in ("LastUpdateDateTime", "ExchangeTransactTime", "OrderGeneratedDateTime"):
        moment = parse_time(row.get(key), XTS_TIME_FORMATS)
        if moment is not None:
            return moment
    return None
