"""GET /api/orders and /api/orders/<broker>/<order_id>: current states and their events (docs/api.md).

Also the admin API's query helpers: ASCII-only numbers, opaque cursors, `since` times (docs/api.md: a
ligature or an Arabic-Indic digit in admin input is refused, never read as its ASCII look-alike).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, request

from app.api.auth import require_admin
from app.api.responses import error_response
from app.brokers.redaction import redact_raw
from app.db import events, orders, raw_postbacks
from app.events import BROKERS, OrderStatus
from app.rawlog import raw_view
from app.state import public_view

bp = Blueprint("orders", __name__, url_prefix="/api")
MAX_LIMIT = 1000
DEFAULT_EVENTS_LIMIT = 100
#: An order's answer stops adding events past this many bytes of JSON (next page via `after`).
EVENTS_PAGE_BYTES = 4 * 1024 * 1024
MAX_QUERY_VALUE = 512
MAX_SEQUENCE = 2**31 - 1  # sequences are 32-bit integers in the database


class BadQuery(ValueError):
    """A query-string value that is refused with 400; the message says what to send."""


def ascii_int(raw: str, name: str, *, low: int, high: int | None = None) -> int:
    """A whole number written in ASCII digits only (int() would read '١' or '²' as digits)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12 or int(raw) < low:
        bound = f"from {low} to {high}" if high is not None else f">= {low}"
        raise BadQuery(f"{name} must be a whole number {bound}, in ASCII digits")
    return int(raw) if high is None else min(int(raw), high)


