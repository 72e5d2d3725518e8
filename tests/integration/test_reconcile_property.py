"""Postbacks, feed updates and reconciliation rows of one order, in any order and any batching, through
the real adapters, ingestor and persist job: each distinct update is stored once, and the final state is
the one the updates give in their true order."""

from __future__ import annotations

import json
import uuid

import pytest
import redis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.brokers.kite.rest import KiteClient
from app.config import load_config
from app.db import events as events_table
from app.db import orders, upgrade
from app.services import Services, set_services
from app.state import apply_event
from tests.support.env import KITE_SECRET, flush_test_db, make_env
from tests.support.fakes.rest import kite_order
from tests.support.helpers import run_pipeline, sign_kite

RECEIVED = "2026-11-28T04:00:00.000000Z"


@pytest.fixture(scope="module")
def shared(tmp_path_factory, redis_url):
    """One Redis database and SQLite file for every example; each example uses an order id of its own."""
    flush_test_db(redis.Redis.from_url(redis_url))
    tmp = tmp_path_factory.mktemp("prop")
    url = f"sqlite:///{tmp / 'orderhook.sqlite3'}"
    upgrade(url)
    services = Services.build(load_config(make_env(redis_url, url, tmp)))  # no REST credentials: all trusted
    set_services(services)
    yield services
    set_services(None)
    services.engine.dispose()


def updates_of(order_id: str, fills: list[int], outcome: str) -> list[dict]:
    """The broker's updates of one order, in true order (REST row shape)."""
    quantity = 10
    rows = [kite_order(order_id, "OPEN", quantity=quantity, at="2026-11-28 09:15:00")]
    for second, filled in enumerate(fills, start=1):
        rows.append(
            kite_order(
                order_id,
                "OPEN",
                quantity=quantity,
                filled=filled,
                average=1500.0 + filled,
                at=f"2026-11-28 09:15:{second:02d}",
            )
        )
    last = max(fills, default=0)
    if outcome == "COMPLETE":
        rows.append(
            kite_order(
                order_id, "COMPLETE", quantity=quantity, filled=quantity, average=1501.0, at="2026-11-28 09:16:00"
            )
        )
    elif outcome == "CANCELLED":
        rows.append(
            kite_order(
                order_id,
                "CANCELLED",
                quantity=quantity,
                filled=last,
                average=1500.0 + last if last else 0,
                at="2026-11-28 09:16:00",
            )
        )
    return rows


def arrival(services: Services, row: dict, source: str):
    """One copy of an update as it reaches the ingestor from `source`."""
    adapter = services.adapters["kite"]
    if source == "postback":
        payload = dict(row, user_id=row["account_id"])
        payload.pop("account_id")
        body = json.dumps(sign_kite(payload, KITE_SECRET)).encode()
        return adapter.receive(body, {}, token=None, received_at=RECEIVED), body
    payload = (
        KiteClient(services.config).to_payload(row) if source == "reconcile" else dict(row, user_id=row["account_id"])
    )
    return adapter.event_from_payload(payload, source=source, received_at=RECEIVED), json.dumps(row).encode()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    fills=st.lists(st.integers(1, 9), max_size=3, unique=True).map(sorted),
    outcome=st.sampled_from(["COMPLETE", "CANCELLED", "OPEN"]),
)
def test_any_arrival_order_stores_each_update_once_and_ends_alike(shared, data, fills, outcome):
    services = shared
    order_id = "2511" + uuid.uuid4().hex[:12]
    rows = updates_of(order_id, fills, outcome)
    copies = []
    for row in rows:
        sources = data.draw(st.sets(st.sampled_from(["postback", "websocket", "reconcile"]), min_size=1))
        copies += [(row, source) for source in sorted(sources)]
    copies += data.draw(st.lists(st.sampled_from(copies), max_size=3))  # redeliveries
    shuffled = data.draw(st.permutations(copies))
    cuts = sorted(data.draw(st.sets(st.integers(0, len(shuffled)), max_size=2)))
    start = 0
    for end in [*cuts, len(shuffled)]:  # batches stored between arrivals: the state goes through the database
        for row, source in shuffled[start:end]:
            event, body = arrival(services, row, source)
            services.ingestor.submit(event, body)
        run_pipeline(services)
        start = end

    truth = [arrival(services, row, "websocket")[0] for row in rows]
    distinct = {event.dedup_key: event for event in truth}
    folded = None
    for event in distinct.values():
        folded = apply_event(folded, event.to_dict(), confirming=())
    expected = folded.shown
    with services.engine.connect() as conn:
        stored = conn.execute(
            sa.select(sa.func.count()).select_from(events_table).where(events_table.c.order_id == order_id)
        ).scalar_one()
        state = conn.execute(sa.select(orders.c.data).where(orders.c.order_id == order_id)).scalar_one()
    assert stored == len(distinct), "a distinct update was stored twice or not at all"
    got = (state["status"], state["filled_quantity"], state["average_price"], state["pending_quantity"])
    assert got == (
        expected["status"],
        expected["filled_quantity"],
        expected["average_price"],
        expected["pending_quantity"],
    )
