"""The monotonic per-order state machine (docs/brokers.md §1 finding 2, §2).

Updates arrive twice, late and out of order (a partial fill after COMPLETE, two cancels per cancel),
so the state is a join over the events seen, not "the last one wins":

- a terminal status (FILLED, CANCELLED, REJECTED, EXPIRED) is never left;
- filled_quantity is the largest ever reported, and average_price is that report's (null if it has none);
- among working statuses the most advanced wins (PENDING < OPEN = TRIGGER_PENDING), later exchange
  time breaking ties; PARTIALLY_FILLED and FILLED follow from the quantities;
- prices and quantities come from the update with the latest exchange time, modifications included;
  among updates of one exchange time, from the one received last (a reconciliation receives a history's
  rows a microsecond apart in the broker's documented order, docs/reconcile.md);
- a modification (`modified`) proves the order is live (at least OPEN) but never sets a status beyond that.

A forged status cannot stick (docs/reconcile.md): Kite's checksum covers only order_id and
order_timestamp, and the other brokers sign nothing, so for a broker whose REST credentials are set a
terminal status that arrives by postback is a *claim*. Claims are kept apart from the trusted fold of
every other event; the order shows the latest pending claim with `confirmed: false` until the broker's
own REST answer (a `reconcile` event) settles it:

- a trusted terminal (a reconcile or WebSocket event, or any event of a broker without credentials)
  makes the order final (`confirmed: true`) whatever the claims said: a confirmation, or a
  contradiction that wins;
- a non-terminal reconcile event read at time T refutes every claim received more than
  CLAIM_GRACE_SECONDS before T: had the claim been true, the broker would have shown it by then;
- a claim neither confirmed nor refuted stays pending: shown, flagged, never final.

The result depends on the set of events only (the leading claim is chosen by our own receipt time,
never by what the sender wrote), so any arrival order still ends in the same state.

An `OrderState` names those layers: the state shown, the trusted fold, the pending claims and the
latest refuting read. orders.data keeps it as one JSON object, the shown fields with the layers beside
them under `_trusted`, `_claims` and `_reconciled_at` (`from_stored` and `stored` convert).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.events import OrderStatus

#: A claim received this long before a broker read that shows the order still working is refuted: it
#: covers the broker's own lag between sending a postback and showing the status over REST.
CLAIM_GRACE_SECONDS = 5.0

DESCRIPTIVE = (
    "account_id",
    "exchange_order_id",
    "side",
    "exchange",
    "symbol",
    "product",
    "order_type",
    "tag",
)
AMENDABLE = ("quantity", "price", "trigger_price")
#: What a pending claim keeps in the state (its raw payload stays in the event log).
CLAIM_FIELDS = (
    "id",
    "broker",
    "order_id",
    "source",
    "status",
    "broker_status",
    "received_at",
    "exchange_time",
    "filled_quantity",
    "average_price",
    "reason",
    "modified",
    *DESCRIPTIVE,
    *AMENDABLE,
)
#: Pending claims kept per order: the newest by receipt (an older claim is refuted whenever a newer one
#: is, and never leads the display, so dropping it changes nothing shown).
MAX_CLAIMS = 20
#: The claim layer's marks on the shown state; the trusted fold has neither.
_CONFIRMATION_KEYS = ("confirmed", "unconfirmed")

#: A fold of events: the public fields (docs/interface.md) and the `_status_key`, `_fill_key` and
#: `_amend_key` that decide which event leads each of them.
Fold = dict[str, Any]
#: A pending claim: the CLAIM_FIELDS of its event.
Claim = dict[str, Any]


@dataclass(slots=True)
class OrderState:
    """One order's state: what it shows, and the layers it is composed of (docs/reconcile.md)."""

    #: What the order shows: the fold of its events, with `confirmed` (and `unconfirmed` while a claim leads).
    shown: Fold
    #: The fold of trusted events alone, kept apart while there are claims (None: no trusted event yet).
    #: Without claims the shown state is that fold.
    trusted: Fold | None = None
    #: Terminal statuses by postback awaiting the broker's word, by receipt (the newest MAX_CLAIMS).
    claims: list[Claim] = field(default_factory=list)
    #: Receipt time of the latest broker read that showed the order still working.
    reconciled_at: str | None = None

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> OrderState:
        """The state as orders.data holds it: the shown fields, the layers beside them (see `stored`)."""
        shown = dict(data)
        trusted = shown.pop("_trusted", None)
        claims = shown.pop("_claims", None) or []
        return cls(shown, trusted, claims, shown.pop("_reconciled_at", None))

    def stored(self) -> dict[str, Any]:
        """The JSON kept in orders.data: the shown fields, then `_trusted` and `_claims` while there are claims
        and `_reconciled_at` once a broker read showed the order working."""
        data = dict(self.shown)
        if self.claims:
            data["_trusted"] = self.trusted
            data["_claims"] = self.claims
        if self.reconciled_at is not None:
            data["_reconciled_at"] = self.reconciled_at
        return data

    def public(self) -> dict[str, Any]:
        """The state as the API shows it."""
        return public_view(self.shown)

    @property
    def confirmed(self) -> bool:
        """False while an unconfirmed claim leads what the order shows."""
        return self.shown.get("confirmed") is not False

    def trusted_fold(self) -> Fold | None:
        """The fold of trusted events: kept apart while there are claims, else the shown state itself."""
        if self.claims:
            return self.trusted
        fold = dict(self.shown)
        for key in _CONFIRMATION_KEYS:
            fold.pop(key, None)
        return fold


