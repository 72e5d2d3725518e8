"""The XTS REST order book and interactive login against `responses` (docs/brokers.md §14.3, §14.4)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest
import responses

from app.accounts.login import LoginRefused
from app.accounts.model import Account
from app.brokers import rest as client_base
from app.brokers.tokens import jwt_expiry as token_expiry
from app.brokers.xts.login import XtsLogin
from app.config import load_config
from app.reconcile.clients import AuthExpired, OrderNotFound, client_for
from tests.brokers.xts.samples import order
from tests.support.env import make_env
from tests.support.rest_clients import TRAVERSAL

ROOT = "https://ttblaze.example-broker.in"
TOKEN = "xts-session-token-0123456789"


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setattr(client_base, "BACKOFF_FACTOR", 0.0)
    monkeypatch.setattr(client_base, "BACKOFF_JITTER", 0.0)
    env = make_env(
        "redis://127.0.0.1:6379/15",
        "sqlite:///:memory:",
        tmp_path,
        XTS_ROOT_URL=ROOT,
        XTS_USER_ID="D7730001",
        XTS_TOKEN=TOKEN,
    )
    return load_config(env)


@responses.activate
def test_book_and_history_with_the_bare_token_header(config):
    trail = [
        order(AppOrderID=77, OrderStatus="PendingNew", CumulativeQuantity=0, LastUpdateDateTime="2026-05-08T11:55:00"),
        order(AppOrderID=77, OrderStatus="New", CumulativeQuantity=0, LastUpdateDateTime="2026-05-08T11:55:01"),
        order(AppOrderID=77, OrderStatus="Filled", CumulativeQuantity=50, LastUpdateDateTime="2026-05-08T11:56:00"),
    ]
    responses.get(f"{ROOT}/interactive/orders", json={"type": "success", "result": [trail[-1]]})
    client = client_for(config, "xts")
    assert [client.order_id(r) for r in client.orders()] == ["77"]
    responses.replace(responses.GET, f"{ROOT}/interactive/orders", json={"type": "success", "result": trail[::-1]})
    assert [r["OrderStatus"] for r in client.history("77")] == ["PendingNew", "New", "Filled"]  # by time
    assert responses.calls[0].request.headers["Authorization"] == TOKEN
    assert "appOrderID=77" in responses.calls[1].request.url


@responses.activate
def test_invalid_token_unknown_order_and_an_empty_book(config):
    client = client_for(config, "xts")
    responses.get(f"{ROOT}/interactive/orders", json={"type": "success", "result": []})
    assert client.orders() == []
    with pytest.raises(OrderNotFound):
        client.history("404")
    responses.replace(
        responses.GET, f"{ROOT}/interactive/orders", status=400, json={"type": "error", "description": "Invalid Token"}
    )
    with pytest.raises(AuthExpired, match="Invalid Token"):
        client.orders()


@pytest.mark.parametrize("order_id", TRAVERSAL)
def test_traversal_shaped_ids_are_refused_before_any_request(config, order_id):
    with responses.RequestsMock() as mock, pytest.raises(OrderNotFound):
        client_for(config, "xts").history(order_id)
    assert not mock.calls


def _jwt(exp: int) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"userID": "D7730001", "exp": exp}).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJIUzI1NiJ9.{payload}.c2ln"


def _account(**credentials: str) -> Account:
    return Account(id="acc_x1", broker="xts", account_id="D7730001", credentials=credentials)


@responses.activate
def test_login_posts_app_key_secret_and_source_and_reads_the_token(config):
    token = _jwt(1_800_000_000)
    own = "https://xts.other-broker.example"
    responses.post(
        f"{own}/interactive/user/session",
        json={"type": "success", "result": {"token": token, "userID": "D7730001", "isInvestorClient": True}},
    )
    result = XtsLogin(config).login(_account(app_key="k-123", secret_key="s-456", root_url=own))
    assert result.token == token and result.user_id == "D7730001"
    assert result.expires_at == datetime.fromtimestamp(1_800_000_000, UTC)
    assert parse_qs(responses.calls[0].request.body) == {
        "appKey": ["k-123"],
        "secretKey": ["s-456"],
        "source": ["WEBAPI"],
    }


@responses.activate
def test_login_refusals_say_whether_to_retry(config):
    responses.post(
        f"{ROOT}/interactive/user/session", status=400, json={"type": "error", "description": "Invalid key s-456"}
    )
    with pytest.raises(LoginRefused) as refused:
        XtsLogin(config).login(_account(app_key="k-123", secret_key="s-456"))
    assert refused.value.transient is False and "s-456" not in str(refused.value)
    responses.replace(responses.POST, f"{ROOT}/interactive/user/session", status=503, body="busy")
    with pytest.raises(LoginRefused) as busy:
        XtsLogin(config).login(_account(app_key="k-123", secret_key="s-456"))
    assert busy.value.transient is True
    with pytest.raises(LoginRefused, match="https://"):
        XtsLogin(config).login(_account(app_key="k", secret_key="s", root_url="ftp://nope"))


def test_token_expiry_reads_only_a_jwt():
    assert token_expiry(_jwt(1_611_496_369)) == datetime.fromtimestamp(1_611_496_369, UTC)
    assert token_expiry("not-a-jwt") is None and token_expiry("a.!!!.c") is None


@responses.activate
def test_an_accounts_own_root_url_is_the_one_read(config):
    """An account added as data with `root_url` reads its own deployment (Account.variables puts it in place)."""
    own = "https://xts.own-broker.example"
    account = Account(id="acc_x2", broker="xts", account_id="D7730001", credentials={"root_url": own}).with_session(
        _active(TOKEN)
    )
    responses.get(f"{own}/interactive/orders", json={"type": "success", "result": []})
    assert client_for(config, account).orders() == []
    assert responses.calls[0].request.url.startswith(own)


def _active(token: str):
    from app.accounts.model import Session, SessionState

    return Session(token=token, state=SessionState.ACTIVE)
