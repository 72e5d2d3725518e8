"""XTS accounts added as data, through the real feeds supervisor: each connects to its own deployment's root URL
with its own token and userID, and a `logout` marks that account's session refused. XTS logs in by itself (a TOTP
kind, app/accounts/auto_login.py), so the feed announces nothing: the automatic login does if it cannot log in."""

from __future__ import annotations

import asyncio

import pytest

from app.accounts.model import SessionState
from app.redis_keys import ALERTS_STREAM
from tests.support.fakes.harness import ServiceBuilder, wait_state
from tests.support.fakes.socket_server import wait_until
from tests.support.fakes.xts import FakeXtsServer
from workers.feeds.runner import build_supervisor

QUICK = {"FEEDS_ACCOUNTS_POLL_SECONDS": "0.2", "FEEDS_LEASE_SECONDS": "6", "FEEDS_CONNECT_RATE": "100"}
TELEGRAM = {"TELEGRAM_BOT_TOKEN": "123456:test-bot-token", "TELEGRAM_CHAT_ID": "42"}


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


def test_two_deployments_one_supervisor_and_a_logout_refuses_that_session_only(build):
    async def scenario():
        async with FakeXtsServer("iifl-token-0001", "IIFL01") as iifl, FakeXtsServer("jxts-token-0002", "JX02") as jx:
            services = build(**QUICK, **TELEGRAM)  # XTS_ROOT_URL stays the default: each account names its own
            a = services.accounts.create(
                "xts", "IIFL01", credentials={"root_url": iifl.url}, session_token="iifl-token-0001"
            )
            b = services.accounts.create(
                "xts", "JX02", credentials={"root_url": jx.url}, session_token="jxts-token-0002"
            )
            stop = asyncio.Event()
            task = asyncio.ensure_future(build_supervisor(services, stop, ()).run())
            first_a, first_b = await iifl.wait_sessions(1), await jx.wait_sessions(1)
            for account in (a, b):
                await wait_state(services, account.feed_status_name("xts"), "joined", lambda s: s.get("connected"))
            await iifl.emit("logout", "Logged out from another session", as_text=False)
            await wait_until(lambda: services.accounts.get(a.id).session.state == SessionState.REFUSED, "a refused", 10)
            await asyncio.sleep(1.0)
            b_state = services.accounts.get(b.id).session.state
            stop.set()
            await asyncio.wait_for(task, 15)
            return services, first_a, first_b, b_state, len(iifl.sessions)

    services, first_a, first_b, b_state, a_sessions = asyncio.run(scenario())
    assert (first_a.query["token"], first_a.query["userID"]) == ("iifl-token-0001", "IIFL01")
    assert (first_b.query["token"], first_b.query["userID"]) == ("jxts-token-0002", "JX02")
    assert b_state == SessionState.ACTIVE and a_sessions == 1  # the refused token is not dialled again
    lines = [fields[b"text"].decode() for _, fields in services.redis.xrange(ALERTS_STREAM)]
    assert [line for line in lines if line.startswith("login needed")] == []
