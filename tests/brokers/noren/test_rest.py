"""The Noren family's order book, once per broker, against a fake REST server speaking that broker's dialect
(Noren's form jData/jKey for Flattrade, Shoonya, Zebu; Firstock's JSON), then a reconciliation run through it."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from app.brokers import rest as client_base
from app.brokers.firstock.spec import BROKER as FIRSTOCK
from app.brokers.flattrade.spec import BROKER as FLATTRADE
from app.brokers.noren.family import FIRSTOCK_JSON, NorenBroker
from app.brokers.rest import BadOrderId
from app.brokers.shoonya.spec import BROKER as SHOONYA
from app.brokers.zebu.spec import BROKER as ZEBU
from app.config import load_config
from app.db import orders
from app.reconcile.clients import AuthExpired, OrderNotFound, client_for
from app.reconcile.engine import reconcile_broker
from app.services import Services, set_services
from tests.support.env import make_env
from tests.support.fakes.rest import FakeFirstockRest, FakeNorenRest, noren_order
from tests.support.helpers import run_pipeline
from tests.support.rest_clients import TRAVERSAL

BROKERS = (FLATTRADE, SHOONYA, ZEBU, FIRSTOCK)
UID = "NR0303"
TOKEN = "noren-rest-session-token"
LIFE = [
    noren_order("25112800001", "PENDING", quantity=60, at="10:30:00 28-11-2026", report="NewAck", uid=UID),
    noren_order("25112800001", "OPEN", quantity=60, at="10:30:01 28-11-2026", report="New", uid=UID),
    noren_order(
        "25112800001",
        "OPEN",
        quantity=60,
        filled=20,
        average="1400.00",
        at="10:30:05 28-11-2026",
        report="Fill",
        uid=UID,
    ),
    noren_order(
        "25112800001",
        "COMPLETE",
        quantity=60,
        filled=60,
        average="1400.50",
        at="10:31:00 28-11-2026",
        report="Fill",
        uid=UID,
    ),
]


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(client_base, "BACKOFF_FACTOR", 0.0)
    monkeypatch.setattr(client_base, "BACKOFF_JITTER", 0.0)


def fake_for(broker: NorenBroker):
    """A fake of the broker's book at the broker's own path."""
    if broker.rest == FIRSTOCK_JSON:
        return FakeFirstockRest(UID, TOKEN).start()
    return FakeNorenRest(UID, TOKEN, prefix=urlsplit(broker.api_url).path).start()


@pytest.fixture(params=BROKERS, ids=lambda b: b.name)
def book(request):
    broker = request.param
    fake = fake_for(broker)
    fake.add("25112800001", LIFE)
    yield broker, fake
    fake.close()


def config_for(broker: NorenBroker, fake, redis_url: str, sqlite_url: str, tmp_path, token: str = TOKEN):
    """The broker's variables pointing at the fake."""
    values = {broker.var("API_URL"): fake.url, broker.var("USER_ID"): UID, broker.var("TOKEN"): token}
    return load_config(make_env(redis_url, sqlite_url, tmp_path, **values))


def test_book_and_history_in_the_brokers_dialect(book, redis_url, sqlite_url, tmp_path):
    broker, fake = book
    client = client_for(config_for(broker, fake, redis_url, sqlite_url, tmp_path), broker.name)
    assert [client.order_id(r) for r in client.orders()] == ["25112800001"]
    history = client.history("25112800001")
    assert [r["status"] for r in history] == ["PENDING", "OPEN", "OPEN", "COMPLETE"]  # newest first, sorted back
    last = client.to_payload(history[-1])
    assert (last["norenordno"], last["reporttype"], last["fillshares"]) == ("25112800001", "Fill", "60")
    sent = fake.requests[-1]
    if broker.rest == FIRSTOCK_JSON:
        assert json.loads(sent["body"]) == {"userId": UID, "jKey": TOKEN, "orderNumber": "25112800001"}
        assert sent["path"].endswith("/singleOrderHistory")
    else:
        form = parse_qs(sent["body"].decode())
        assert json.loads(form["jData"][0]) == {"uid": UID, "ordersource": "API", "norenordno": "25112800001"}
        assert form["jKey"] == [TOKEN] and sent["path"] == urlsplit(broker.api_url).path + "/SingleOrdHist"


def test_an_expired_session_and_an_unknown_order(book, redis_url, sqlite_url, tmp_path):
    broker, fake = book
    client = client_for(config_for(broker, fake, redis_url, sqlite_url, tmp_path), broker.name)
    with pytest.raises(OrderNotFound):
        client.history("99999999999")
    fake.expired = True
    with pytest.raises(AuthExpired, match=broker.var("TOKEN")):
        client.orders()


@pytest.mark.parametrize("order_id", TRAVERSAL[:3])
def test_traversal_shaped_ids_are_refused_before_any_request(book, redis_url, sqlite_url, tmp_path, order_id):
    broker, fake = book
    client = client_for(config_for(broker, fake, redis_url, sqlite_url, tmp_path), broker.name)
    before = len(fake.requests)
    with pytest.raises(BadOrderId):
        client.history(order_id)
    assert len(fake.requests) == before


def test_a_reconciliation_stores_the_orders_whole_life(book, redis_client, redis_url, sqlite_url, tmp_path):
    """A run through the fake: the order's history becomes its events (source reconcile), PARTIALLY_FILLED from
    the quantities on the way, FILLED at the end."""
    broker, fake = book
    services = Services.build(config_for(broker, fake, redis_url, sqlite_url, tmp_path))
    set_services(services)
    try:
        result = reconcile_broker(services, broker.name, reason="test")
        run_pipeline(services)
        with services.engine.connect() as conn:
            row = conn.execute(
                sa.select(orders.c.data).where(orders.c.broker == broker.name, orders.c.order_id == "25112800001")
            ).first()
    finally:
        set_services(None)
        services.engine.dispose()
    assert result.orders_seen == 1 and result.updates_found == len(LIFE), result
    assert row is not None and row.data["status"] == "FILLED" and row.data["filled_quantity"] == 60
