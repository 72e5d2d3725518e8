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

A run is of one account (docs/reconcile.md, "Accounts"): it reads that account's book with that account's
credentials and looks only at that account's stored orders and claims (a `Scope`); the environment's account of a
broker keeps the broker's name and covers every order of the broker but those of the accounts added as data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.accounts.model import Account, SessionState
from app.accounts.notices import login_needed
from app.brokers.rest import AuthExpired, dumps
from app.db import orders, utcnow
from app.events import OrderEvent, OrderStatus
from app.exceptions import NotDurableError, PostbackError
from app.reconcile.clients import CLIENTS, OrderBookClient, OrderNotFound, ReconcileClientError, client_for
from app.reconcile.status import RunResult, mark_finished, mark_started, note_account
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


@dataclass(frozen=True)
class Scope:
    """The stored orders one run looks at: one account's (`account_id`), or, for the environment's account of a
    broker, every order of the broker but those of the accounts added as data (`others`)."""

    broker: str
    account_id: str | None = None
    others: frozenset[str] = frozenset()

    def clauses(self, *, unattributed: bool = False) -> list[Any]:
        """SQL conditions on the orders table; `unattributed` also takes orders that name no account."""
        where: list[Any] = [orders.c.broker == self.broker]
        blank = sa.or_(orders.c.account_id.is_(None), orders.c.account_id == "")
        if self.account_id:
            mine = orders.c.account_id == self.account_id
            where.append(sa.or_(mine, blank) if unattributed else mine)
        elif self.account_id is not None:
            where.append(blank)
        elif self.others:
            where.append(sa.or_(blank, orders.c.account_id.not_in(sorted(self.others))))
        return where

    def covers(self, broker: str, account_id: str | None) -> bool:
        """True when an order of `broker` held by `account_id` is this run's to look at."""
        if broker != self.broker:
            return False
        if self.account_id is not None:
            return (account_id or "") == self.account_id
        return not account_id or account_id not in self.others


def reconcile_broker(
    services: Services,
    broker: str,
    *,
    reason: str,
    client: OrderBookClient | None = None,
    keep_alive: Callable[[], bool] | None = None,
    others: frozenset[str] = frozenset(),
) -> RunResult:
    """Reconcile the broker's environment account now (keyed by the broker's name, as before accounts were data);
    `others` are the client ids of the broker's accounts added as data, whose orders their own runs look at."""
    return _reconcile(
        services,
        RunResult(broker=broker, reason=reason, started_at=utc_iso(utcnow())),
        lambda: client or client_for(services.config, broker),
        Scope(broker, others=others),
        None,
        keep_alive,
    )


def reconcile_account(
    services: Services,
    account: Account,
    *,
    reason: str,
    client: OrderBookClient | None = None,
    keep_alive: Callable[[], bool] | None = None,
    others: frozenset[str] = frozenset(),
) -> RunResult:
    """Reconcile one account now with its own credentials and day's token (`account` read with secrets);
    never raises. A refused token of an account added as data ends its session (one alert); the environment's
    account only records the error, as before (`others`: its reconcile_broker's, ignored for the others)."""
    if account.read_only:
        return reconcile_broker(
            services, account.broker, reason=reason, client=client, keep_alive=keep_alive, others=others
        )
    result = RunResult(
        broker=account.broker,
        reason=reason,
        started_at=utc_iso(utcnow()),
        name=account.reconcile_name,
        account=account.id,
        account_id=account.account_id,
    )
    with contextlib.suppress(Exception):  # informative only: GET /api/reconcile names the account
        note_account(services.redis, result)
    return _reconcile(
        services,
        result,
        lambda: client or client_for(services.config, account),
        Scope(account.broker, account_id=account.account_id),
        account,
        keep_alive,
    )


def _reconcile(
    services: Services,
    result: RunResult,
    make_client: Callable[[], OrderBookClient | None],
    scope: Scope,
    account: Account | None,
    keep_alive: Callable[[], bool] | None,
) -> RunResult:
    """One run; never raises: the outcome (and any error, in plain words) is returned and recorded in Redis
    (oh:reconcile:status:<name>)."""
    started = time.monotonic()
    name = result.name
    try:
        mark_started(services.redis, name, result.started_at, result.reason)
    except Exception:  # noqa: BLE001 - the status is informative; the run itself matters more
        log.warning("could not record the start of the %s reconciliation", name)
    try:
        client = make_client()
        if client is None:
            if account is not None:
                raise NotConfigured(f"{name} has no usable session or credentials: nothing to reconcile")
            raise NotConfigured(f"{result.broker} has no REST credentials set: nothing to reconcile")
        _run(services, client, result, keep_alive or (lambda: True), scope, account)
    except AuthExpired as exc:
        title = CLIENTS[result.broker].title
        result.error = exc.message if account is None else _session_ended(services, account, title)
    except ReconcileClientError as exc:
        result.error = exc.message
    except LeaseLost:
        result.error = "the run took longer than its lease; another run carries on"
    except NotDurableError:
        result.error = "Redis could not queue the updates found; will retry at the next run"
    except Exception as exc:  # noqa: BLE001 - a job must never raise: the error is recorded instead
        log.exception("%s reconciliation failed", name)
        result.error = f"internal error ({type(exc).__name__}); see the worker log"
    if result.error:
        log.warning("%s reconciliation (%s): %s", name, result.reason, result.error)
    result.finished_at = utc_iso(utcnow())
    result.duration_ms = int((time.monotonic() - started) * 1000)
    try:
        mark_finished(services.redis, result)
    except Exception:  # noqa: BLE001
        log.warning("could not record the outcome of the %s reconciliation", name)
    return result


