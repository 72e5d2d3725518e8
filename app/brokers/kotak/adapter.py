"""Kotak Neo order updates: the `data` of `type: "order"` stream frames, and order-book and history rows.

Docs: Kotak Neo Trade API v2, "Order & Position Streaming" and "Order Reports"; docs/brokers.md §13. Every
value may come as a number or a string ("All numeric financial fields are returned as strings").
"""

from __future__ import annotations

from typing import Any

from app.brokers.base import BrokerAdapter, BrokerSchema, code_from, pending_from
from app.brokers.kotak.spec import SPEC
from app.brokers.spec import status_word
from app.events import OrderEvent
from app.times import epoch_to_utc_iso, ist_to_utc_iso
from app.wire.fields import LenientInt, LenientNumber, LenientStr

#: exSeg -> exchange (docs/brokers.md §13).
EXCHANGES = {
    "nse_cm": "NSE",
    "bse_cm": "BSE",
    "nse_fo": "NFO",
    "bse_fo": "BFO",
    "cde_fo": "CDS",
    "bcs_fo": "BCD",
    "mcx_fo": "MCX",
    "nse_com": "NCO",
    "bse_com": "BCO",
}
#: prcTp -> order type: `L` on placement and in the book, `LMT`/`MKT` on the stream (docs/brokers.md §13).
ORDER_TYPES = {"L": "LIMIT", "LMT": "LIMIT", "MKT": "MARKET", "SL": "SL", "SL-M": "SL-M", "SLM": "SL-M"}
SIDES = {"B": "BUY", "S": "SELL", "BUY": "BUY", "SELL": "SELL"}
#: "16-Feb-2026 12:29:31" (ordDtTm, flDtTm, exTm) in IST; "2026/02/16 12:29:31" (hsUpTm).
KOTAK_TIME_FORMATS = ("%d-%b-%Y %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%d-%m-%Y %H:%M:%S")


class KotakOrderSchema(BrokerSchema):
    """An order's fields over canonical keys (nOrdNo -> nordno ...)."""

    order_id = LenientStr(data_key="nordno", required=True)
    status = LenientStr(data_key="ordst", required=True)
    quantity = LenientInt(data_key="qty")
    filled = LenientInt(data_key="fldqty")
    unfilled = LenientInt(data_key="unfldsz")
    price = LenientNumber(data_key="prc")
    trigger_price = LenientNumber(data_key="trgprc")
    average_price = LenientNumber(data_key="avgprc")
    order_type = LenientStr(data_key="prctp")
    side = LenientStr(data_key="trnstp")
    segment = LenientStr(data_key="exseg")
    trading_symbol = LenientStr(data_key="trdsym")
    symbol = LenientStr(data_key="sym")
    product = LenientStr(data_key="prod")
    reason = LenientStr(data_key="rejrsn")
    exchange_order_id = LenientStr(data_key="exordid")
    account = LenientStr(data_key="actid")
    user = LenientStr(data_key="usrid")
    broadcast_seconds = LenientStr(data_key="boesec")
    confirmed_at = LenientStr(data_key="excfmtm")
    filled_at = LenientStr(data_key="fldttm")
    ordered_at = LenientStr(data_key="orddttm")


class KotakAdapter(BrokerAdapter):
    """No postback: stream frames and book rows; quantities decide partial fills (docs/brokers.md §2)."""

    spec = SPEC
    schema = KotakOrderSchema()

    def normalize(self, data: dict[str, Any], raw: Any, *, source: str, received_at: str) -> OrderEvent:
        """Kotak's order fields to the event (docs/brokers.md §13 "Kotak mapping")."""
        broker_status = status_word(data["status"])
        quantity, filled = data["quantity"], data["filled"]
        status = self.status_of(broker_status, quantity, filled)
        return OrderEvent(
            broker=self.name,
            source=source,
            order_id=data["order_id"],
            status=status,
            broker_status=broker_status,
            received_at=received_at,
            raw=raw,
            account_id=data["account"] or data["user"],
            exchange_order_id=data["exchange_order_id"],
            side=SIDES.get((data["side"] or "").upper()),
            exchange=_exchange(data["segment"]),
            symbol=data["trading_symbol"] or data["symbol"],
            product=code_from({}, data["product"]),
            order_type=code_from(ORDER_TYPES, data["order_type"]),
            quantity=quantity,
            filled_quantity=filled,
            pending_quantity=pending_from(status, quantity, filled, data["unfilled"]),
            price=data["price"],
            trigger_price=data["trigger_price"],
            average_price=data["average_price"] or None,
            reason=data["reason"],
            exchange_time=_exchange_time(data),
            modified=broker_status in self.MODIFY_STATUSES,
        )


def _exchange(segment: str | None) -> str | None:
    """nse_cm -> NSE ...; an unknown segment passes through upper-cased."""
    if not segment:
        return None
    return EXCHANGES.get(segment.lower(), segment.upper())


def _exchange_time(data: dict[str, Any]) -> str | None:
    """The exchange's broadcast time (boeSec, epoch seconds), else its confirmation, the fill's, the order's (IST)."""
    return (
        epoch_to_utc_iso(data["broadcast_seconds"])
        or ist_to_utc_iso(data["confirmed_at"], KOTAK_TIME_FORMATS)
        or ist_to_utc_iso(data["filled_at"], KOTAK_TIME_FORMATS)
        or ist_to_utc_iso(data["ordered_at"], KOTAK_TIME_FORMATS)
    )
