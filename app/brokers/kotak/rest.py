"""Kotak Neo order book: GET /quick/user/orders and POST /quick/order/history (docs/brokers.md §13).

Both live under the session's baseUrl (tradeApiValidate names it per account) with headers `Auth: <token>`,
`Sid: <sid>` and `neo-fin-key: neotradeapi`; answers are `{"stat":"Ok","stCode":200,"data":[…]}`, errors
`{"stat":"Not_Ok","emsg":…}`.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from app.brokers.kotak.session import parse_session
from app.brokers.rest import (
    AuthExpired,
    BadResponse,
    OrderBookClient,
    OrderNotFound,
    Unavailable,
    parse_time,
    sort_by_time,
)
from app.config import Config
from app.settings import BrokerSettings

NEO_FIN_KEY = "neotradeapi"
#: flDtTm / ordDtTm, "20-Jul-2025 20:21:42" (IST).
KOTAK_TIME_FORMATS = ("%d-%b-%Y %H:%M:%S", "%d-%m-%Y %H:%M:%S")
#: Words of a Not_Ok answer that mean the session is no longer valid [inferred].
AUTH_WORDS = ("session", "unauthor", "invalid token", "expired", "invalid sid", "login")


class KotakClient(OrderBookClient):
    """The session's token and sid as headers, at the session's baseUrl; no published read limit."""

    broker = "kotak"
    credentials = ("KOTAK_UCC", "KOTAK_SESSION")
    url_variable = "KOTAK_API_URL"
    rate = "5/second"  # undocumented (docs/brokers.md §13): a cautious figure
    limit_variable = "KOTAK_UCC"
    auth_message = "Kotak Neo session expired or invalid: log in again (a new session)"
    title = "Kotak Neo"

    def __init__(
        self, config: Config, session: requests.Session | None = None, *, variables: BrokerSettings | None = None
    ) -> None:
        super().__init__(config, session, variables=variables)
        self.parts = parse_session(self.variables["KOTAK_SESSION"])
        if self.parts is not None and self.parts.base_url:
            self.base_url = self.parts.base_url

    def _headers(self) -> dict[str, str]:
        """Kotak's session headers (Order Reports: Auth, Sid, neo-fin-key)."""
        if self.parts is None:
            raise AuthExpired("KOTAK_SESSION is not <token>|<sid>|<baseUrl>: log in again")
        parts = self.parts
        return {"Auth": parts.token, "Sid": parts.sid, "neo-fin-key": NEO_FIN_KEY, "accept": "application/json"}

    def _call(self, method: str, path: str, order_id: str | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        """One call answering `{"stat":"Ok","data":[...]}`; typed errors otherwise."""
        response = self.request(method, path, headers=self._headers(), **kwargs)
        if response.status_code in (401, 403):
            raise AuthExpired(self.auth_message)
        if response.status_code == 429 or response.status_code >= 500:
            raise Unavailable(
                f"Kotak Neo REST answered {response.status_code} after retries; will retry at the next run"
            )
        body = self.json_of(response) if response.content.strip() else None
        if not isinstance(body, dict):
            raise BadResponse(f"Kotak Neo REST answered {response.status_code} without a JSON object")
        if str(body.get("stat", "")).lower() != "ok":
            message = str(body.get("emsg") or body.get("message") or "")
            lowered = message.lower()
            if str(body.get("stCode")) in ("401", "403") or any(word in lowered for word in AUTH_WORDS):
                raise AuthExpired(self.auth_message)
            if "no data" in lowered or "not found" in lowered:
                if order_id is not None:
                    raise OrderNotFound(f"Kotak Neo does not know order {order_id}")
                return []
            raise BadResponse(f"Kotak Neo REST refused the request: {message[:120]}")
        data = body.get("data")
        if data is None:
            return []
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise BadResponse("Kotak Neo REST answered without a list of orders in data")
        return self.checked_rows(data)

    def orders(self) -> list[dict[str, Any]]:
        """Today's orders."""
        return self._call("GET", "/quick/user/orders")

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """Every status of one order, oldest first by flDtTm (Kotak's sample lists the newest first)."""
        jdata = json.dumps({"nOrdNo": self.checked_id(order_id)}, separators=(",", ":"))
        rows = self._call("POST", "/quick/order/history", order_id, data={"jData": jdata})
        if not rows:
            raise OrderNotFound(f"Kotak Neo does not know order {order_id}")
        return sort_by_time(rows, _row_time, newest_first=True)

    def order_id(self, row: dict[str, Any]) -> str | None:
        """Kotak's nOrdNo."""
        value = row.get("nOrdNo")
        return str(value) if value not in (None, "") else None


def _row_time(row: dict[str, Any]):
    """When the row's status was reached: flDtTm (history), else the order's ordDtTm."""
    return parse_time(row.get("flDtTm"), KOTAK_TIME_FORMATS) or parse_time(row.get("ordDtTm"), KOTAK_TIME_FORMATS)
