"""Groww's automatic login (API key + TOTP) against `responses` (docs/brokers.md §15.1 "Login")."""

from __future__ import annotations

import json

import pyotp
import pytest
import responses

from app.accounts.login import LoginRefused
from app.accounts.model import Account
from app.brokers.groww.login import GrowwLogin
from app.config import load_config
from tests.support.env import make_env

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
URL = "https://api.groww.in/v1/token/api/access"


@pytest.fixture
def config(tmp_path):
    return load_config(make_env("redis://127.0.0.1:6379/15", "sqlite:///:memory:", tmp_path))


def account(**credentials: str) -> Account:
    return Account(id="acc_g1", broker="groww", account_id="GR0001", credentials=credentials)


@responses.activate
def test_the_totp_code_and_the_key_give_the_days_token(config):
    responses.post(URL, json={"token": "groww-day-token-xyz", "tokenRefId": "r1", "active": True})
    result = GrowwLogin(config).login(account(api_key="groww-api-key-1", totp_secret=SECRET))
    assert result.token == "groww-day-token-xyz" and result.user_id == "GR0001"
    request = responses.calls[0].request
    assert request.headers["Authorization"] == "Bearer groww-api-key-1" and request.headers["X-API-VERSION"] == "1.0"
    sent = json.loads(request.body)
    assert sent["key_type"] == "totp" and pyotp.TOTP(SECRET).verify(sent["totp"], valid_window=1)


@responses.activate
def test_refusals_say_whether_to_retry_and_hide_the_secrets(config):
    responses.post(URL, status=401, json={"error": {"code": "GA005", "message": "Invalid TOTP for groww-api-key-1"}})
    with pytest.raises(LoginRefused) as refused:
        GrowwLogin(config).login(account(api_key="groww-api-key-1", totp_secret=SECRET))
    assert refused.value.transient is False and "groww-api-key-1" not in str(refused.value)
    responses.replace(responses.POST, URL, status=429, json={})
    with pytest.raises(LoginRefused) as limited:
        GrowwLogin(config).login(account(api_key="groww-api-key-1", totp_secret=SECRET))
    assert limited.value.transient is True
    with pytest.raises(LoginRefused, match="base32"):
        GrowwLogin(config).login(account(api_key="k", totp_secret="not base32 !!"))
    with pytest.raises(LoginRefused, match="paste a token"):
        GrowwLogin(config).login(account())