def _status_key(event: dict[str, Any]) -> tuple:
    """Which working status is further along: rank, then exchange time, then id (deterministic).

    A modification counts as evidence of a live order only: at most rank 1, and it loses every tie.
    """
    rank = OrderStatus.RANK.get(event["status"], 0)
    if event.get("modified"):
        return (min(rank, 1), "", "")
    return (rank, event.get("exchange_time") or "", event.get("id") or "")


def _amend_key(event: dict[str, Any]) -> tuple:
    """Which update's prices and quantities are the latest: exchange time, then our receipt time, then id."""
    return (event.get("exchange_time") or "", event.get("received_at") or "", event.get("id") or "")


def _fill_key(event: dict[str, Any]) -> tuple:
    """Which event's fill figures (filled_quantity, average_price) are the latest."""
    # Flat, so the key survives the JSON round trip through the database unchanged (no nested tuple).
    return (event.get("filled_quantity") or 0, event.get("average_price") is not None, *_status_key(event))


def new_state(event: dict[str, Any]) -> Fold:
    """The state of an order known from one event."""
    state = {name: event.get(name) for name in ("broker", "order_id", *DESCRIPTIVE, *AMENDABLE)}
    state.update(
        status=event["status"],
        broker_status=event.get("broker_status"),
        filled_quantity=event.get("filled_quantity") or 0,
        average_price=event.get("average_price"),
        reason=event.get("reason"),
        exchange_time=event.get("exchange_time"),
        created_at=event.get("received_at"),
        updated_at=event.get("received_at"),
        last_event_id=event.get("id"),
        source=event.get("source"),
        event_count=0,
        _status_key=list(_status_key(event)),
        _fill_key=list(_fill_key(event)),
        _amend_key=list(_amend_key(event)),
    )
    return _derive(state)


def _fold(state: Fold | None, event: dict[str, Any]) -> Fold:
    """The state after one more trusted event, whatever order events arrive in (the monotonic join)."""
    if state is None:
        state = new_state(event)
        state["event_count"] = 1
        return state
    state = dict(state)
    state["event_count"] = state.get("event_count", 0) + 1
    state["updated_at"] = event.get("received_at") or state.get("updated_at")
    for name in DESCRIPTIVE:
        if state.get(name) is None and event.get(name) is not None:
            state[name] = event[name]
    if list(_fill_key(event)) > state["_fill_key"]:
        state["_fill_key"] = list(_fill_key(event))
        state["filled_quantity"] = max(state.get("filled_quantity") or 0, event.get("filled_quantity") or 0)
        # The average belongs to that fill: an older fill's average would be wrong, unknown is honest.
        state["average_price"] = event.get("average_price")
    if list(_amend_key(event)) > state.get("_amend_key", []):
        state["_amend_key"] = list(_amend_key(event))
        for name in AMENDABLE:
            if event.get(name) is not None:
                state[name] = event[name]
    if state["status"] in OrderStatus.TERMINAL:
        return _derive(state)
    terminal = event["status"] in OrderStatus.TERMINAL and not event.get("modified")
    if terminal or list(_status_key(event)) > state["_status_key"]:
        _adopt(state, event)
    return _derive(state)


def _adopt(state: Fold, event: dict[str, Any]) -> None:
    """Take status and reason from the event that now leads."""
    state["_status_key"] = list(_status_key(event))
    state["status"] = event["status"]
    state["broker_status"] = event.get("broker_status")
    state["last_event_id"] = event.get("id")
    state["source"] = event.get("source")  # how the update that set the status arrived (the blotter shows it)
    state["exchange_time"] = event.get("exchange_time") or state.get("exchange_time")
    if event.get("reason") is not None:
        state["reason"] = event["reason"]


