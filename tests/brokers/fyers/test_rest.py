"""The Fyers order book (GET /api/v3/orders, ?id=): `responses` for the shapes and errors, then a reconciliation
against a fake book (docs/brokers.md §11.3, docs/reconcile.md)."""

from __future__ import annotations

import copy

import pytest
import responses
import sqlalchemy as sa

from app.accounts.model import SessionState
from app.brokers import rest as client_base
from app.brokers.rest import BadOrderId
from app.config import load_config
from app.db import events as events_table
from app.events import OrderStatus
from app.reconcile.clients import AuthExpired, BadResponse, OrderNotFound, Unavailable, client_for
from app.services import Services, set_services
from tests.brokers.fyers.fakes import FakeFyers, fyers_server
from tests.brokers.fyers.samples import ORDER_BOOK, order
from tests.support.env import make_env
from tests.support.helpers import run_pipeline
from tests.support.rest_clients import TRAVERSAL
from workers import reconcile as job

BASE = "https://api-t1.fyers.in"
APP_ID, TOKEN, USER = "XC4XXXXXXM-100", "eyJ0eXAi.fyers-token", "XP0001"


@pytest.fixture
def config(tmp_path, monkeypatch):
    """The environment's Fyers account; retries do not sleep."""
    monkeypatch.setattr(client_base, "BACKOFF_FACTOR", 0.0)
    monkeypatch.setattr(client_base, "BACKOFF_JITTER", 0.0)
    return load_config(
        make_env(
            "redis://127.0.0.1:6379/15",
            "sqlite:///:memory:",
            tmp_path,
            FYERS_APP_ID=APP_ID,
            FYERS_ACCESS_TOKEN=TOKEN,
            FYERS_USER_ID=USER,
        )
    )


@responses.activate
def test_the_book_with_the_documented_answer_and_the_auth_header(config):
    responses.get(f"{BASE}/api/v3/orders", json=ORDER_BOOK)
    client = client_for(config, "fyers")
    rows = client.orders()
    assert [client.order_id(row) for row in rows] == ["23030900015105"]
    assert responses.calls[0].request.headers["Authorization"] == f"{APP_ID}:{TOKEN}"
    assert client.has_history is False and client.rate == "10/second"


@responses.activate
def test_one_order_is_read_by_id(config):
    row = order(status=6)
    responses.get(f"{BASE}/api/v3/orders", json={"s": "ok", "code": 200, "message": "", "orderBook": [row]})
    assert client_for(config, "fyers").history(row["id"]) == [row]
    assert responses.calls[0].request.url == f"{BASE}/api/v3/orders?id={row['id']}"


@responses.activate
@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"s": "error", "code": -16, "message": "Could not authenticate the user"}, AuthExpired),
        (400, {"s": "error", "code": -8, "message": "Your token has expired"}, AuthExpired),
        (403, {"s": "error", "code": -17, "message": "token invalid or expired"}, AuthExpired),
        (429, {"s": "error", "code": -429, "message": "rate limit"}, Unavailable),
        (200, {"s": "ok", "code": 200, "orderBook": "not a list"}, BadResponse),
        (400, {"s": "error", "code": -50, "message": "invalid input"}, BadResponse),
    ],
)
def test_errors_are_typed(config, status, body, error):
    responses.get(f"{BASE}/api/v3/orders", json=body, status=status)
    with pytest.raises(error) as raised:
        client_for(config, "fyers").orders()
    assert TOKEN not in raised.value.message and APP_ID not in raised.value.message


@responses.activate
def test_an_unknown_order_and_an_empty_book(config):
    responses.get(f"{BASE}/api/v3/orders", json={"s": "error", "code": -51, "message": "Invalid order id"}, status=400)
    with pytest.raises(OrderNotFound):
        client_for(config, "fyers").history("1")
    another = {"s": "ok", "code": 200, "message": "", "orderBook": [order(id="2")]}
    responses.replace(responses.GET, f"{BASE}/api/v3/orders", json=another)
    with pytest.raises(OrderNotFound):  # never another order's row as this one's
        client_for(config, "fyers").history("1")
    responses.replace(responses.GET, f"{BASE}/api/v3/orders", json={"s": "ok", "code": 200, "message": ""})
    assert client_for(config, "fyers").orders() == []


