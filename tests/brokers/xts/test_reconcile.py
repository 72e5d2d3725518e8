"""XTS reconciliation against a fake interactive REST server: a missed trail is caught up (source reconcile),
in time order, and an unchanged book stores nothing; a refused token of an account added as data ends its session."""

from __future__ import annotations

import pytest

from app.accounts.model import SessionState
from app.reconcile.engine import reconcile_account, reconcile_broker
from tests.brokers.xts.samples import order
from tests.support.fakes.harness import ServiceBuilder, api_client
from tests.support.fakes.polled import FakeXtsRest
from tests.support.helpers import run_pipeline

TOKEN = "xts-rest-token-for-reconcile-123"


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


@pytest.fixture
def fake():
    server = FakeXtsRest(TOKEN).start()
    yield server
    server.close()


def trail(order_id: int) -> list[dict]:
    common = {"AppOrderID": order_id, "OrderQuantity": 10, "OrderType": "Limit", "OrderPrice": 99.5}
    return [
        order(**common, OrderStatus="PendingNew", CumulativeQuantity=0, LeavesQuantity=10,
              LastUpdateDateTime="2026-05-08T11:55:00"),
        order(**common, OrderStatus="New", CumulativeQuantity=0, LeavesQuantity=10,
              LastUpdateDateTime="2026-05-08T11:55:01"),
        order(**common, OrderStatus="PartiallyFilled", CumulativeQuantity=6, LeavesQuantity=4,
              OrderAverageTradedPrice="99.5", LastUpdateDateTime="2026-05-08T11:55:30"),
        order(**common, OrderStatus="Filled", CumulativeQuantity=10, LeavesQuantity=0,
              OrderAverageTradedPrice="99.5", LastUpdateDateTime="2026-05-08T11:56:00"),
    ]  # fmt: skip


def test_a_missed_trail_is_caught_up_in_order_and_an_unchanged_book_stores_nothing(build, fake, admin_headers):
    services = build(XTS_ROOT_URL=fake.url, XTS_USER_ID="D7730001", XTS_TOKEN=TOKEN)
    fake.add("901", trail(901))
    first = reconcile_broker(services, "xts", reason="test")
    assert first.error is None and first.orders_seen == 1 and first.updates_found == 4
    run_pipeline(services)
    stored = api_client(services).get("/api/orders/xts/901", headers=admin_headers).get_json()
    assert stored["status"] == "FILLED" and stored["filled_quantity"] == 10
    assert [e["status"] for e in stored["events"]] == ["PENDING", "OPEN", "PARTIALLY_FILLED", "FILLED"]
    assert {e["source"] for e in stored["events"]} == {"reconcile"}
    reads = fake.reads
    again = reconcile_broker(services, "xts", reason="test")
    assert again.error is None and again.updates_found == 0 and fake.reads == reads + 1  # the book only
    assert "appOrderID=901" in fake.requests[1]["path"]


def test_a_refused_token_ends_the_accounts_session(build, fake):
    services = build(XTS_ROOT_URL="https://unused.example")
    account = services.accounts.create(
        "xts", "D7730001", credentials={"root_url": fake.url}, session_token="a-token-xts-no-longer-knows"
    )
    result = reconcile_account(services, services.accounts.get(account.id, secrets=True), reason="test")
    assert "XTS refused the session token" in result.error and fake.auth_failures == 1
    assert services.accounts.get(account.id).session.state == SessionState.EXPIRED