def _derive(state: Fold) -> Fold:
    """PARTIALLY_FILLED and FILLED come from quantities; pending follows from them."""
    filled = state.get("filled_quantity") or 0
    quantity = state.get("quantity")
    status = state["status"]
    if status not in OrderStatus.TERMINAL and quantity:
        if filled >= quantity:
            status = OrderStatus.FILLED
        elif filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
    state["status"] = status
    if status in OrderStatus.TERMINAL:
        state["pending_quantity"] = 0
    elif quantity is not None:
        state["pending_quantity"] = max(quantity - filled, 0)
    else:
        state["pending_quantity"] = None
    return state


def apply_event(
    state: OrderState | None, event: dict[str, Any], *, confirming: Collection[str] | None = None
) -> OrderState:
    """The state after one more event; `confirming` = brokers whose postback terminals need confirming
    (the brokers with REST credentials, app/reconcile/clients configured_brokers; none by default)."""
    if confirming is None:
        confirming = ()
    before = state.shown if state is not None else {}
    total = before.get("event_count", 0) + 1
    trusted = state.trusted_fold() if state is not None else None
    claims = list(state.claims) if state is not None else []
    reconciled_at = state.reconciled_at if state is not None else None
    if is_claim(event, confirming):
        if all(claim.get("id") != event.get("id") for claim in claims):
            claims = [*claims, {name: event.get(name) for name in CLAIM_FIELDS}]
    else:
        trusted = _fold(trusted, event)
        if _refutes(event) and (reconciled_at is None or event["received_at"] > reconciled_at):
            reconciled_at = event["received_at"]
    after = _compose(trusted, claims, reconciled_at)
    shown = after.shown
    shown["event_count"] = total
    shown["updated_at"] = event.get("received_at") or before.get("updated_at")
    if before.get("created_at"):
        shown["created_at"] = before["created_at"]
    return after


def is_claim(event: dict[str, Any], confirming: Collection[str]) -> bool:
    """A terminal status by postback for a broker we can ask: to be confirmed before it is final."""
    return (
        event.get("source") == "postback"
        and (event.get("broker") in confirming or (event.get("broker"), event.get("account_id") or "") in confirming)
        and event.get("status") in OrderStatus.TERMINAL
        and not event.get("modified")
    )


def _refutes(event: dict[str, Any]) -> bool:
    """A broker read (reconcile) showing the order still working: earlier claims were false."""
    return (
        event.get("source") == "reconcile"
        and event.get("status") not in OrderStatus.TERMINAL
        and bool(event.get("received_at"))
    )


def refutable(state: OrderState, read_at: str) -> bool:
    """True when a broker read at `read_at` showing the order working would refute a claim still pending."""
    pending = _pending(state.claims, state.reconciled_at)
    return len(_pending(pending, read_at)) < len(pending)


def _pending(claims: list[Claim], reconciled_at: str | None) -> list[Claim]:
    """Claims no broker read has refuted yet."""
    if reconciled_at is None:
        return claims
    read = _moment(reconciled_at)
    if read is None:
        return claims
    pending = []
    for claim in claims:
        received = _moment(claim.get("received_at"))
        if received is None or (read - received).total_seconds() <= CLAIM_GRACE_SECONDS:
            pending.append(claim)
    return pending


def _compose(trusted: Fold | None, claims: list[Claim], reconciled_at: str | None) -> OrderState:
    """The state shown: trusted if final or unchallenged, else the latest pending claim over it, flagged."""
    final = bool(trusted) and trusted["status"] in OrderStatus.TERMINAL
    pending = [] if final else _pending(claims, reconciled_at)
    if pending:
        lead = max(pending, key=_claim_order)
        shown = _fold(dict(trusted), lead) if trusted else _fold(None, lead)
        shown["confirmed"] = False
        shown["unconfirmed"] = {
            "status": lead["status"],
            "broker_status": lead.get("broker_status"),
            "event_id": lead.get("id"),
            "received_at": lead.get("received_at"),
            "pending_claims": len(pending),
        }
    else:
        shown = dict(trusted) if trusted else {}
        shown["confirmed"] = True
        shown.pop("unconfirmed", None)
    if final or not claims:
        # Once final, claims are moot for good (a trusted terminal is never left): the state drops them.
        return OrderState(shown, reconciled_at=reconciled_at)
    return OrderState(shown, trusted, sorted(claims, key=_claim_order)[-MAX_CLAIMS:], reconciled_at)


def _claim_order(claim: Claim) -> tuple[str, str]:
    """Claims by our own receipt time (never by anything the sender wrote), then id."""
    return (claim.get("received_at") or "", claim.get("id") or "")


def _moment(value: Any) -> datetime | None:
    """An ISO time we wrote (received_at), as a datetime."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def public_view(state: Mapping[str, Any]) -> dict[str, Any]:
    """A state as the API shows it, from its stored or shown form (bookkeeping keys dropped)."""
    return {k: v for k, v in state.items() if not k.startswith("_")}
