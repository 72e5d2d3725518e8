"""Jainam protrade order updates: ODIN/OMEx `ORD_NRML` and `TRD_MSG` objects, by webhook or feed.

Docs: https://protrade.jainam.in/apidocs/Webhooks; docs/brokers.md §6. A webhook (`POST
/postbacks/jainam/<POSTBACK_TOKEN>`) carries the same JSON as the order status feed
(app/brokers/jainam/feed.py); both end here.

Per-deployment settings (.env.example):
- JAINAM_STATUS_MAP: `code:STATUS,...` merged over table (a) of docs/brokers.md §6 (the numeric codes
  differ between ODIN deployments; 15 is a surveillance reject).
- JAINAM_PRICE_DIVISOR: prices arrive in paise per OMEx (seed 000: OrderPrice 227000 for ADANIENT,
  which traded near ₹2270), so the default divides by 100; set 1 where a deployment sends rupees.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from app.brokers.base import BrokerAdapter, BrokerSchema, by_quantity
from app.brokers.jainam.spec import SPEC
from app.brokers.spec import MODIFIED as MODIFIED_FLAG
from app.config import Config
from app.events import OrderEvent, OrderStatus
from app.exceptions import ConfigurationError, PostbackPayloadError
from app.times import ist_to_utc_iso
from app.wire.fields import LenientInt, LenientNumber, LenientStr

log = logging.getLogger(__name__)

#: A modification flag rather than a resting state (docs/brokers.md §2); accepted as a JAINAM_STATUS_MAP value.
MODIFIED = MODIFIED_FLAG

# Table (a) of docs/brokers.md §6, the default numeric codes, and table (c)'s words: both from the spec.
DEFAULT_NUMERIC_STATUSES: dict[int, str] = {int(k): v for k, v in SPEC.status_map.items() if k.isdigit()}

# Exchange and side codes (docs/brokers.md §6, ORD_NRML fields).
EXCHANGES = {"1": "NSE", "2": "BSE", "3": "MCX", "4": "NCDEX", "5": "MCX-SX"}
SIDES = {"1": "BUY", "2": "SELL", "B": "BUY", "S": "SELL", "BUY": "BUY", "SELL": "SELL"}
GTD_EXPIRED = 4

# "01-Feb-2025 16.26.05" (seed 000), "08-May-2026 11:55:20" (OrderEntryTime), "2026-05-08 11:55:20" (TradeTime).
JAINAM_TIME_FORMATS = ("%d-%b-%Y %H.%M.%S", "%d-%b-%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d-%m-%Y %H:%M:%S")


class JainamOrderSchema(BrokerSchema):
    """ORD_NRML and TRD_MSG over canonical keys; every number may come as a number or a string."""

    message_type = LenientStr(data_key="messagetype")
    unique_code = LenientStr(data_key="uniquecode")
    order_number = LenientStr(data_key="ordernumber")
    exchange = LenientStr(data_key="exchange")
    symbol = LenientStr(data_key="symbol")
    buy_sell = LenientStr(data_key="buysell")
    original_qty = LenientInt(data_key="orderoriginalqty")
    pending_qty = LenientInt(data_key="pendingqty")
    traded_qty = LenientInt(data_key="tradedqty")
    quantity_traded_today = LenientInt(data_key="quantitytradedtoday")
    trade_qty = LenientInt(data_key="tradeqty")
    order_price = LenientNumber(data_key="orderprice")
    trigger_price = LenientNumber(data_key="triggerprice")
    traded_price = LenientNumber(data_key="tradedprice")
    order_type = LenientStr(data_key="ordertype")
    order_status = LenientStr(data_key="orderstatus")
    gtd_order_status = LenientInt(data_key="gtdorderstatus")
    reason = LenientStr(data_key="reason")
    ucc = LenientStr(data_key="ucc")
    user_id = LenientStr(data_key="userid")
    product = LenientStr(data_key="product")
    user_remarks = LenientStr(data_key="userremarks")
    order_entry_time = LenientStr(data_key="orderentrytime")
    last_modified_time = LenientStr(data_key="lastmodifiedtime")
    trade_time = LenientStr(data_key="tradetime")


class JainamAdapter(BrokerAdapter):
    """Unsigned ODIN frames; the numeric status table and the price unit are per deployment."""

    # Webhooks behind the path token and the status table come from the spec (jainam/spec.py); numeric
    # codes are looked up in numeric_statuses, the spec's defaults with JAINAM_STATUS_MAP over them.
    spec = SPEC
    schema = JainamOrderSchema()

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        variables = config.broker(self.name)
        self.numeric_statuses = parse_status_map(variables["JAINAM_STATUS_MAP"])
        self.price_divisor: float = variables["JAINAM_PRICE_DIVISOR"]

    def normalize(self, data: dict[str, Any], raw: Any, *, source: str, received_at: str) -> OrderEvent:
        """One ORD_NRML or TRD_MSG frame as the normalized event (docs/brokers.md §6 'Jainam mapping')."""
        order_id = _order_id(data)
        quantity = data["original_qty"]
        filled = _filled(data)
        broker_status = data["order_status"]
        status, modified = self._status(data, quantity, filled)
        trigger_price = self._price(data["trigger_price"])
        return OrderEvent(
            broker=self.name,
            source=source,
            order_id=order_id,
            status=status,
            broker_status=broker_status,
            received_at=received_at,
            raw=raw,
            account_id=data["ucc"] or data["user_id"],
            exchange_order_id=_nonzero(data["order_number"]),
            side=_side(data["buy_sell"]),
            exchange=_exchange(data["exchange"]),
            symbol=data["symbol"],
            product=(data["product"] or "").upper() or None,
            order_type=data["order_type"],
            quantity=quantity,
            filled_quantity=filled,
            pending_quantity=data["pending_qty"],
            price=self._price(data["order_price"]),
            trigger_price=trigger_price,
            average_price=self._average_price(data, filled),
            reason=data["reason"],
            tag=None if data["user_remarks"] in (None, "-1") else data["user_remarks"],
            exchange_time=ist_to_utc_iso(
                data["last_modified_time"] or data["trade_time"] or data["order_entry_time"], JAINAM_TIME_FORMATS
            ),
            modified=modified,
            report_type=data["message_type"],
        )

    def _status(self, data: dict[str, Any], quantity: int | None, filled: int | None) -> tuple[str, bool]:
        """Normalized status and the modified flag; quantities decide partial fills (docs/brokers.md §2)."""
        if data["gtd_order_status"] == GTD_EXPIRED:
            return OrderStatus.EXPIRED, False
        raw = data["order_status"]
        if raw is None:
            return self._status_from_trade(data, quantity, filled), False
        mapped = self._lookup(raw)
        if mapped is None:
            log.warning("jainam: OrderStatus %r is not in the table (set JAINAM_STATUS_MAP to map it)", raw)
            return self.unmapped_status(raw, quantity, filled), False
        modified = mapped == MODIFIED
        status = OrderStatus.OPEN if modified else mapped
        if status == OrderStatus.OPEN and not filled and (self._price(data["trigger_price"]) or 0) > 0:
            # No TRIGGER_PENDING code exists: infer it for an untriggered stop order (docs/brokers.md §6).
            status = OrderStatus.TRIGGER_PENDING
        return by_quantity(status, quantity, filled), modified

    def _status_from_trade(self, data: dict[str, Any], quantity: int | None, filled: int | None) -> str:
        """A TRD_MSG without OrderStatus still says how much is filled."""
        if (data["message_type"] or "").upper() == "TRD_MSG" and filled:
            return by_quantity(OrderStatus.PARTIALLY_FILLED, quantity, filled)
        raise PostbackPayloadError("invalid jainam order update: OrderStatus: Missing data for required field.")

    def is_known_status(self, raw_status: Any) -> bool:
        """A code of this deployment's table (JAINAM_STATUS_MAP included) or a known word."""
        return raw_status is not None and self._lookup(str(raw_status)) is not None

    def _lookup(self, raw: str) -> str | None:
        """A numeric code through the deployment's table, else a status word."""
        code = _as_code(raw)
        if code is not None:
            return self.numeric_statuses.get(code)
        return self.map_status(raw)

    def _price(self, value: float | None) -> float | None:
        """Rupees from the wire unit (paise by default)."""
        return None if value is None else round(value / self.price_divisor, 6)

    def _average_price(self, data: dict[str, Any], filled: int | None) -> float | None:
        """Jainam sends no average; a trade that makes up the whole fill gives it exactly (docs/brokers.md §6)."""
        if data["traded_price"] and filled and data["trade_qty"] == filled:
            return self._price(data["traded_price"])
        return None


