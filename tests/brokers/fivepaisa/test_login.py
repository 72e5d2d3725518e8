"""5paisa's automatic login (TOTPLogin, then GetAccessToken) against `responses` (docs/brokers.md §15.2 "Login")."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pyotp
import pytest
import responses

from app.accounts.login import LoginRefused
from app.accounts.model import Account
from app.brokers.fivepaisa.login import FivepaisaLogin
from app.config import load_config
from tests.support.env import make_env

BASE = "https://Openapi.5paisa.com/VendorsAPI/Service1.svc"
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
CREDENTIALS = {
    "app_key": "5p-app-key",
    "encryption_key": "5p-encry-key",
    "user_id": "5p-app-user",
    "pin": "123456",
    "totp_secret": SECRET,
}


@pytest.fixture
def config(tmp_path):
    return load_config(make_env("redis://127.0.0.1:6379/15", "sqlite:///:memory:", tmp_path))


def account(**credentials: str) -> Account:
    return Account(id="acc_5p", broker="fivepaisa", account_id="53570093", credentials=credentials)


def jwt(exp: int) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"unique_name": "53570093", "exp": exp}).encode()).decode()
    return "eyJhbGciOiJIUzI1NiJ9." + payload.rstrip("=") + ".c2ln"


@responses.activate
def test_totp_login_then_access_token(config):
    token = jwt(1_689_013_799)  # 23:59:59 IST, as a captured token's exp
    responses.post(f"{BASE}/TOTPLogin", json={"body": {"RequestToken": "req-tok-1", "Status": 0, "Message": "Success"}})
    responses.post(f"{BASE}/GetAccessToken", json={"body": {"AccessToken": token, "Status": 0, "Message": "Success"}})
    result = FivepaisaLogin(config).login(account(**CREDENTIALS))
    assert result.token == token and result.expires_at == datetime.fromtimestamp(1_689_013_799, UTC)
    first, second = (json.loads(call.request.body) for call in responses.calls)
    assert first["head"] == {"Key": "5p-app-key"} and first["body"]["Email_ID"] == "53570093"
    assert first["body"]["PIN"] == "123456" and pyotp.TOTP(SECRET).verify(first["body"]["TOTP"], valid_window=1)
    assert second["body"] == {"RequestToken": "req-tok-1", "EncryKey": "5p-encry-key", "UserId": "5p-app-user"}


@responses.activate
def test_refusals_name_what_is_wrong_and_hide_the_secrets(config):
    with pytest.raises(LoginRefused, match="pin, totp_secret"):
        FivepaisaLogin(config).login(account(app_key="k", encryption_key="e", user_id="u"))
    responses.post(f"{BASE}/TOTPLogin", json={"body": {"Status": 1, "Message": "Invalid PIN 123456"}})
    with pytest.raises(LoginRefused) as refused:
        FivepaisaLogin(config).login(account(**CREDENTIALS))
    assert refused.value.transient is False and "123456" not in str(refused.value)
    responses.replace(responses.POST, f"{BASE}/TOTPLogin", status=503, body="down")
    with pytest.raises(LoginRefused) as down:
        FivepaisaLogin(config).login(account(**CREDENTIALS))
    assert down.value.transient is True