@responses.activate
@pytest.mark.parametrize("order_id", TRAVERSAL)
def test_traversal_shaped_ids_are_refused_before_any_request(config, order_id):
    with pytest.raises(BadOrderId):
        client_for(config, "fyers").history(order_id)
    assert len(responses.calls) == 0


def test_both_documented_windows_are_kept(config):
    """10 a second (the shared client's window) and 200 a minute (Fyers' own): the 201st call of a minute waits for
    the minute's window even when the second's is free."""
    from limits import parse as parse_rate

    client = client_for(config, "fyers")
    minute = parse_rate("200/minute")
    for rate in (client._rate, minute):
        client._limiter.clear(rate, client.limit_key)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        client._limiter.clear(client._rate, client.limit_key)  # a second went by

    client._sleep = sleep
    for _ in range(200):
        client.wait_turn()
    assert len(waits) == 19 and all(0 < w <= 1.0 for w in waits)  # calls 11, 21, ... 191 waited for the second
    minute_waits: list[float] = []

    def a_minute_later(seconds: float) -> None:
        minute_waits.append(seconds)
        for rate in (client._rate, minute):
            client._limiter.clear(rate, client.limit_key)

    client._sleep = a_minute_later
    client.wait_turn()
    assert len(minute_waits) == 1 and 0 < minute_waits[0] <= 1.0  # the 201st waited for the minute's window
    assert client.limit_key.startswith("fyers:") and USER not in client.limit_key


def test_a_reconciliation_finds_what_the_socket_missed_and_a_refused_token_ends_the_session(
    redis_client, redis_url, sqlite_url, tmp_path, monkeypatch
):
    """A data account reconciled against the fake book: the fill nobody pushed is stored with source reconcile; when
    the token is refused the session ends (expired) with one login-needed line."""
    monkeypatch.setattr(client_base, "BACKOFF_FACTOR", 0.01)
    monkeypatch.setattr(client_base, "BACKOFF_JITTER", 0.0)
    broker = FakeFyers(apps={APP_ID: "fyers-app-secret-0001"})
    with fyers_server(broker) as server:
        env = make_env(
            redis_url,
            sqlite_url,
            tmp_path,
            FYERS_API_URL=server.url,
            TELEGRAM_BOT_TOKEN="123:fake-bot",
            TELEGRAM_CHAT_ID="42",
        )
        services = Services.build(load_config(env))
        set_services(services)
        try:
            token = broker.issue_token(APP_ID, USER)
            account = services.accounts.create(
                "fyers",
                USER,
                credentials={"app_id": APP_ID, "app_secret": "fyers-app-secret-0001"},
                session_token=token,
            )
            placed = order(status=6)
            services.ingestor.submit(
                services.adapters["fyers"].event_from_payload(
                    copy.deepcopy(placed), source="websocket", received_at="2025-12-04T04:45:03.000000Z"
                ),
                b"{}",
            )
            run_pipeline(services)
            broker.put_order(USER, order(status=2, filledQty=10, remainingQuantity=0, tradedPrice=801.45))
            result = job.run_reconcile(account.reconcile_name, "test", services)
            assert result is not None and result.error is None, result
            assert result.updates_found == 1
            run_pipeline(services)
            with services.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(events_table.c.status, events_table.c.source, events_table.c.account_id)
                    .where(events_table.c.broker == "fyers", events_table.c.order_id == placed["id"])
                    .order_by(events_table.c.sequence)
                ).all()
            assert [tuple(r) for r in rows] == [
                (OrderStatus.OPEN, "websocket", USER),
                (OrderStatus.FILLED, "reconcile", USER),
            ]
            assert any(r["headers"].get("Authorization") == f"{APP_ID}:{token}" for r in broker.requests)

            broker.expire(APP_ID, token)
            refused = job.run_reconcile(account.reconcile_name, "again", services)
            assert refused is not None and "Fyers" in (refused.error or "")
            stored = services.accounts.get(account.id)
            assert stored.session.state in (SessionState.EXPIRED, SessionState.REFUSED)
        finally:
            set_services(None)
            services.engine.dispose()
