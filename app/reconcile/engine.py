"""One reconciliation of one broker: read its order book, catch up every order that differs from ours.

For each book entry whose status, figures (fill, quantity, prices) or confirmation differs from the
stored state, the order's history (where the broker keeps one) is read, sorted by time, and every row
goes through the broker's adapter and the ingestor exactly like a postback, with `source: "reconcile"`:
dedup drops what we already have, the monotonic state machine ignores what is stale. When a postback's
terminal status is waiting for confirmation (app/state.py), the broker's answer is also sent as a
*confirmation event*: the broker's current row under its own dedup key, so that it reaches the state
machine even though the same update is already stored from the postback; a read that would refute no
claim (each is still within its grace) is not sent at all. A run ends by its deadline
(RECONCILE_RUN_SECONDS) and each request by its own (app/brokers/rest.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.brokers.rest import dumps
from app.db import orders, utcnow
from app.events import OrderEvent, OrderStatus
from app.exceptions import NotDurableError, PostbackError
from app.reconcile.clients import OrderBookClient, OrderNotFound, ReconcileClientError, client_for
from app.reconcile.status import RunResult, mark_finished, mark_started
from app.state import OrderState, refutable
from app.times import utc_iso

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

SOURCE = "reconcile"
#: Claims older than this are not looked for: order books hold today's orders only.
CLAIM_LOOKBACK = timedelta(days=1)
#: The figures of a book row that, when they differ from the stored state, make the order's history worth
#: reading (docs/reconcile.md): a missed modification changes these and nothing else.
AMENDED = ("quantity", "price", "trigger_price")
#: Why a claim is left pending by a run that could read the broker.
YOUNG_CLAIM = "received within the claim's grace period; the broker is asked again at the next run"


class NotConfigured(ReconcileClientError):
    """The broker has no REST client or its credentials are not set."""


def reconcile_broker(
    services: Services,
    broker: str,
    *,
    reason: str,
    client: OrderBookClient | None = None,
    keep_alive: Callable[[], bool] | None = None,
) -> RunResult:
    """Reconcile one broker now; never raises: the outcome (and any error, in plain words) is returned
    and recorded in Redis (oh:reconcile:status:<broker>)."""
    started = time.monotonic()
    result = RunResult(broker=broker, reason=reason, started_at=utc_iso(utcnow()))
    try:
        mark_started(services.redis, broker, result.started_at, reason)
    except Exception:  # noqa: BLE001 - the status is informative; the run itself matters more
        log.warning("could not record the start of the %s reconciliation", broker)
    try:
        client = client or client_for(services.config, broker)
        if client is None:
            raise NotConfigured(f"{broker} has no REST credentials set: nothing to reconcile")
        _run(services, client, result, keep_alive or (lambda: True))
    except ReconcileClientError as exc:
        result.error = exc.message
    except LeaseLost:
        result.error = "the run took longer than its lease; another run carries on"
    except NotDurableError:
        result.error = "Redis could not queue the updates found; will retry at the next run"
    except Exception as exc:  # noqa: BLE001 - a job must never raise: the error is recorded instead
        log.exception("%s reconciliation failed", broker)
        result.error = f"internal error ({type(exc).__name__}); see the worker log"
    if result.error:
        log.warning("%s reconciliation (%s): %s", broker, reason, result.error)
    result.finished_at = utc_iso(utcnow())
    result.duration_ms = int((time.monotonic() - started) * 1000)
    try:
        mark_finished(services.redis, result)
    except Exception:  # noqa: BLE001
        log.warning("could not record the outcome of the %s reconciliation", broker)
    return result


class LeaseLost(Exception):
    """The run's lease lapsed: stop, another run may hold the broker now."""


def _run(services: Services, client: OrderBookClient, result: RunResult, keep_alive: Callable[[], bool]) -> None:
    """The run proper; client errors propagate to be recorded."""
    broker = client.broker
    adapter = services.adapters[broker]
    client.start_run()
    claims = pending_claims(services.engine, broker)
    try:
        book = client.orders()
    except ReconcileClientError as exc:
        result.unconfirmed.update({order_id: exc.message for order_id in claims})
        raise
    result.orders_seen = len(book)
    rows_by_id: dict[str, dict[str, Any]] = {}
    for row in book:
        order_id = client.order_id(row)
        if order_id:
            rows_by_id[order_id] = row
    states = load_states(services.engine, broker, list(rows_by_id))
    todo: list[tuple[str, dict[str, Any] | None]] = []
    for order_id, row in rows_by_id.items():
        current = _event(adapter, client, row, utc_iso(utcnow()))
        state = states.get(order_id) or claims.get(order_id)
        if current is None or differs(state, current):
            todo.append((order_id, row))
    todo += [(order_id, None) for order_id in claims if order_id not in rows_by_id]
    result.differing = len(todo)
    for index, (order_id, row) in enumerate(todo):
        if not keep_alive():
            raise LeaseLost
        try:
            client.check_run_deadline()
            state = states.get(order_id) or claims.get(order_id)
            settled = _catch_up(services, client, adapter, order_id, row, state, result)
        except OrderNotFound as exc:
            if order_id in claims:
                result.unconfirmed[order_id] = exc.message
        except ReconcileClientError as exc:
            for pending_id, _ in todo[index:]:
                if pending_id in claims:
                    result.unconfirmed[pending_id] = exc.message
            raise
        else:
            if order_id in claims and settled:
                result.resolved.add(order_id)
            elif order_id in claims:
                result.unconfirmed[order_id] = YOUNG_CLAIM


