"""The one normalized order event every broker and feed is turned into (docs/interface.md)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from typing import Any

from app.brokers.registry import BROKER_NAMES
from app.brokers.spec import status_word


class OrderStatus:
    """Normalized statuses (docs/brokers.md §2)."""

    #: Accepted by the broker's OMS, not yet at the exchange.
    PENDING = "PENDING"
    #: Resting at the exchange, nothing filled.
    OPEN = "OPEN"
    #: A stop order waiting for its trigger.
    TRIGGER_PENDING = "TRIGGER_PENDING"
    #: 0 < filled < quantity; derived from quantities, never from status words.
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    #: Terminal: everything filled.
    FILLED = "FILLED"
    #: Terminal: cancelled (possibly after a partial fill; filled_quantity says).
    CANCELLED = "CANCELLED"
    #: Terminal: refused by the broker or the exchange.
    REJECTED = "REJECTED"
    #: Terminal: validity ran out.
    EXPIRED = "EXPIRED"

    ALL = (PENDING, OPEN, TRIGGER_PENDING, PARTIALLY_FILLED, FILLED, CANCELLED, REJECTED, EXPIRED)
    TERMINAL = frozenset({FILLED, CANCELLED, REJECTED, EXPIRED})
    #: Progress rank used by the state machine: a lower rank never replaces a higher one.
    RANK = {
        PENDING: 0,
        OPEN: 1,
        TRIGGER_PENDING: 1,
        PARTIALLY_FILLED: 2,
        FILLED: 3,
        CANCELLED: 3,
        REJECTED: 3,
        EXPIRED: 3,
    }


#: Derived from the broker registry (app/brokers/registry.py).
BROKERS = BROKER_NAMES
#: How an update arrived: a broker's HTTP postback, its WebSocket, or a read of its REST order book.
SOURCES = ("postback", "websocket", "reconcile")


@dataclass(frozen=True)
class OrderEvent:
    """One order update, normalized; `raw` is the broker's payload as received."""

    broker: str
    source: str
    order_id: str
    status: str
    broker_status: str | None
    received_at: str
    raw: Any = field(repr=False)
    account_id: str | None = None
    exchange_order_id: str | None = None
    side: str | None = None
    exchange: str | None = None
    symbol: str | None = None
    product: str | None = None
    order_type: str | None = None
    quantity: int | None = None
    filled_quantity: int | None = None
    pending_quantity: int | None = None
    price: float | None = None
    trigger_price: float | None = None
    average_price: float | None = None
    reason: str | None = None
    tag: str | None = None
    exchange_time: str | None = None
    #: True when the update is a modification (Kite UPDATE without a fill or MODIFY PENDING, Noren AMO MODIFIED...).
    modified: bool = False
    #: The broker's report or message type where it sends one (Noren reporttype, Jainam MessageType).
    report_type: str | None = None

    @cached_property
    def dedup_key(self) -> str:
        """What the broker said, not how it was delivered (docs/brokers.md §7).

        Keyed on the broker's own status word (folded, so "COMPLETE" by postback and by WebSocket match),
        its report type and the modification flag, never on our mapping of them: PUT ORDER REQ RECEIVED and
        VALIDATION PENDING are two updates though both are PENDING. The fields are ones a postback, a
        WebSocket message and a REST order-book row of the same update all carry, so each of them is one event.
        """
        said = status_word(self.broker_status) if self.broker_status is not None else "=" + self.status
        content = [
            self.broker,
            self.order_id,
            said,
            status_word(self.report_type) if self.report_type is not None else None,
            self.modified,
            _num(self.filled_quantity),
            _num(self.quantity),
            _num(self.price),
            _num(self.trigger_price),
            _num(self.average_price),
            self.exchange_time,
        ]
        return hashlib.sha256(json.dumps(content, separators=(",", ":")).encode()).hexdigest()

    @cached_property
    def id(self) -> str:
        """Stable event id, derived from the content so every arrival of an update gets the same one."""
        return "evt_" + self.dedup_key[:32]

    def to_dict(self) -> dict[str, Any]:
        """The event as forwarded and listed; `sequence` is added when it is stored."""
        data = {"id": self.id}
        data.update(asdict(self))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OrderEvent:
        """Inverse of to_dict (extra keys such as id and sequence are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _num(value: float | int | None) -> str | None:
    """Canonical text of a number so 10, 10.0 and "10.00" hash alike."""
    if value is None:
        return None
    number = float(value)
    return str(int(number)) if number == int(number) else repr(number)
