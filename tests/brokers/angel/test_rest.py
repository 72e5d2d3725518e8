"""Angel One's order book: the client against `responses`, and reconciliation of an account against a fake book."""

from __future__ import annotations

import pytest
import responses

from app import create_app
from app.accounts.model import SessionState
from app.brokers import rest as client_base
from app.brokers.rest import BadOrderId, OrderNotFound, Unavailable
from app.config import load_config
from app.reconcile.clients import AuthExpired, BadResponse, client_for
from app.redis_keys import ALERTS_STREAM
from app.services import Services, set_services
from tests.support.env import make_env
from tests.support.fakes.angel import FakeAngelRest
from tests.support.helpers import load_fixture, run_pipeline
from tests.support.rest_clients import TRAVERSAL
from workers import reconcile as job

BASE = "https://apiconnect.angelone.in"
BOOK = f"{BASE}/rest/secure/angelbroking/order/v1/getOrderBook"
DETAILS = f"{BASE}/rest/secure/angelbroking/order/v1/details/"
CREDENTIALS = {"ANGEL_CLIENT_CODE": "R52269012", "ANGEL_JWT_TOKEN": "angel.jwt.token", "ANGEL_API_KEY": "angelkey"}
COMPLETE = load_fixture("angel_details_complete.json")["data"]
OPEN = load_fixture("angel_ws_open.json")
SECRET = "JBSWY3DPEHPK3PXP"


@pytest.fixture
def angel_config(tmp_path, monkeypatch):
    """A config with the environment's Angel credentials; retries do not sleep."""
    monkeypatch.setattr(client_base, "BACKOFF_FACTOR", 0.0)
    monkeypatch.setattr(client_base, "BACKOFF_JITTER", 0.0)
    return load_config(make_env("redis://127.0.0.1:6379/15", "sqlite:///:memory:", tmp_path, **CREDENTIALS))


def answer(data) -> dict:
    return {"status": True, "message": "SUCCESS", "errorcode": "", "data": data}


@responses.activate
def test_headers_rows_details_by_unique_id(angel_config):
    responses.get(BOOK, json=answer([COMPLETE]))
    responses.get(DETAILS + COMPLETE["uniqueorderid"], json=answer(COMPLETE))
    client = client_for(angel_config, "angel")
    assert client.orders() == [COMPLETE]
    assert client.history("240216000318017") == [COMPLETE]
    for call in responses.calls:
        headers = call.request.headers
        assert headers["Authorization"] == "Bearer angel.jwt.token" and headers["X-PrivateKey"] == "angelkey"
        assert headers["X-UserType"] == "USER" and headers["X-SourceID"] == "WEB"
    with pytest.raises(OrderNotFound):
        client.history("240216000318099")  # not in today's book: no unique id to ask for


@responses.activate
def test_an_empty_day_is_no_orders(angel_config):
    responses.get(BOOK, json=answer(None))
    assert client_for(angel_config, "angel").orders() == []


@responses.activate
@pytest.mark.parametrize(
    ("status", "answered"),
    [
        (200, {"success": False, "message": "Invalid Token", "errorCode": "AG8001", "data": ""}),
        (401, {"success": False, "message": "Invalid Token", "errorCode": "AG8001", "data": ""}),
        (200, {"status": False, "message": "Token Expired", "errorcode": "AG8002", "data": None}),
        (403, {"message": "Forbidden"}),
    ],
)
def test_a_refused_token_is_auth_expired(angel_config, status, answered):
    responses.get(BOOK, status=status, json=answered)
    with pytest.raises(AuthExpired, match="Angel One session expired"):
        client_for(angel_config, "angel").orders()


@responses.activate
def test_the_rate_limits_text_is_unavailable_and_odd_bodies_are_bad(angel_config):
    responses.get(BOOK, status=403, body="Access denied because of exceeding access rate")
    with pytest.raises(Unavailable, match="rate limit"):
        client_for(angel_config, "angel").orders()
    responses.replace(responses.GET, BOOK, json=answer({"not": "a list"}))
    with pytest.raises(BadResponse):
        client_for(angel_config, "angel").orders()
    responses.replace(
        responses.GET, BOOK, json={"status": False, "message": "Something Went Wrong", "errorcode": "AB1004"}
    )
    with pytest.raises(BadResponse, match="Something Went Wrong"):
        client_for(angel_config, "angel").orders()


@responses.activate
def test_an_unknown_unique_id_is_order_not_found(angel_config):
    responses.get(BOOK, json=answer([COMPLETE]))
    responses.get(
        DETAILS + COMPLETE["uniqueorderid"],
        json={"status": False, "message": "Order not found", "errorcode": "AB1007", "data": None},
    )
    client = client_for(angel_config, "angel")
    client.orders()
    with pytest.raises(OrderNotFound):
        client.history("240216000318017")


@responses.activate
@pytest.mark.parametrize("unique", TRAVERSAL[:-1])
def test_a_traversal_shaped_unique_id_is_refused_before_any_request(angel_config, unique):
    responses.get(BOOK, json=answer([dict(COMPLETE, uniqueorderid=unique)]))
    client = client_for(angel_config, "angel")
    client.orders()
    with pytest.raises(BadOrderId):
        client.history("240216000318017")
    assert len(responses.calls) == 1