def differs(state: OrderState | None, current: OrderEvent) -> bool:
    """True when the broker's row says something our state does not: then the order's history is read.

    Status, fill, quantity, price, trigger price and (of a fill) average price are compared; a figure the
    row does not carry says nothing.
    """
    if state is None or not state.confirmed:
        return True
    shown = state.shown
    if shown.get("status") in OrderStatus.TERMINAL:
        return False  # final and confirmed: nothing the broker says can move it (monotonic)
    if shown.get("status") != current.status:
        return True
    if (shown.get("filled_quantity") or 0) != (current.filled_quantity or 0):
        return True
    said = {name: getattr(current, name) for name in AMENDED}
    if current.filled_quantity:
        said["average_price"] = current.average_price
    return any(value is not None and _number(shown.get(name)) != _number(value) for name, value in said.items())


def _number(value: Any) -> float | None:
    """A stored or normalized figure as a float, so 10 and 10.0 compare equal."""
    return float(value) if isinstance(value, int | float) else None


def _catch_up(
    services: Services,
    client: OrderBookClient,
    adapter: Any,
    order_id: str,
    row: dict[str, Any] | None,
    state: OrderState | None,
    result: RunResult,
) -> bool:
    """Read one order's history and queue every row in time order, then confirm or refute a claim; False when
    a claim of the order is left pending because the read came within its grace period."""
    if client.has_history or row is None:
        try:
            rows = client.history(order_id)
        except OrderNotFound:
            if row is None:
                raise
            rows = []
        rows = rows or ([row] if row is not None else [])
    else:
        rows = [row]
    read_at = utcnow()
    queued: list[tuple[OrderEvent, bytes]] = []
    for position, item in enumerate(rows):
        # One microsecond apart in history order: rows that share an exchange time fold in the broker's
        # documented order (app/state.py, the latest update's figures), whatever their content.
        event = _event(adapter, client, item, utc_iso(read_at + timedelta(microseconds=position)))
        if event is None or event.order_id != order_id:
            continue
        queued.append((event, dumps(item)))
    # One step for the whole history: one worker reads it in one batch and stores it in time order.
    answers = services.ingestor.submit_together(queued) if queued else []
    submitted = [(event, is_new, body) for (event, body), is_new in zip(queued, answers, strict=True)]
    result.updates_found += sum(is_new for _, is_new, _ in submitted)
    if not submitted:
        return True
    terminal = [entry for entry in submitted if entry[0].status in OrderStatus.TERMINAL]
    if terminal:
        event, is_new, body = terminal[-1]
        if not is_new:
            # The same update is stored already, maybe only as an unconfirmed postback: say it again
            # under a key of its own so the state machine hears the broker (once per content).
            result.confirmations += int(services.ingestor.submit(confirmation(event, "confirm"), body))
        return True
    if state is None or state.confirmed:
        return True
    latest, _, body = submitted[-1]
    if not refutable(state, latest.received_at):
        # Every claim is younger than its grace: this read refutes nothing, so it is not stored (the same
        # book row would otherwise become one more event at every run); a later run settles the claim.
        return False
    if not any(is_new for _, is_new, _ in submitted):
        # The broker shows the order still working: refute the claims with this read (a fresh row does it too).
        result.confirmations += int(
            services.ingestor.submit(confirmation(latest, "refute " + latest.received_at), body)
        )
    return True


def confirmation(event: OrderEvent, salt: str) -> OrderEvent:
    """The broker's row as a confirmation event: the same content under a dedup key (and id) of its own."""
    copy = dataclasses.replace(event)
    key = hashlib.sha256(f"reconcile-confirmation|{event.dedup_key}|{salt}".encode()).hexdigest()
    # dedup_key and id are cached properties: an instance value takes their place.
    copy.__dict__["dedup_key"] = key
    copy.__dict__["id"] = "evt_" + key[:32]
    return copy


def _event(adapter: Any, client: OrderBookClient, row: dict[str, Any], received_at: str) -> OrderEvent | None:
    """A REST row through the broker's adapter, as a postback would go; None (logged) if it cannot be read."""
    try:
        return adapter.event_from_payload(client.to_payload(row), source=SOURCE, received_at=received_at)
    except PostbackError as exc:
        log.warning("%s order book row skipped: %s", client.broker, exc.message)
        return None


def load_states(engine: Engine, broker: str, order_ids: list[str]) -> dict[str, OrderState]:
    """Stored states of these orders (read in chunks)."""
    states: dict[str, OrderState] = {}
    with engine.connect() as conn:
        for start in range(0, len(order_ids), 500):
            chunk = order_ids[start : start + 500]
            query = sa.select(orders.c.order_id, orders.c.data).where(
                orders.c.broker == broker, orders.c.order_id.in_(chunk)
            )
            states.update({row.order_id: OrderState.from_stored(row.data) for row in conn.execute(query)})
    return states


def pending_claims(engine: Engine, broker: str, since=None) -> dict[str, OrderState]:
    """Orders of the broker showing an unconfirmed postback terminal (updated since `since`, default a day)."""
    since = since or (utcnow() - CLAIM_LOOKBACK)
    query = sa.select(orders.c.order_id, orders.c.data, orders.c.updated_at).where(
        orders.c.broker == broker,
        orders.c.status.in_(sorted(OrderStatus.TERMINAL)),
        orders.c.updated_at >= since,
    )
    with engine.connect() as conn:
        states = {row.order_id: OrderState.from_stored(row.data) for row in conn.execute(query)}
    return {order_id: state for order_id, state in states.items() if not state.confirmed}
