"""Admin API as a product: one snapshot per order answer, paged events, cursors, `since`, ASCII-only input."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from app import create_app
from app.config import load_config
from app.db import deliveries, events
from app.events import OrderEvent
from app.services import Services
from app.store import QueuedEvent, persist_batch
from tests.support.env import make_env

CONSUMER = "https://consumer.example.com/hook"


def update(order_id: str, n: int, *, broker: str = "kite", checksum: str | None = "c0ffee") -> QueuedEvent:
    """The n-th distinct update of an order (partial fills 1..n of a large order)."""
    raw = {"order_id": order_id, "status": "OPEN", "filled_quantity": n}
    if checksum is not None:
        raw["checksum"] = checksum
    event = OrderEvent(
        broker=broker,
        source="postback",
        order_id=order_id,
        status="PARTIALLY_FILLED",
        broker_status="OPEN",
        received_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        raw=raw,
        quantity=10**6,
        filled_quantity=n,
        exchange_time=f"2026-11-21T09:{n // 3600 % 60:02d}:{n // 60 % 60:02d}.{n % 60:06d}Z",
    )
    return QueuedEvent(event=event.to_dict(), body=json.dumps(raw).encode())


def store(services, order_id: str, numbers, **kwargs) -> None:
    persist_batch(services.engine, [update(order_id, n, **kwargs) for n in numbers], services.config.forward_urls)


def test_order_state_and_events_come_from_one_snapshot_under_a_stream_of_updates(db_services, db_client, admin_headers):
    """A reader never sees a state older (or newer) than its own event list."""
    store(db_services, "HOT", [1])
    stop = threading.Event()
    written = []

    def writer() -> None:
        n = 2
        while not stop.is_set() and n < 400:
            store(db_services, "HOT", [n, n + 1])
            written.append(n)
            n += 2

    thread = threading.Thread(target=writer)
    thread.start()
    reads = []
    try:
        while thread.is_alive() and len(reads) < 400:
            answer = db_client.get("/api/orders/kite/HOT?limit=1000", headers=admin_headers).get_json()
            reads.append((answer["event_count"], [e["sequence"] for e in answer["events"]]))
    finally:
        stop.set()
        thread.join(60)
    assert len(written) > 5 and len(reads) > 5
    for count, sequences in reads:
        assert sequences == list(range(1, count + 1))
    assert len({count for count, _ in reads}) > 1  # the reads really overlapped the writes


def test_events_are_paged_with_after_and_bounded(db_services, db_client, admin_headers):
    store(db_services, "BIG", range(1, 251))
    first = db_client.get("/api/orders/kite/BIG", headers=admin_headers).get_json()
    assert first["event_count"] == 250 and len(first["events"]) == 100 and first["events_next_after"] == 100
    second = db_client.get("/api/orders/kite/BIG?after=100&limit=1000", headers=admin_headers).get_json()
    assert [e["sequence"] for e in second["events"]] == list(range(101, 251))
    assert second["events_next_after"] is None
    small = db_client.get("/api/orders/kite/BIG?after=248&limit=1", headers=admin_headers).get_json()
    assert [e["sequence"] for e in small["events"]] == [249] and small["events_next_after"] == 249


def test_a_kite_checksum_never_leaves_through_the_api(db_services, db_client, admin_headers):
    store(db_services, "SIG", [1], checksum="deadbeef" * 8)
    answer = db_client.get("/api/orders/kite/SIG", headers=admin_headers)
    assert "deadbeef" not in answer.get_data(as_text=True)
    assert answer.get_json()["events"][0]["raw"]["order_id"] == "SIG"


def test_raw_is_rebuilt_from_the_raw_log_when_the_event_does_not_carry_it(db_services, db_client, admin_headers):
    """The raw body stored once: an event without `raw` shows the raw_postbacks body, minus checksum."""
    store(db_services, "ONCE", [1], checksum="feedface" * 8)
    with db_services.engine.begin() as conn:
        data = dict(conn.execute(sa.select(events.c.data)).scalar_one())
        data.pop("raw", None)  # the worker no longer stores it: this keeps the test meaningful either way
        conn.execute(events.update().values(data=data))
    answer = db_client.get("/api/orders/kite/ONCE", headers=admin_headers)
    raw = answer.get_json()["events"][0]["raw"]
    assert raw["filled_quantity"] == 1 and not raw["checksum"] and "feedface" not in answer.get_data(as_text=True)


def test_orders_list_pages_with_an_opaque_cursor_and_since(db_services, db_client, admin_headers):
    for n in range(7):
        store(db_services, f"O{n}", [1])
    seen, cursor = [], None
    while True:
        url = "/api/orders?limit=3" + (f"&cursor={cursor}" if cursor else "")
        answer = db_client.get(url, headers=admin_headers).get_json()
        seen += [o["order_id"] for o in answer["orders"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"O{n}" for n in range(7)] and len(seen) == 7
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert db_client.get("/api/orders", query_string={"since": future}, headers=admin_headers).get_json()["count"] == 0
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert db_client.get(f"/api/orders?since={past}", headers=admin_headers).get_json()["count"] == 7


@pytest.mark.parametrize(
    "url",
    [
        "/api/orders?cursor=nonsense",
        "/api/orders?cursor=WyJ4Il0",  # a list of the wrong shape
        "/api/orders?since=yesterday",
        "/api/orders?since=0001-01-01T00:00:00%2B01:00",  # before year 1 once in UTC
        "/api/orders?status=%EF%AC%81lled",  # 'ﬁlled' with a ligature
        "/api/orders?limit=%D9%A1",  # Arabic-Indic one
        "/api/orders/kite/x?after=-1",
        "/api/orders/kite/x?limit=%D9%A1",
        "/api/deliveries?cursor=%D9%A1",
        "/api/deliveries?order=kite",
        "/api/deliveries?status=%EF%AC%81led",
    ],
)
def test_refused_query_values_are_400(db_client, admin_headers, url):
    answer = db_client.get(url, headers=admin_headers)
    assert answer.status_code == 400 and answer.get_json()["error"]


def test_a_unicode_digit_is_not_a_delivery_id(db_services, db_client, admin_headers):
    store(db_services, "D", [1])
    with db_services.engine.begin() as conn:
        conn.execute(
            deliveries.insert().values(
                id=1,
                event_id="evt_x",
                consumer_id="c",
                url=CONSUMER,
                status="failed",
                attempts=1,
                created_at=datetime.now(UTC),
                updated_at=datetime.now(UTC),
            )
        )
    assert db_client.get("/api/deliveries/1", headers=admin_headers).status_code == 200
    for text in ("\u0661", "\uff11", "\u00b9", "1\u0660"):
        answer = db_client.get(f"/api/deliveries/{text}", headers=admin_headers)
        assert answer.status_code == 404 and answer.is_json
        assert db_client.post(f"/api/deliveries/{text}/retry", headers=admin_headers).status_code == 404


def _failed_deliveries(
    services, count: int, *, url: str = CONSUMER, created_at: datetime | None = None, batch: str = ""
) -> None:
    moment = created_at or datetime.now(UTC)
    with services.engine.begin() as conn:
        conn.execute(
            deliveries.insert(),
            [
                {
                    "event_id": f"evt_{url.split('//')[1][:5]}{batch}_{n}",
                    "consumer_id": url[-8:],
                    "url": url,
                    "status": "failed",
                    "attempts": 8,
                    "created_at": moment,
                    "updated_at": moment,
                }
                for n in range(count)
            ],
        )


def test_deliveries_filters_cursor_and_order(db_services, db_client, admin_headers):
    _failed_deliveries(db_services, 5)
    _failed_deliveries(db_services, 2, url="https://other.example.com/h")
    seen, cursor = [], None
    while True:
        query = {"limit": "2", "consumer": CONSUMER, **({"cursor": cursor} if cursor else {})}
        answer = db_client.get("/api/deliveries", query_string=query, headers=admin_headers).get_json()
        seen += [d["id"] for d in answer["deliveries"]]
        assert all(d["consumer"] == CONSUMER for d in answer["deliveries"])
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5 and seen == sorted(seen, reverse=True)
    one = db_client.get("/api/deliveries?event_id=evt_other_1", headers=admin_headers).get_json()
    assert [d["event_id"] for d in one["deliveries"]] == ["evt_other_1"]
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert db_client.get("/api/deliveries", query_string={"since": future}, headers=admin_headers).get_json() == {
        "deliveries": [],
        "count": 0,
        "next_cursor": None,
    }


def test_deliveries_of_one_order(redis_client, redis_url, sqlite_url, tmp_path, admin_headers):
    env = make_env(redis_url, sqlite_url, tmp_path, FORWARD_URLS=CONSUMER)
    services = Services.build(load_config(env))
    client = create_app(services.config, services).test_client()
    store(services, "MINE", [1, 2])
    store(services, "THEIRS", [1])
    answer = client.get("/api/deliveries?order=kite/MINE", headers=admin_headers).get_json()
    with services.engine.connect() as conn:
        mine = {r.id for r in conn.execute(sa.select(events.c.id).where(events.c.order_id == "MINE"))}
    assert answer["count"] == 2 and {d["event_id"] for d in answer["deliveries"]} == mine
    services.engine.dispose()


def test_bulk_redrive_counts_then_redrives(db_services, db_client, admin_headers):
    old = datetime.now(UTC) - timedelta(days=2)
    _failed_deliveries(db_services, 3, created_at=old, batch="old")
    _failed_deliveries(db_services, 2)
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    dry = db_client.post(
        "/api/deliveries/redrive", json={"consumer": CONSUMER, "since": since, "dry_run": True}, headers=admin_headers
    )
    assert dry.status_code == 200 and dry.get_json() == {"count": 2, "dry_run": True}
    done = db_client.post("/api/deliveries/redrive", json={"consumer": CONSUMER, "since": since}, headers=admin_headers)
    assert done.status_code == 202 and done.get_json() == {"count": 2, "dry_run": False}
    with db_services.engine.connect() as conn:
        statuses = sorted(r.status for r in conn.execute(sa.select(deliveries.c.status)))
    assert statuses == ["failed", "failed", "failed", "pending", "pending"]


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {},
        {"dry_run": True},
        {"consumer": CONSUMER, "dry_run": "yes"},
        {"consumer": 5},
        {"since": "soon"},
        {"consumer": CONSUMER, "until": "\u0661"},
        {"consumer": CONSUMER, "everything": True},
    ],
)
def test_bulk_redrive_refuses_unclear_requests(db_client, admin_headers, body):
    answer = db_client.post("/api/deliveries/redrive", json=body, headers=admin_headers)
    assert answer.status_code == 400 and answer.get_json()["error"]
