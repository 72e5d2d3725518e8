"""The Noren family's TOTP daily login (QuickAuth for Shoonya and Zebu, /V1/login for Firstock) against a local fake
login API (real HTTP), called as the automatic login calls it: the spec's `login_flow`, then `login(account)`."""

from __future__ import annotations

import hashlib
import json

import pyotp
import pytest

from app.accounts.login import LoginRefused, TotpLogin
from app.accounts.model import Account
from app.brokers.firstock.spec import BROKER as FIRSTOCK
from app.brokers.loader import load
from app.brokers.noren.family import FIRSTOCK_LOGIN, NorenBroker
from app.brokers.registry import BY_NAME
from app.brokers.shoonya.spec import BROKER as SHOONYA
from app.brokers.spec import TOTP
from app.brokers.zebu.spec import BROKER as ZEBU
from app.config import load_config
from tests.support.fakes.noren_login import FakeNorenLogin, NorenUser, noren_login_server

BROKERS = (SHOONYA, ZEBU, FIRSTOCK)
USER = NorenUser(
    uid="NL0404",
    password="Pass@2026-never-shown",
    totp_secret=pyotp.random_base32(),
    vendor_code="NL0404_U",
    api_secret="api-secret-9f8e7d-never-shown",
)


@pytest.fixture
def fake():
    broker = FakeNorenLogin()
    broker.add(USER)
    with noren_login_server(broker) as server:
        broker.url = server.url
        yield broker


def login_path(broker: NorenBroker) -> str:
    return "/V1/login" if broker.login == FIRSTOCK_LOGIN else "/NorenWClientTP/QuickAuth"


def flow(env, broker: NorenBroker, url: str) -> TotpLogin:
    """The broker's login as the auto_login module of app/accounts/ makes it: from the spec's login_flow."""
    declared = BY_NAME[broker.name].accounts
    assert declared.login == TOTP
    config = load_config({**env, broker.var("LOGIN_URL"): url + login_path(broker)})
    return load(declared.login_flow)(config)


def account(broker: NorenBroker, **changes: str) -> Account:
    secret_name = "api_key" if broker.login == FIRSTOCK_LOGIN else "api_secret"
    credentials = {
        "password": USER.password,
        "totp_secret": USER.totp_secret,
        "vendor_code": USER.vendor_code,
        secret_name: USER.api_secret,
        **changes,
    }
    return Account(id="acc_noren", broker=broker.name, account_id=USER.uid, credentials=credentials)


SECRETS = (USER.password, USER.totp_secret, USER.api_secret)


@pytest.mark.parametrize("broker", BROKERS, ids=lambda b: b.name)
def test_login_gives_the_days_token_and_sends_only_digests(env, fake, broker):
    result = flow(env, broker, fake.url).login(account(broker))
    assert result.token == fake.tokens[-1] and result.user_id == USER.uid
    sent = fake.requests[-1]
    raw = fake.raw_bodies[-1].decode()
    assert USER.password not in raw and USER.totp_secret not in raw
    if broker.login == FIRSTOCK_LOGIN:
        assert set(sent) == {"userId", "password", "TOTP", "vendorCode", "apiKey"}
        assert sent["password"] == hashlib.sha256(USER.password.encode()).hexdigest()
    else:
        assert raw.startswith("jData=") and "jKey" not in raw
        assert set(sent) == {"source", "apkversion", "uid", "pwd", "factor2", "vc", "appkey", "imei"}
        assert sent["appkey"] == hashlib.sha256(f"{USER.uid}|{USER.api_secret}".encode()).hexdigest()
        assert USER.api_secret not in raw and sent["imei"] == "orderhook"


def test_an_accounts_own_imei_is_sent(env, fake):
    flow(env, SHOONYA, fake.url).login(account(SHOONYA, imei="abc1234"))
    assert fake.requests[-1]["imei"] == "abc1234"


@pytest.mark.parametrize("broker", BROKERS, ids=lambda b: b.name)
def test_a_wrong_password_is_a_refusal_worth_telling_at_once(env, fake, broker):
    with pytest.raises(LoginRefused) as refused:
        flow(env, broker, fake.url).login(account(broker, password="not-the-password"))
    assert refused.value.transient is False
    assert "password" in str(refused.value).lower() and broker.title in str(refused.value)
    assert not any(secret in str(refused.value) for secret in (*SECRETS, "not-the-password"))


@pytest.mark.parametrize("broker", BROKERS, ids=lambda b: b.name)
def test_another_totp_secret_is_refused(env, fake, broker):
    with pytest.raises(LoginRefused, match="TOTP") as refused:
        flow(env, broker, fake.url).login(account(broker, totp_secret=pyotp.random_base32()))
    assert refused.value.transient is False


@pytest.mark.parametrize("broker", BROKERS, ids=lambda b: b.name)
def test_the_broker_down_or_unreachable_is_transient(env, fake, broker):
    fake.fail_with = 503
    with pytest.raises(LoginRefused, match="HTTP 503") as down:
        flow(env, broker, fake.url).login(account(broker))
    assert down.value.transient is True
    with pytest.raises(LoginRefused, match="did not answer") as unreachable:
        flow(env, broker, "http://127.0.0.1:9").login(account(broker))
    assert unreachable.value.transient is True


@pytest.mark.parametrize("broker", BROKERS, ids=lambda b: b.name)
def test_missing_or_broken_credentials_are_named_before_any_request(env, fake, broker):
    with pytest.raises(LoginRefused, match="vendor_code"):
        flow(env, broker, fake.url).login(account(broker, vendor_code=""))
    with pytest.raises(LoginRefused, match="base32"):
        flow(env, broker, fake.url).login(account(broker, totp_secret="not base32 !"))
    assert fake.requests == [] and fake.raw_bodies == []


def test_quickauth_refusal_text_is_the_brokers_emsg(env, fake):
    """Noren's emsg is what the account shows (docs/brokers.md "Accounts and daily logins")."""
    unknown = Account(id="acc_x", broker="zebu", account_id="ZZ9999", credentials=account(ZEBU).credentials)
    with pytest.raises(LoginRefused, match="Invalid Input : Invalid User"):
        flow(env, ZEBU, fake.url).login(unknown)
    assert json.loads(json.dumps(fake.requests[-1]))["uid"] == "ZZ9999"