def _session_ended(services: Services, account: Account, title: str) -> str:
    """The broker refused an account's token: its session becomes expired (the scheduler then leaves it alone
    until a new one is given) and one alert asks for a login (docs/accounts.md); the run's error, plainly."""
    message = f"{title} refused the session token (expired or invalid): log in again or paste a new token"
    try:
        marked = services.accounts.mark_session(
            account.id, SessionState.EXPIRED, message, session_revision=account.session.revision
        )
        if marked:
            login_needed(services.redis, services.config, account, "token expired")
    except Exception as exc:  # noqa: BLE001 - the run's outcome is recorded whatever happens here
        log.warning("could not mark the session of %s as expired (%s)", account.reconcile_name, type(exc).__name__)
    return message


class LeaseLost(Exception):
    """The run's lease lapsed: stop, another run may hold the broker now."""


def _run(
    services: Services,
    client: OrderBookClient,
    result: RunResult,
    keep_alive: Callable[[], bool],
    scope: Scope,
    account: Account | None,
) -> None:
    """The run proper; client errors propagate to be recorded."""
    broker = client.broker
    adapter = _Adapter(services.adapters[broker], account.account_id if account is not None else "")
    client.start_run()
    claims = pending_claims(services.engine, broker, scope=scope)
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
    states = load_states(services.engine, broker, list(rows_by_id), scope=scope)
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


class _Adapter:
    """The broker's adapter, giving an account's events its client id when the broker's row names none."""

    def __init__(self, adapter: Any, account_id: str) -> None:
        self.adapter = adapter
        self.account_id = account_id

    def event_from_payload(self, payload: dict[str, Any], *, source: str, received_at: str) -> OrderEvent:
        """The adapter's event, with the account's id filled in (the dedup key does not hold it)."""
        event = self.adapter.event_from_payload(payload, source=source, received_at=received_at)
        if self.account_id and not event.account_id:
            event = dataclasses.replace(event, account_id=self.account_id)
        return event


def _event(adapter: Any, client: OrderBookClient, row: dict[str, Any], received_at: str) -> OrderEvent | None:
    """A REST row through the broker's adapter, as a postback would go; None (logged) if it cannot be read."""
    try:
        return adapter.event_from_payload(client.to_payload(row), source=SOURCE, received_at=received_at)
    except PostbackError as exc:
        log.warning("%s order book row skipped: %s", client.broker, exc.message)
        return None


def load_states(
    engine: Engine, broker: str, order_ids: list[str], *, scope: Scope | None = None
) -> dict[str, OrderState]:
    """Stored states of these orders of the account's book (read in chunks): the account's own, and those that
    name no account yet (the account's events fill it in)."""
    where = (scope or Scope(broker)).clauses(unattributed=True)
    states: dict[str, OrderState] = {}
    with engine.connect() as conn:
        for start in range(0, len(order_ids), 500):
            chunk = order_ids[start : start + 500]
            query = sa.select(orders.c.order_id, orders.c.data).where(*where, orders.c.order_id.in_(chunk))
            states.update({row.order_id: OrderState.from_stored(row.data) for row in conn.execute(query)})
    return states


def pending_claims(engine: Engine, broker: str, since=None, *, scope: Scope | None = None) -> dict[str, OrderState]:
    """Orders of the broker (of one account's scope) showing an unconfirmed postback terminal (updated since
    `since`, default a day)."""
    since = since or (utcnow() - CLAIM_LOOKBACK)
    query = sa.select(orders.c.order_id, orders.c.data, orders.c.updated_at).where(
        *(scope or Scope(broker)).clauses(),
        orders.c.status.in_(sorted(OrderStatus.TERMINAL)),
        orders.c.updated_at >= since,
    )
    with engine.connect() as conn:
        states = {row.order_id: OrderState.from_stored(row.data) for row in conn.execute(query)}
    return {order_id: state for order_id, state in states.items() if not state.confirmed}


def claim_holders(engine: Engine, since: datetime) -> set[tuple[str, str]]:
    """(broker, account_id) of every order updated since `since` showing an unconfirmed postback terminal: one
    query for every account, which the scheduler maps to the runs that settle them."""
    query = sa.select(orders.c.broker, orders.c.account_id, orders.c.data).where(
        orders.c.status.in_(sorted(OrderStatus.TERMINAL)), orders.c.updated_at >= since
    )
    with engine.connect() as conn:
        return {
            (row.broker, row.account_id or "")
            for row in conn.execute(query)
            if not OrderState.from_stored(row.data).confirmed
        }
