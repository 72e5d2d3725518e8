"""The Noren family's adapter (Flattrade, Shoonya, Zebu, Firstock): Noren `om` keys and the Tiqs camelCase shape.

Docs: finserv-docs / gopocket Noren order feed, https://docs.tiqs.in/documentation/postbacks;
docs/brokers.md §5. One class for the family: a broker's adapter (app/brokers/<name>/adapter.py) only names
its spec. The Tiqs shape is a 1:1 camelCase rename of the Noren `om` message (§5.2), so it is
renamed onto the Noren keys and both share one schema and one status map.
"""

from __future__ import annotations

from typing import Any

from marshmallow import pre_load

from app.brokers.base import BrokerAdapter, BrokerSchema, code_from, pending_from
from app.brokers.spec import status_word
from app.events import OrderEvent, OrderStatus
from app.times import epoch_to_utc_iso, ist_to_utc_iso
from app.wire.fields import LenientInt, LenientNumber, LenientStr, blank_to_none

# exch_tm is "dd-mm-YYYY hh:MM:SS" in IST; "01-01-1980 00:00:00" means none (docs/brokers.md §5.1, seed 001).
NOREN_TIME_FORMATS = ("%d-%m-%Y %H:%M:%S",)

# Tiqs camelCase key (canonical) -> Noren key (canonical) (docs/brokers.md §5.2: a 1:1 rename).
TIQS_TO_NOREN = {
    "id": "norenordno",
    "userid": "uid",
    "exchange": "exch",
    "symbol": "tsym",
    "price": "prc",
    "product": "prd",
    "transactiontype": "trantype",
    "order": "prctyp",
    "retention": "ret",
    "avgprice": "avgprc",
    "fillqty": "flqty",
    "fillprice": "flprc",
    "fillid": "flid",
    "filltime": "fltm",
    "reason": "rejreason",
    "exchangeorderid": "exchordid",
    "triggerprice": "trgprc",
    "exchangetime": "exchtm",
    "timestamp": "tm",
    "disclosedqty": "dscqty",
}
TIQS_TYPE = "orderupdate"
REQUIRED_KEYS = ("norenordno", "status")

# prctyp -> normalized order type (docs/brokers.md §5.1).
ORDER_TYPES = {"LMT": "LIMIT", "MKT": "MARKET", "SL-LMT": "SL", "SL-MKT": "SL-M"}
# prd/pcode letters -> the usual product names; others pass through upper-cased.
PRODUCTS = {"C": "CNC", "I": "MIS", "M": "NRML", "H": "CO", "B": "BO"}
SIDES = {"B": "BUY", "S": "SELL", "BUY": "BUY", "SELL": "SELL"}

_ORDER_ID_REQUIRED = (
    'missing: expected Noren keys (norenordno, status, qty, ...) or the camelCase shape (id with "type": '
    '"orderUpdate", status, qty, ...)'
)


