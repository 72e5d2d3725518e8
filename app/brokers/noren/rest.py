"""The Noren family's order book: OrderBook and SingleOrdHist (docs/reconcile.md, docs/brokers.md §5.4).

Two dialects, chosen by the broker's declaration (app/brokers/noren/family.py):

- Noren's (Flattrade, Shoonya, Zebu): POST `/OrderBook` and `/SingleOrdHist` with the form body
  `jData=<json>&jKey=<token>`; the answer is a list of rows, or `{"stat":"Not_Ok","emsg":...}`;
- Firstock's: POST `/orderBook` and `/singleOrderHistory` with the JSON body `{"userId","jKey"[,"orderNumber"]}`;
  the answer is `{"status":"success","data":[...]}` with camelCase rows, renamed here onto the Noren keys.
"""

from __future__ import annotations

import json
from datetime import timedelta, timezone
from typing import Any, ClassVar

from app.brokers.noren.family import FIRSTOCK_JSON, NorenBroker
from app.brokers.rest import (
    AuthExpired,
    BadResponse,
    OrderBookClient,
    OrderNotFound,
    Unavailable,
    parse_time,
    sort_by_time,
)

# norentm is "HH:MM:SS dd-mm-YYYY"; exch_tm "dd-mm-YYYY HH:MM:SS" (both IST).
NOREN_TM_FORMATS = ("%H:%M:%S %d-%m-%Y",)
EXCH_TM_FORMATS = ("%d-%m-%Y %H:%M:%S",)
IST = timezone(timedelta(hours=5, minutes=30))

#: Firstock's camelCase row keys -> the Noren keys the adapter reads (docs/brokers.md §5.4) [3rd].
FIRSTOCK_TO_NOREN = {
    "orderNumber": "norenordno",
    "userId": "uid",
    "exchange": "exch",
    "tradingSymbol": "tsym",
    "quantity": "qty",
    "price": "prc",
    "product": "prd",
    "transactionType": "trantype",
    "priceType": "prctyp",
    "retention": "ret",
    "fillShares": "fillshares",
    "averagePrice": "avgprc",
    "rejectReason": "rejreason",
    "exchangeOrderId": "exchordid",
    "cancelQuantity": "cancelqty",
    "triggerPrice": "trgprc",
    "exchangeTime": "exch_tm",
    "orderTime": "norentm",
    "reportType": "rpt",
    "remarks": "remarks",
}
FIRSTOCK_PATHS = ("/orderBook", "/singleOrderHistory")
NOREN_PATHS = ("/OrderBook", "/SingleOrdHist")