def parse_limit(default: int = 100):
    """`limit` as a whole number >= 1 (more than 1000 is served as 1000), or an error response."""
    raw = request.args.get("limit", str(default))
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or int(raw) < 1:
        return None, error_response(400, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return min(int(raw), MAX_LIMIT), None


def query_text(name: str, *, ascii_only: bool = True) -> str | None:
    """A filter value: printable text of bounded length (ASCII unless the value may hold a broker's order id,
    which can be any text), or None when absent or empty."""
    value = request.args.get(name)
    if not value:
        return None
    if (ascii_only and not value.isascii()) or not value.isprintable() or len(value) > MAX_QUERY_VALUE:
        kind = "printable ASCII text" if ascii_only else "printable text"
        raise BadQuery(f"{name} must be {kind} of at most {MAX_QUERY_VALUE} characters")
    return value


def parse_since(name: str = "since") -> datetime | None:
    """An ISO 8601 time (ASCII; no zone means UTC) as an aware UTC datetime, or None when absent."""
    value = query_text(name)
    return None if value is None else parse_time(value, name)


def parse_time(value: Any, name: str) -> datetime:
    """ISO 8601 text to an aware UTC datetime; BadQuery names the field."""
    if not isinstance(value, str) or not value.isascii() or len(value) > 40:
        raise BadQuery(f"{name} must be an ISO 8601 time such as 2026-11-21T09:00:00Z")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise BadQuery(f"{name} must be an ISO 8601 time such as 2026-11-21T09:00:00Z (got {value!r})") from None


def encode_cursor(values: list) -> str:
    """An opaque cursor (url-safe base64 of the keyset position; clients pass it back as is)."""
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(shape: tuple[type, ...]) -> list | None:
    """The `cursor` argument back to its values (checked against `shape`), or None when absent."""
    text = query_text("cursor")
    if text is None:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        values = None
    if (
        not isinstance(values, list)
        or len(values) != len(shape)
        or not all(type(v) is t for v, t in zip(values, shape, strict=True))
    ):
        raise BadQuery("cursor is not one this API gave out: pass next_cursor from the previous answer unchanged")
    return values


def as_db_time(moment: datetime) -> datetime:
    """A UTC datetime as the database columns hold it (SQLite keeps naive UTC)."""
    return moment.astimezone(UTC)


@bp.get("/orders")
@require_admin
def list_orders():
    """Current order states, most recently updated first; filters, `since` (updated at or after), cursor."""
    limit, error = parse_limit()
    if error:
        return error
    try:
        query = _orders_query()
        cursor = decode_cursor((str, str, str))
    except BadQuery as exc:
        return error_response(400, str(exc))
    if cursor is not None:
        moment, broker, order_id = cursor
        try:
            at = parse_time(moment, "cursor")
        except BadQuery as exc:
            return error_response(400, str(exc))
        query = query.where(
            sa.or_(
                orders.c.updated_at < at,
                sa.and_(
                    orders.c.updated_at == at,
                    sa.or_(orders.c.broker > broker, sa.and_(orders.c.broker == broker, orders.c.order_id > order_id)),
                ),
            )
        )
    query = query.order_by(orders.c.updated_at.desc(), orders.c.broker, orders.c.order_id).limit(limit + 1)
    with _engine().connect() as conn:
        rows = conn.execute(query).all()
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor([_iso(last.updated_at), last.broker, last.order_id])
    return jsonify(orders=[public_view(row.data) for row in page], count=len(page), next_cursor=next_cursor)


def _orders_query() -> sa.Select:
    """The filtered select of orders (BadQuery on a refused filter)."""
    query = sa.select(orders.c.data, orders.c.updated_at, orders.c.broker, orders.c.order_id)
    broker = query_text("broker")
    if broker:
        if broker not in BROKERS:
            raise BadQuery(f"broker must be one of {list(BROKERS)}")
        query = query.where(orders.c.broker == broker)
    account_id = query_text("account_id")
    if account_id:
        query = query.where(orders.c.account_id == account_id)
    status = query_text("status")
    if status:
        status = status.upper()
        if status not in OrderStatus.ALL:
            raise BadQuery(f"status must be one of {list(OrderStatus.ALL)}")
        query = query.where(orders.c.status == status)
    since = parse_since()
    if since is not None:
        query = query.where(orders.c.updated_at >= as_db_time(since))
    return query


def path_order_id(segment: str) -> str:
    """The order id a path carries: as decoded, or decoded once more with `double_encoded=1` (docs/api.md).

    URL parsers (browsers, curl, requests) resolve a lone `.` or `..` away as a dot segment even when
    percent-encoded, and an id starting with `/` makes an empty segment: such ids travel encoded twice.
    """
    flag = request.args.get("double_encoded")
    if not flag:
        return segment
    if flag != "1":
        raise BadQuery("double_encoded must be 1 (the order id in the path is percent-encoded twice) or absent")
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise BadQuery("the double-encoded order id is not UTF-8 once decoded") from None


@bp.get("/orders/<broker>/<path:order_id>")
@require_admin
def get_order(broker: str, order_id: str):
    """One order's state plus a page of `events` (arrival order), read in one snapshot (one statement)."""
    try:
        limit = ascii_int(request.args.get("limit", str(DEFAULT_EVENTS_LIMIT)), "limit", low=1, high=MAX_LIMIT)
        after = min(ascii_int(request.args.get("after", "0"), "after", low=0), MAX_SEQUENCE)
        order_id = path_order_id(order_id)
    except BadQuery as exc:
        return error_response(400, str(exc))
    state_row = sa.select(sa.literal(0).label("seq"), orders.c.data.label("data"), sa.null().label("body")).where(
        orders.c.broker == broker, orders.c.order_id == order_id
    )
    event_rows = (
        sa.select(events.c.sequence.label("seq"), events.c.data.label("data"), raw_postbacks.c.body.label("body"))
        .select_from(events.outerjoin(raw_postbacks, raw_postbacks.c.event_id == events.c.id))
        .where(events.c.broker == broker, events.c.order_id == order_id, events.c.sequence > after)
    )
    # One statement: the state and its events come from the same snapshot on SQLite and PostgreSQL
    # alike, so `event_count` always agrees with the events listed (docs/api.md). The state row is seq 0.
    snapshot = sa.union_all(state_row, event_rows).order_by("seq").limit(limit + 2)
    body: dict[str, Any] | None = None
    listed: list[dict] = []
    next_after = None
    budget = EVENTS_PAGE_BYTES
    with _engine().connect() as conn:
        for row in conn.execution_options(stream_results=True, yield_per=50).execute(snapshot):
            if row.seq == 0:
                body = public_view(_json(row.data))
                continue
            if body is None:
                break
            if len(listed) == limit or budget <= 0:
                next_after = listed[-1]["sequence"] if listed else after
                break
            event = event_view(broker, _json(row.data), row.body)
            budget -= len(json.dumps(event, separators=(",", ":")))
            listed.append(event)
    if body is None:
        return error_response(404, f"no {broker} order {order_id!r} has been received")
    body["events"] = listed
    body["events_next_after"] = next_after
    return jsonify(body)


def event_view(broker: str, data: dict[str, Any], body: bytes | None) -> dict[str, Any]:
    """An event as the API shows it, its `raw` rebuilt from the one stored copy of the body (app/rawlog.py:
    no Kite checksum); rows stored before the body was kept once still carry their own `raw`."""
    event = dict(data)
    if body is not None:
        event["raw"] = raw_view(broker, bytes(body))
    else:
        event["raw"] = redact_raw(broker, event.get("raw"))
    return event


def _json(value: Any) -> Any:
    """A JSON column as a dict (a UNION may hand back the text on some drivers)."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def _iso(value: datetime) -> str:
    """A database time as ISO 8601 UTC (SQLite returns naive UTC)."""
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _engine():
    """The process's database engine."""
    return current_app.extensions["orderhook"].engine
