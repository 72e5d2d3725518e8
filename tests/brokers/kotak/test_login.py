"""Kotak Neo's TOTP + MPIN login against a local fake of its login API, and the session it makes on the stream."""

from __future__ import annotations

import asyncio
import json

import pyotp
import pytest

from app.accounts.login import LoginRefused, TotpLogin
from app.brokers.kotak.feed import KotakConnector
from app.brokers.kotak.login import KotakLogin
from app.brokers.kotak.session import parse_session
from app.brokers.loader import load
from app.brokers.registry import BY_NAME
from app.brokers.spec import TOTP
from tests.brokers.kotak.fake_login import FakeKotakLogin, kotak_login_server
from tests.brokers.kotak.fake_socket import FakeKotakStream
from tests.brokers.kotak.samples import ORDER_FRAME
from tests.support.fakes.harness import ServiceBuilder, wait_state

SECRET = pyotp.random_base32()
CREDENTIALS = {
    "api_token": "neo-dashboard-token-0001",
    "mobile": "+919999900000",
    "mpin": "654321",
    "totp_secret": SECRET,
}
UCC = "XP6M4"


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


@pytest.fixture
def fake():
    broker = FakeKotakLogin(ucc=UCC, **CREDENTIALS)
    with kotak_login_server(broker) as http:
        yield broker, http.url


def account(services, **changes: str):
    return services.accounts.create("kotak", UCC, credentials={**CREDENTIALS, **changes}, label="kotak")


def login(services, acc):
    return KotakLogin(services.config).login(services.accounts.get(acc.id, secrets=True))


def test_kotak_declares_a_totp_login_the_automatic_login_can_drive():
    """login=TOTP with a TotpLogin flow: what app/accounts/auto_login.py (helper angel's) looks for."""
    declared = BY_NAME["kotak"].accounts
    assert declared.login == TOTP and issubclass(load(declared.login_flow), TotpLogin)


def test_the_two_steps_make_one_session_of_token_sid_and_base_url(build, fake):
    broker, url = fake
    services = build(KOTAK_LOGIN_URL=url)
    result = login(services, account(services))
    token, sid = broker.trades[-1]
    assert parse_session(result.token) == parse_session(f"{token}|{sid}|{broker.base_url}") and result.user_id == UCC
    (first, first_headers, first_body), (second, second_headers, second_body) = broker.calls
    assert first.endswith("/login/1.0/tradeApiLogin") and second.endswith("/login/1.0/tradeApiValidate")
    assert set(first_body) == {"mobileNumber", "ucc", "totp"} and second_body == {"mpin": CREDENTIALS["mpin"]}
    assert first_headers["authorization"] == CREDENTIALS["api_token"] and second_headers["sid"]


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"totp_secret": pyotp.random_base32()}, "TOTP"),
        ({"mpin": "000000"}, "MPIN"),
        ({"api_token": "wrong"}, "access"),
    ],
)
def test_refused_credentials_are_said_at_once_and_never_shown(build, fake, changes, why):
    _, url = fake
    services = build(KOTAK_LOGIN_URL=url)
    with pytest.raises(LoginRefused, match=why) as refused:
        login(services, account(services, **changes))
    assert getattr(refused.value, "transient", None) is False
    assert not any(value in str(refused.value) for value in (*CREDENTIALS.values(), *changes.values()))


def test_an_unanswering_login_api_is_transient(build, fake):
    broker, url = fake
    broker.fail_next = [503]
    services = build(KOTAK_LOGIN_URL=url)
    with pytest.raises(LoginRefused) as refused:
        login(services, account(services))
    assert refused.value.transient is True


def test_missing_credentials_and_a_bad_totp_secret_are_named(build, fake):
    _, url = fake
    services = build(KOTAK_LOGIN_URL=url)
    with pytest.raises(LoginRefused, match="mpin"):
        login(services, account(services, mpin=""))
    services.accounts.delete(services.accounts.list()[0].id)
    with pytest.raises(LoginRefused, match="base32"):
        login(services, account(services, totp_secret="not base32 !!"))


def test_the_logged_in_session_connects_the_accounts_stream(build, fake):
    """The session the login stored drives the account's stream: its baseUrl, its token and sid in the cn frame."""
    broker, url = fake

    async def scenario():
        async with FakeKotakStream("", "") as stream:
            broker.base_url = stream.http_url
            services = build(KOTAK_LOGIN_URL=url)
            acc = account(services)
            result = await asyncio.to_thread(login, services, acc)
            stream.token, stream.sid = broker.trades[-1]
            services.accounts.set_session(acc.id, result.token, account_ref=result.user_id)
            stop = asyncio.Event()
            connector = KotakConnector(services, stop, account=services.accounts.get(acc.id, secrets=True))
            task = asyncio.ensure_future(connector.run())
            try:
                name = connector.status_name
                await wait_state(services, name, "connected", lambda s: s.get("connected"))
                await stream.push(ORDER_FRAME)
                state = await wait_state(services, name, "an event", lambda s: s.get("events") == 1)
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
            return stream, state

    stream, state = asyncio.run(scenario())
    token, sid = broker.trades[-1]
    assert json.loads(stream.sessions[0].first) == {"type": "cn", "Authorization": token, "Sid": sid, "src": "WEB"}
    assert token not in json.dumps(state) and sid not in json.dumps(state)