class NorenOrderSchema(BrokerSchema):
    """The Noren `om` field set (docs/brokers.md §5.1); every value arrives as a string."""

    order_id = LenientStr(data_key="norenordno", required=True, error_messages={"required": _ORDER_ID_REQUIRED})
    status = LenientStr(data_key="status", required=True)
    report_type = LenientStr(data_key="reporttype")
    uid = LenientStr(data_key="uid")
    actid = LenientStr(data_key="actid")
    exchange = LenientStr(data_key="exch")
    symbol = LenientStr(data_key="tsym")
    product = LenientStr(data_key="prd")
    side = LenientStr(data_key="trantype")
    order_type = LenientStr(data_key="prctyp")
    quantity = LenientInt(data_key="qty")
    fill_shares = LenientInt(data_key="fillshares")
    cancel_qty = LenientInt(data_key="cancelqty")
    price = LenientNumber(data_key="prc")
    trigger_price = LenientNumber(data_key="trgprc")
    average_price = LenientNumber(data_key="avgprc")
    reason = LenientStr(data_key="rejreason")
    exchange_order_id = LenientStr(data_key="exchordid")
    remarks = LenientStr(data_key="remarks")
    exchange_time = LenientStr(data_key="exchtm")
    epoch_time = LenientStr(data_key="tm")

    @pre_load
    def to_noren_keys(self, data: Any, **kwargs: Any) -> Any:
        """Rename the Tiqs camelCase shape onto Noren keys; Noren keys win where both are present."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "prd" not in data and "pcode" in data:  # Flattrade and Firstock spell prd as pcode (§5.1)
            data["prd"] = data["pcode"]
        if (
            "reporttype" not in data and "rpt" in data
        ):  # SingleOrdHist rows spell reporttype as rpt (docs/brokers.md §5.4)
            data["reporttype"] = data["rpt"]
        if "norenordno" not in data and _is_tiqs(data):
            for camel, noren in TIQS_TO_NOREN.items():
                if camel in data:
                    data.setdefault(noren, data[camel])
        for key in REQUIRED_KEYS:  # a blank id or status counts as missing, not as null
            if blank_to_none(data.get(key)) is None:
                data.pop(key, None)
        return data


class NorenAdapter(BrokerAdapter):
    """Noren postbacks are unsigned (docs/brokers.md §1): the secret path token is the gate."""

    # Status words (REJECT, New, Replaced, AMO ... included) and the route come from the subclass's spec
    # (app/brokers/noren/family.py); OPEN and COMPLETE are then checked against the quantities in _status().
    schema = NorenOrderSchema()

    #: reporttype of a modify ack ([unconfirmed] in §5.1; harmless when absent).
    MODIFY_REPORT_TYPES = frozenset({"REPLACED"})

    def normalize(self, data: dict[str, Any], raw: Any, *, source: str, received_at: str) -> OrderEvent:
        """Noren fields to the event; the status needs fillshares against qty (docs/brokers.md §5.3)."""
        broker_status = data["status"].upper()
        quantity = data["quantity"]
        filled = self._filled(broker_status, quantity, data["fill_shares"], data["cancel_qty"])
        status = self._status(broker_status, quantity, filled)
        return OrderEvent(
            broker=self.name,
            source=source,
            order_id=data["order_id"],
            status=status,
            broker_status=broker_status,
            received_at=received_at,
            raw=raw,
            account_id=data["actid"] or data["uid"],
            exchange_order_id=data["exchange_order_id"],
            side=SIDES.get((data["side"] or "").upper()),
            exchange=code_from({}, data["exchange"]),
            symbol=data["symbol"],
            product=code_from(PRODUCTS, data["product"]),
            order_type=code_from(ORDER_TYPES, data["order_type"]),
            quantity=quantity,
            filled_quantity=filled,
            pending_quantity=pending_from(status, quantity, filled),  # Noren sends no pending figure
            price=data["price"],
            trigger_price=data["trigger_price"],
            average_price=data["average_price"],
            reason=data["reason"],
            tag=data["remarks"],
            exchange_time=_exchange_time(data["exchange_time"], data["epoch_time"]),
            modified=self._modified(broker_status, data["report_type"]),
            report_type=data["report_type"],
        )

    def _filled(
        self, broker_status: str, quantity: int | None, fill_shares: int | None, cancel_qty: int | None
    ) -> int | None:
        """fillshares is cumulative (flqty is this fill only); without it the status and cancelqty tell.

        COMPLETE means all of qty; a cancel leaves qty - cancelqty filled; a pending, open, untriggered or
        rejected order reports fills in fillshares, so none means nothing filled yet (seed 001 samples).
        """
        if fill_shares is not None:
            return fill_shares
        status = self.map_status(broker_status)
        if status == OrderStatus.FILLED:
            return quantity
        if status == OrderStatus.CANCELLED:
            return max(quantity - cancel_qty, 0) if quantity is not None and cancel_qty is not None else None
        if status in (OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.TRIGGER_PENDING, OrderStatus.REJECTED):
            return 0
        return None

    def _status(self, broker_status: str, quantity: int | None, filled: int | None) -> str:
        """Normalized status; COMPLETE "can be a partial fill" (seed 001), so quantities decide (§2, §5.3)."""
        return self.status_of(broker_status, quantity, filled)

    def _modified(self, broker_status: str, report_type: str | None) -> bool:
        """AMO MODIFIED (and a Replaced report) flag a modification, not a new state (§2, §5.3)."""
        if status_word(broker_status) in self.MODIFY_STATUSES:
            return True
        return status_word(report_type or "") in self.MODIFY_REPORT_TYPES


def _is_tiqs(data: dict[str, Any]) -> bool:
    """The Tiqs camelCase shape: an `id` and `"type": "orderUpdate"` (docs/brokers.md §5.2)."""
    kind = data.get("type")
    return blank_to_none(data.get("id")) is not None and isinstance(kind, str) and kind.strip().lower() == TIQS_TYPE


def _exchange_time(exch_tm: str | None, tm: str | None) -> str | None:
    """exch_tm (IST) as UTC; when blank or the 01-01-1980 sentinel, the OMS time `tm` (epoch seconds)."""
    return ist_to_utc_iso(exch_tm, NOREN_TIME_FORMATS) or epoch_to_utc_iso(tm)