class NorenClient(OrderBookClient):
    """One Noren broker's book; its variables, names and dialect come from the subclass's `family`."""

    family: ClassVar[NorenBroker]
    rate = "5/second"  # undocumented for every Noren broker (docs/brokers.md §10): a cautious figure

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """The broker's names and variables, from its declaration."""
        super().__init_subclass__(**kwargs)
        family = cls.__dict__.get("family")
        if family is None:
            return
        cls.broker = family.name
        cls.title = family.title
        cls.credentials = (family.var("USER_ID"), family.var("TOKEN"))
        cls.url_variable = family.var("API_URL")
        cls.limit_variable = family.var("USER_ID")  # one window per Noren user (docs/reconcile.md)
        cls.auth_message = f"{family.title} session expired or invalid: log in again or refresh {family.var('TOKEN')}"

    @property
    def firstock(self) -> bool:
        """True for Firstock's JSON dialect."""
        return self.family.rest == FIRSTOCK_JSON

    def _post(self, path: str, order_id: str | None = None) -> list[dict[str, Any]]:
        """POST a book request; a list of rows, or typed errors for a refusing answer."""
        uid, token = self.variables[self.family.var("USER_ID")], self.variables[self.family.var("TOKEN")]
        if self.firstock:
            body: dict[str, Any] = {"userId": uid, "jKey": token}
            if order_id is not None:
                body["orderNumber"] = order_id
            response = self.request("POST", path, json=body)
        else:
            jdata = {"uid": uid, "ordersource": "API"}
            if order_id is not None:
                jdata["norenordno"] = order_id
            form = {"jData": json.dumps(jdata, separators=(",", ":")), "jKey": token}
            response = self.request("POST", path, data=form)
        if response.status_code == 429 or response.status_code >= 500:
            raise Unavailable(
                f"{self.title} REST answered {response.status_code} after retries; will retry at the next run"
            )
        if response.status_code in (401, 403):
            raise AuthExpired(self.auth_message)
        body = self.json_of(response)
        rows = self._firstock_rows(body, order_id) if self.firstock else self._noren_rows(body, order_id)
        if response.status_code != 200 or not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise BadResponse(f"{self.title} REST answered {response.status_code} without a list of orders")
        return self.checked_rows(rows)

    def _noren_rows(self, body: Any, order_id: str | None) -> Any:
        """Noren's answer: a list, or `{"stat":"Not_Ok","emsg":...}`."""
        if isinstance(body, dict) and body.get("stat") == "Not_Ok":
            return self._refusal(str(body.get("emsg") or ""), order_id)
        return body

    def _firstock_rows(self, body: Any, order_id: str | None) -> Any:
        """Firstock's answer: `{"status":"success","data":[...]}`, or `{"status":"failed","message"|"error"}`."""
        if not isinstance(body, dict):
            return None
        if str(body.get("status", "")).lower() != "success":
            error = body.get("error")
            message = error.get("message") if isinstance(error, dict) else error
            return self._refusal(str(message or body.get("message") or ""), order_id)
        data = body.get("data")
        return [] if data in (None, "") else data

    def _refusal(self, message: str, order_id: str | None) -> list[dict[str, Any]]:
        """A refusing answer: an expired session, no data (an empty book, an unknown order), or an error."""
        lowered = message.lower()
        if any(word in lowered for word in ("session expired", "invalid session", "invalid access", "invalid jkey")):
            raise AuthExpired(self.auth_message)
        if "no data" in lowered or "not found" in lowered:  # NorenRestApi treats it as none
            if order_id is not None:
                raise OrderNotFound(f"{self.title} does not know order {order_id}")
            return []
        raise BadResponse(f"{self.title} REST refused the request: {message[:120]}")

    def orders(self) -> list[dict[str, Any]]:
        """Today's orders."""
        return self._post((FIRSTOCK_PATHS if self.firstock else NOREN_PATHS)[0])

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """One order's rows; Noren sends them newest first, sorted here oldest first by norentm."""
        path = (FIRSTOCK_PATHS if self.firstock else NOREN_PATHS)[1]
        rows = [self.noren_keys(row) for row in self._post(path, self.checked_id(order_id))]
        return sort_by_time(rows, _row_time, newest_first=True)

    def noren_keys(self, row: dict[str, Any]) -> dict[str, Any]:
        """A row with Noren keys: Firstock's camelCase renamed (Noren keys win), others as they are."""
        if not self.firstock:
            return row
        renamed = dict(row)
        for camel, noren in FIRSTOCK_TO_NOREN.items():
            if camel in row and noren not in row:
                renamed[noren] = row[camel]
        return renamed

    def order_id(self, row: dict[str, Any]) -> str | None:
        """Noren's norenordno (Firstock's orderNumber)."""
        value = self.noren_keys(row).get("norenordno")
        return str(value) if value not in (None, "") else None

    def to_payload(self, row: dict[str, Any]) -> dict[str, Any]:
        """History rows name the report type `rpt` (the adapter reads `reporttype`) and carry the OMS time
        as `norentm` text where the feed's `om` message has `tm` in epoch seconds: both are given the
        feed's spelling, so an update seen both ways is one event when its exch_tm is blank [inferred]."""
        payload = dict(self.noren_keys(row))
        if "reporttype" not in payload and payload.get("rpt"):
            payload["reporttype"] = payload["rpt"]
        if not payload.get("tm"):
            moment = parse_time(payload.get("norentm"), NOREN_TM_FORMATS)
            if moment is not None:
                payload["tm"] = str(int(moment.replace(tzinfo=IST).timestamp()))
        payload.pop("stat", None)
        return payload


def _row_time(row: dict[str, Any]):
    """The OMS time of the row (norentm), else the exchange's."""
    return parse_time(row.get("norentm"), NOREN_TM_FORMATS) or parse_time(row.get("exch_tm"), EXCH_TM_FORMATS)
