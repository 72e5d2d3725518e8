"""Shoonya, Zebu and Firstock accounts log in by themselves through the generic automatic (TOTP) login, against the
fake login API: a missing session becomes the broker's susertoken; a wrong password is refused, not retried at once.
"""

from __future__ import annotations

import pyotp
import pytest

from app.accounts import auto_login
from app.accounts.model import SessionState
from app.brokers.firstock.spec import BROKER as FIRSTOCK
from app.brokers.noren.family import FIRSTOCK_LOGIN, NorenBroker
from app.brokers.shoonya.spec import BROKER as SHOONYA
from app.brokers.zebu.spec import BROKER as ZEBU
from app.config import load_config
from app.services import Services, set_services
from tests.support.env import make_env
from tests.support.fakes.noren_login import FakeNorenLogin, NorenUser, noren_login_server

BROKERS = (SHOONYA, ZEBU, FIRSTOCK)
USER = NorenUser("AL0505", "Pass@2026-auto", pyotp.random_base32(), "AL0505_U", "auto-api-secret-5a4b3c")


def login_path(broker: NorenBroker) -> str:
    return "/V1/login" if broker.login == FIRSTOCK_LOGIN else "/NorenWClientTP/QuickAuth"


@pytest.fixture
def fake():
    broker = FakeNorenLogin()
    broker.add(USER)
    with noren_login_server(broker) as server:
        broker.url = server.url
        yield broker


@pytest.fixture(params=BROKERS, ids=lambda b: b.name)
def setup(request, redis_client, redis_url, sqlite_url, tmp_path, fake):
    broker = request.param
    env = make_env(redis_url, sqlite_url, tmp_path, **{broker.var("LOGIN_URL"): fake.url + login_path(broker)})
    services = Services.build(load_config(env))
    set_services(services)
    yield broker, services
    set_services(None)
    services.engine.dispose()


def add(broker: NorenBroker, services: Services, **changes: str):
    secret_name = "api_key" if broker.login == FIRSTOCK_LOGIN else "api_secret"
    credentials = {
        "password": USER.password,
        "totp_secret": USER.totp_secret,
        "vendor_code": USER.vendor_code,
        secret_name: USER.api_secret,
        **changes,
    }
    return services.accounts.create(broker.name, USER.uid, credentials=credentials)


def test_a_missing_session_logs_in_by_itself(setup, fake):
    broker, services = setup
    account = add(broker, services)
    outcomes = auto_login.run_pass(services)
    assert [(o.account, o.ok) for o in outcomes] == [(account.id, True)]
    stored = services.accounts.get(account.id, secrets=True)
    assert stored.session.state == SessionState.ACTIVE and stored.session.token == fake.tokens[-1]
    assert stored.session.expires_at is not None  # the 06:00 IST rollover


def test_a_wrong_password_is_refused_and_backs_off(setup, fake):
    broker, services = setup
    account = add(broker, services, password="wrong-password")
    outcomes = auto_login.run_pass(services)
    assert [o.ok for o in outcomes] == [False] and "password" in outcomes[0].error.lower()
    assert auto_login.run_pass(services) == []  # backing off: not tried again at once
    assert services.accounts.get(account.id).session.state == SessionState.MISSING