def test_the_limit_is_one_book_read_a_second_per_client_code(angel_config, tmp_path):
    client = client_for(angel_config, "angel")
    assert client.rate == "1/second" and client.limit_variable == "ANGEL_CLIENT_CODE"
    other = load_config(
        make_env(
            "redis://127.0.0.1:6379/15", "sqlite:///:memory:", tmp_path, **dict(CREDENTIALS, ANGEL_CLIENT_CODE="S1")
        )
    )
    assert client.limit_key != client_for(other, "angel").limit_key


# Reconciliation of an account added as data, against a fake Angel


@pytest.fixture
def fake():
    started = FakeAngelRest("R52269012", "angelkey", "1234", SECRET).start()
    started.token = "jwt-of-the-day"
    yield started
    started.close()


@pytest.fixture
def svc(redis_client, redis_url, database_url, tmp_path, fake, monkeypatch):
    monkeypatch.setattr(client_base, "BACKOFF_FACTOR", 0.01)
    monkeypatch.setattr(client_base, "BACKOFF_JITTER", 0.0)
    env = make_env(
        redis_url,
        database_url,
        tmp_path,
        ANGEL_API_URL=fake.url,
        TELEGRAM_BOT_TOKEN="123:fake-bot",
        TELEGRAM_CHAT_ID="42",
    )
    services = Services.build(load_config(env))
    set_services(services)
    yield services
    set_services(None)
    services.engine.dispose()


def add_account(svc: Services):
    credentials = {"api_key": "angelkey", "pin": "1234", "totp_secret": SECRET}
    return svc.accounts.create("angel", "R52269012", credentials=credentials, session_token="jwt-of-the-day")


def test_an_open_order_the_book_shows_filled_is_caught_up(svc, fake, admin_headers):
    account = add_account(svc)
    stored = svc.adapters["angel"].event_from_payload(OPEN, source="websocket", received_at="2026-01-01T00:00:00Z")
    svc.ingestor.submit(stored, b"{}")
    run_pipeline(svc)
    filled = dict(OPEN["orderData"], orderstatus="complete", status="complete", filledshares="1120", unfilledshares="0")
    filled |= {"averageprice": 12.3, "updatetime": "19-Dec-2023 09:25:00", "uniqueorderid": "u-1"}
    fake.add("231219000044295", [filled])
    result = job.run_reconcile(account.reconcile_name, "test", svc)
    assert result.error is None and result.updates_found == 1
    run_pipeline(svc)
    client = svc_client(svc)
    order = client.get("/api/orders/angel/231219000044295", headers=admin_headers).get_json()
    assert (order["status"], order["filled_quantity"], order["account_id"]) == ("FILLED", 1120, "R52269012")
    assert [e["source"] for e in order["events"]] == ["websocket", "reconcile"]
    assert fake.requests[0]["headers"]["Authorization"] == "Bearer jwt-of-the-day"


def test_a_modifications_new_figures_come_from_the_book(svc, fake, admin_headers):
    """docs/brokers.md §9.4: the AB11 frame keeps the old price; the book's row after it brings the new one."""
    account = add_account(svc)
    adapter = svc.adapters["angel"]
    placed = dict(OPEN, orderData=dict(OPEN["orderData"], ordertype="LIMIT", price=12.5))
    stale = dict(placed, **{"order-status": "AB11"})
    stale["orderData"] = dict(placed["orderData"], orderstatus="modify pending", updatetime="19-Dec-2023 09:20:00")
    for number, frame in enumerate((placed, stale)):
        svc.ingestor.submit(
            adapter.event_from_payload(frame, source="websocket", received_at=f"2026-01-01T00:00:0{number}Z"), b"{}"
        )
    run_pipeline(svc)
    new = dict(placed["orderData"], price=13.0, quantity="40", unfilledshares="40", updatetime="19-Dec-2023 09:20:01")
    fake.add("231219000044295", [dict(new, uniqueorderid="u-2")])
    assert job.run_reconcile(account.reconcile_name, "an Angel One modification", svc).error is None
    run_pipeline(svc)
    order = svc_client(svc).get("/api/orders/angel/231219000044295", headers=admin_headers).get_json()
    assert (order["status"], order["price"], order["quantity"], order["pending_quantity"]) == ("OPEN", 13.0, 40, 40)


def test_a_refused_token_ends_the_session_and_leaves_the_notice_to_the_automatic_login(svc, fake):
    account = add_account(svc)
    fake.expired = True
    result = job.run_reconcile(account.reconcile_name, "test", svc)
    assert result.error.startswith("Angel One refused the session token")
    assert svc.accounts.get(account.id).session.state == SessionState.EXPIRED
    kinds = [fields.get(b"kind") for _, fields in svc.redis.xrange(ALERTS_STREAM)]
    assert b"login_needed" not in kinds  # app/accounts/auto_login.py logs it in, and says so only if it cannot


def svc_client(svc: Services):
    return create_app(svc.config, svc).test_client()
