"""Flattrade (Noren OMS) order book: POST /OrderBook and /SingleOrdHist (docs/reconcile.md, Noren)."""

from __future__ import annotations

import json
from datetime import timedelta, timezone
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

# norentm is "HH:MM:SS dd-mm-YYYY"; exch_tm "dd-mm-YYYY HH:MM:SS" (both IST).
NOREN_TM_FORMATS = ("%H:%M:%S %d-%m-%Y",)
EXCH_TM_FORMATS = ("%d-%m-%Y %H:%M:%S",)
IST = timezone(timedelta(hours=5, minutes=30))


class FlattradeClient(OrderBookClient):
    """Form body `jData=<json>&jKey=<token>`; errors are `{"stat":"Not_Ok","emsg":...}`; no documented limit."""

    broker = "flattrade"
    credentials = ("NOREN_USER_ID", "NOREN_TOKEN")
    url_variable = "NOREN_API_URL"
    rate = "5/second"  # undocumented (docs/brokers.md §10): a cautious figure
    limit_variable = "NOREN_USER_ID"  # one window per Noren user (docs/reconcile.md)
    auth_message = "Flattrade session expired or invalid: refresh NOREN_TOKEN"
    title = "Flattrade"

    def _post(self, path: str, **extra: str) -> list[dict[str, Any]]:
        """POST a Noren request; a list of rows, or typed errors for a `Not_Ok` answer."""
        jdata = {"uid": self.variables["NOREN_USER_ID"], "ordersource": "API", **extra}
        form = {"jData": json.dumps(jdata, separators=(",", ":")), "jKey": self.variables["NOREN_TOKEN"]}
        response = self.request("POST", path, data=form)
        if response.status_code == 429 or response.status_code >= 500:
            raise Unavailable(
                f"Flattrade REST answered {response.status_code} after retries; will retry at the next run"
            )
        body = self.json_of(response)
        if isinstance(body, dict) and body.get("stat") == "Not_Ok":
            message = str(body.get("emsg") or "")
            lowered = message.lower()
            if "session expired" in lowered or "invalid session" in lowered or "invalid access" in lowered:
                raise AuthExpired(self.auth_message)
            if "no data" in lowered:  # an empty book or an unknown order (NorenRestApi treats it as none)
                if "norenordno" in extra:
                    raise OrderNotFound(f"Flattrade does not know order {extra['norenordno']}")
                return []
            raise BadResponse(f"Flattrade REST refused the request: {message[:120]}")
        if response.status_code in (401, 403):
            raise AuthExpired(self.auth_message)
        if response.status_code != 200 or not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
            raise BadResponse(f"Flattrade REST answered {response.status_code} without a list of orders")
        return self.checked_rows(body)

    def orders(self) -> list[dict[str, Any]]:
        """Today's orders."""
        return self._post("/OrderBook")

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """One order's rows; Noren sends them newest first, sorted here oldest first by norentm."""
        rows = self._post("/SingleOrdHist", norenordno=self.checked_id(order_id))
        return sort_by_time(rows, _row_time, newest_first=True)

    def order_id(self, row: dict[str, Any]) -> str | None:
        """Noren's norenordno."""
        value = row.get("norenordno")
        return str(value) if value not in (None, "") else None

    def to_payload(self, row: dict[str, Any]) -> dict[str, Any]:
        """History rows name the report type `rpt` (the adapter reads `reporttype`) and carry the OMS time
        as `norentm` text where the feed's `om` message has `tm` in epoch seconds: both are given the
        feed's spelling, so an update seen both ways is one event when its exch_tm is blank [inferred]."""
        payload = dict(row)
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
