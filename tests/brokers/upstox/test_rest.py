"""Upstox's order book (GET /v2/order/retrieve-all, /v2/order/history) against `responses`, and reconciliation
against the fake's book (docs/brokers.md §10.4)."""

from __future__ import annotations

import pytest
import responses
from limits import parse as parse_rate

from app.accounts.model import SessionState
from app.brokers import rest as client_base
from app.brokers.rest import BadOrderId, Unavailable
from app.config import load_config
from app.reconcile.clients import AuthExpired, OrderNotFound, client_for
from app.services import Services, set_services
from tests.brokers.upstox.fakes import INVALID_TOKEN, FakeUpstox, upstox_error, upstox_server
from tests.brokers.upstox.samples import BOOK_COMPLETE, HISTORY_FIRST, lifecycle
from tests.support.env import make_env
from tests.support.fakes.harness import api_client
from tests.support.helpers import run_pipeline
from tests.support.rest_clients import TRAVERSAL
from workers import reconcile as job

TOKEN = "upstox-rest-token-0123456789"
USER = "UP1234"
BOOK = "https://api.upstox.com/v2/order/retrieve-all"
HISTORY = "https://api.upstox.com/v2/order/history"


@pytest.fixture
def config(tmp_path, monkeypatch):
    """The environment's Upstox account; retries do not sleep."""
    monkeypatch.setattr(client_base, "BACKOFF_FACTOR", 0.0)
    monkeypatch.setattr(client_base, "BACKOFF_JITTER", 0.0)
    env = make_env(
        "redis://127.0.0.1:6379/15", "sqlite:///:memory:", tmp_path, UPSTOX_ACCESS_TOKEN=TOKEN, UPSTOX_USER_ID=USER
    )
    return load_config(env)


@responses.activate
def test_the_bearer_token_and_history_in_time_order(config):
    rows = lifecycle("250512000000001")
    responses.get(BOOK, json={"status": "success", "data": [rows[-1], BOOK_COMPLETE]})
    responses.get(HISTORY, json={"status": "success", "data": [rows[2], rows[0], rows[3], rows[1]]})
    client = client_for(config, "upstox")
    assert client.orders() == [rows[-1], BOOK_COMPLETE]
    assert [r["status"] for r in client.history("250512000000001")] == [
        "put order req received",
        "open",
        "open",
        "complete",
    ]
    for call in responses.calls:
        assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert call.request.headers["Accept"] == "application/json"
    assert responses.calls[1].request.params == {"order_id": "250512000000001"}


@responses.activate
def test_a_bare_list_is_read_as_the_book_and_an_empty_book_is_empty(config):
    responses.get(BOOK, json=[BOOK_COMPLETE])
    assert client_for(config, "upstox").orders() == [BOOK_COMPLETE]
    responses.replace(responses.GET, BOOK, json={"status": "success", "data": []})
    assert client_for(config, "upstox").orders() == []


@responses.activate
@pytest.mark.parametrize(("status", "answer"), [(401, INVALID_TOKEN), (200, INVALID_TOKEN), (403, {})])
def test_a_refused_token_is_said_plainly_without_the_token(config, status, answer):
    responses.get(BOOK, status=status, json=answer)
    with pytest.raises(AuthExpired) as caught:
        client_for(config, "upstox").orders()
    assert "log in again" in caught.value.message and TOKEN not in caught.value.message


@responses.activate
def test_an_unknown_order_is_not_found(config):
    responses.get(HISTORY, status=400, json=upstox_error("UDAPI100010", "Order not found"))
    with pytest.raises(OrderNotFound):
        client_for(config, "upstox").history("9")
    responses.replace(responses.GET, HISTORY, json={"status": "success", "data": []})
    with pytest.raises(OrderNotFound):
        client_for(config, "upstox").history("9")


@responses.activate
def test_a_busy_broker_is_unavailable_after_the_retries(config):
    responses.get(BOOK, status=429, json=upstox_error("UDAPI10005", "Too Many Request Sent"))
    with pytest.raises(Unavailable, match="429"):
        client_for(config, "upstox").orders()
    assert len(responses.calls) == client_base.RETRIES + 1


@responses.activate
@pytest.mark.parametrize("order_id", TRAVERSAL)
def test_ids_no_broker_issues_are_refused_before_any_request(config, order_id):
    with pytest.raises(BadOrderId, match="refused"):
        client_for(config, "upstox").history(order_id)
    assert len(responses.calls) == 0


def test_the_longer_windows_hold_a_burst_back(config):
    """Beyond the per-second window, the per-minute and per-30-minute ones wait their turn (moving windows)."""
    client = client_for(config, "upstox")
    client.limit_key = "upstox:test-longer-windows"
    client._longer = (parse_rate("2/minute"),)
    waits: list[float] = []

    class Waited(Exception):
        pass

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        raise Waited

    client._sleep = sleep
    client.wait_turn()
    client.wait_turn()
    assert waits == []
    with pytest.raises(Waited):
        client.wait_turn()
    assert 0 < waits[0] <= 1.0


# Reconciliation against the fake's book


@pytest.fixture
def fake_upstox():
    fake = FakeUpstox(tokens={TOKEN: USER})
    with upstox_server(fake) as http:
        yield fake, http.url


@pytest.fixture
def svc(redis_client, redis_url, sqlite_url, tmp_path, fake_upstox, monkeypatch):
    monkeypatch.setattr(client_base, "BACKOFF_FACTOR", 0.01)
    fake, url = fake_upstox
    env = make_env(
        redis_url,
        sqlite_url,
        tmp_path,
        UPSTOX_API_URL=url,
        UPSTOX_ACCESS_TOKEN=TOKEN,
        UPSTOX_USER_ID=USER,
        TELEGRAM_BOT_TOKEN="123:fake-bot",
        TELEGRAM_CHAT_ID="42",
    )
    services = Services.build(load_config(env))
    set_services(services)
    yield services
    set_services(None)
    services.engine.dispose()


def test_what_the_feed_missed_is_found_in_the_book_and_its_history(svc, fake_upstox, admin_headers):
    fake, _ = fake_upstox
    rows = lifecycle("250512000000077", USER)
    fake.book(USER).add("250512000000077", rows)
    fake.book(USER).add(HISTORY_FIRST["order_id"], [HISTORY_FIRST])
    first = job.run_reconcile("upstox", "test", svc)
    run_pipeline(svc)
    assert (first.error, first.orders_seen, first.updates_found) == (None, 2, 5)
    order = api_client(svc).get("/api/orders/upstox/250512000000077", headers=admin_headers).get_json()
    assert [e["status"] for e in order["events"]] == ["PENDING", "OPEN", "PARTIALLY_FILLED", "FILLED"]
    assert {e["source"] for e in order["events"]} == {"reconcile"} and order["account_id"] == USER
    again = job.run_reconcile("upstox", "test", svc)
    assert (again.error, again.updates_found) == (None, 0)
    paths = [r["path"] for r in fake.rest_requests]
    assert paths.count("/v2/order/retrieve-all") == 2


def test_a_data_accounts_refused_token_ends_its_session(svc, fake_upstox):
    account = svc.accounts.create(
        "upstox", "UP5555", credentials={"api_key": "k", "api_secret": "s"}, session_token="stale-upstox-token-00"
    )
    result = job.run_reconcile(account.reconcile_name, "test", svc)
    assert result.error and "log in again" in result.error
    assert svc.accounts.get(account.id).session.state in (SessionState.EXPIRED, SessionState.REFUSED)
