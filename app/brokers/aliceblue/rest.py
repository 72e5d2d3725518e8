"""AliceBlue open-api order book: GET /orders/book and POST /orders/history (docs/brokers.md §12).

Both answer `{"status":"Ok","message":"Success","result":[…]}` with camelCase rows (brokerOrderId, orderStatus,
filledQuantity …); `to_payload` renames a row onto the Noren keys the aliceblue adapter reads, so a book row, a
webhook and a feed frame of one update normalize alike.
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

#: Times as the open-api writes them ("26-May-2025 11:42:10", docs/brokers.md §12) and as other AliceBlue
#: answers do [unconfirmed]; Noren's exch_tm is "dd-mm-YYYY HH:MM:SS".
ALICE_TIME_FORMATS = ("%d-%b-%Y %H:%M:%S", "%d-%m-%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M:%S")
NOREN_EXCH_TM = "%d-%m-%Y %H:%M:%S"
#: Book row key -> the Noren key the adapter reads (docs/brokers.md §12, "Order book rows").
ROW_TO_NOREN = {
    "brokerOrderId": "norenordno",
    "orderStatus": "status",
    "clientId": "actid",
    "exchange": "exch",
    "formattedInstrumentName": "tsym",
    "transactionType": "trantype",
    "quantity": "qty",
    "filledQuantity": "fillshares",
    "cancelledQuantity": "cancelqty",
    "price": "prc",
    "slTriggerPrice": "trgprc",
    "averageTradedPrice": "avgprc",
    "product": "prd",
    "orderType": "prctyp",
    "rejectionReason": "rejreason",
    "exchangeOrderId": "exchordid",
    "orderTag": "remarks",
}
#: Words of a refusing answer that mean the session is no longer valid [inferred].
AUTH_WORDS = ("unauthor", "session", "invalid token", "expired", "not login")


class AliceBlueClient(OrderBookClient):
    """`Authorization: Bearer <userSession>`; 1800 non-order requests per 15 minutes per user."""

    broker = "aliceblue"
    credentials = ("ALICEBLUE_USER_ID", "ALICEBLUE_SESSION")
    url_variable = "ALICEBLUE_API_URL"
    # 1800 per 15 minutes (docs/brokers.md §12): 2 a second never exceeds it and never bursts.
    rate = "2/second"
    limit_variable = "ALICEBLUE_USER_ID"
    auth_message = "AliceBlue session expired or invalid: log in again (a new userSession)"
    title = "AliceBlue"

    def _headers(self) -> dict[str, str]:
        """The bearer the open-api takes (its Postman collection: bearer auth)."""
        return {"Authorization": f"Bearer {self.variables['ALICEBLUE_SESSION']}", "Accept": "application/json"}

    def _call(self, method: str, path: str, order_id: str | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        """One call answering `{"status":"Ok","result":[...]}`; typed errors otherwise."""
        response = self.request(method, path, headers=self._headers(), **kwargs)
        if response.status_code in (401, 403):
            raise AuthExpired(self.auth_message)
        if response.status_code == 429 or response.status_code >= 500:
            raise Unavailable(
                f"AliceBlue REST answered {response.status_code} after retries; will retry at the next run"
            )
        body = self.json_of(response) if response.content.strip() else None
        if not isinstance(body, dict):
            raise BadResponse(f"AliceBlue REST answered {response.status_code} without a JSON object")
        if str(body.get("status", "")).lower() != "ok":
            message = str(body.get("message") or body.get("emsg") or "")
            if any(word in message.lower() for word in AUTH_WORDS):
                raise AuthExpired(self.auth_message)
            if "no data" in message.lower() or "not found" in message.lower():
                if order_id is not None:
                    raise OrderNotFound(f"AliceBlue does not know order {order_id}")
                return []
            raise BadResponse(f"AliceBlue REST refused the request: {message[:120]}")
        result = body.get("result")
        if result is None:
            return []
        if not isinstance(result, list) or not all(isinstance(row, dict) for row in result):
            raise BadResponse("AliceBlue REST answered without a list of orders in result")
        return self.checked_rows(result)

    def orders(self) -> list[dict[str, Any]]:
        """Today's orders."""
        return self._call("GET", "/orders/book")

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """One order's rows, oldest first by their own time (the direction AliceBlue sends is not documented)."""
        rows = self._call("POST", "/orders/history", order_id, json={"brokerOrderId": self.checked_id(order_id)})
        if not rows:
            raise OrderNotFound(f"AliceBlue does not know order {order_id}")
        return sort_by_time(rows, _row_time, newest_first=True)

    def order_id(self, row: dict[str, Any]) -> str | None:
        """AliceBlue's brokerOrderId."""
        value = row.get("brokerOrderId")
        return str(value) if value not in (None, "") else None

    def to_payload(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row with Noren keys beside its own (Noren keys already present win), its time as Noren's exch_tm."""
        payload = dict(row)
        for key, noren in ROW_TO_NOREN.items():
            if key in row and noren not in payload:
                payload[noren] = row[key]
        moment = _row_time(row)
        if moment is not None and not payload.get("exch_tm"):
            payload["exch_tm"] = moment.strftime(NOREN_EXCH_TM)
        return payload


def _row_time(row: dict[str, Any]):
    """When this state was reached: the exchange's update time, else the broker's, else the order's."""
    for key in ("exchangeUpdateTime", "brokerUpdateTime", "orderTime", "exchangeTimestamp"):
        moment = parse_time(row.get(key), ALICE_TIME_FORMATS)
        if moment is not None:
            return moment
    return None