def parse_status_map(value: str) -> dict[int, str]:
    """Table (a), with `code:STATUS,...` from JAINAM_STATUS_MAP replacing or adding entries."""
    table = dict(DEFAULT_NUMERIC_STATUSES)
    allowed = (*OrderStatus.ALL, MODIFIED)
    for item in (part.strip() for part in (value or "").split(",")):
        if not item:
            continue
        code, sep, status = item.partition(":")
        status = status.strip().upper()
        if not sep or not code.strip().isdigit() or status not in allowed:
            raise ConfigurationError(
                f"JAINAM_STATUS_MAP must look like '5:OPEN,7:FILLED,15:REJECTED' with statuses from "
                f"{list(allowed)} (got the entry {item!r})"
            )
        table[int(code)] = status
    return table


def _order_id(data: dict[str, Any]) -> str:
    """UniqueCode (the OMS id), else the exchange OrderNumber ("0" means none yet)."""
    order_id = data["unique_code"] or _nonzero(data["order_number"])
    if order_id is None:
        raise PostbackPayloadError("invalid jainam order update: UniqueCode: Missing data for required field.")
    return order_id


def _filled(data: dict[str, Any]) -> int | None:
    """Cumulative filled quantity: QuantityTradedToday (TRD_MSG) or TradedQTY, whichever is larger."""
    values = [v for v in (data["quantity_traded_today"], data["traded_qty"]) if v is not None]
    return max(values) if values else None


def _as_code(raw: str) -> int | None:
    """5, "5" and 5.0 (Choice FINX sample) are code 5; words are None."""
    try:
        number = float(raw)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number == int(number) else None


def _nonzero(value: str | None) -> str | None:
    """ODIN writes "0" for an id that does not exist yet."""
    return None if value in (None, "0") else value


def _side(value: str | None) -> str | None:
    """Buy_Sell 1 BUY, 2 SELL (also B/S and the words)."""
    if value is None:
        return None
    code = _as_code(value)
    return SIDES.get(str(code) if code is not None else value.upper())


def _exchange(value: str | None) -> str | None:
    """1 NSE, 2 BSE, 3 MCX, 4 NCDEX, 5 MCX-SX; a name passes through upper-cased."""
    if value is None:
        return None
    code = _as_code(value)
    return EXCHANGES.get(str(code)) if code is not None else value.upper()
