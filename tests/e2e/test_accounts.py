"""End to end: accounts added, refused, logged in again and taken over while every process runs (docs/accounts.md).

The Procfile's web and worker and TWO feeds processes on loopback, a fake Dhan order-update socket serving
several accounts, a fake Telegram: two Dhan accounts added through the API are each connected exactly once
with their own token and their orders stored with their client ids; a token the broker stops taking turns the
session refused with one alert and no hammering, and a pasted token reconnects it; a SIGKILLed feeds process's
accounts are taken over; a forged login callback is refused; no token shows in any answer, log or database file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import requests

from app.redis_keys import feed_lease_key
from tests.support.env import ADMIN_TOKEN, make_env
from tests.support.fakes import FakeDhanAccounts
from tests.support.fakes.harness import FAST
from tests.support.fakes.sockets import dhan_order_alert
from tests.support.fakes.telegram import BOT_TOKEN, CHAT_ID, FakeTelegram
from tests.support.procs import Process, free_port, start_web

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLIENT_A, TOKEN_A = "1100000071", "dhan-e2e-token-of-account-a-0123456789"
CLIENT_B, TOKEN_B = "1100000072", "dhan-e2e-token-of-account-b-9876543210"
TOKEN_A2 = "dhan-e2e-second-token-of-a-5555555555"
#: Generous bounds: the contract's (10 s to connect a change, 30 s to take over) plus room for a busy machine.
CHANGE_SECONDS = 20
TAKEOVER_SECONDS = 45


class Api:
    """The admin API of the running web, every answer's text kept (none may hold a token)."""

    def __init__(self, base: str, texts: list[str]) -> None:
        self.base = base
        self.texts = texts

    async def call(self, method: str, path: str, **kwargs) -> requests.Response:
        """One request, off the event loop the fake broker runs on."""
        answer = await asyncio.to_thread(
            requests.request, method, self.base + path, headers=AUTH, timeout=15, allow_redirects=False, **kwargs
        )
        self.texts.append(answer.text)
        return answer

    async def account(self, account_id: str) -> dict:
        """One account's view."""
        answer = await self.call("GET", f"/api/accounts/{account_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def order(self, order_id: str) -> dict | None:
        """A stored Dhan order, or None."""
        answer = await self.call("GET", f"/api/orders/dhan/{order_id}")
        return answer.json() if answer.status_code == 200 else None


async def eventually(condition, timeout: float, what: str):
    """Poll an async condition until it is truthy; fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = await condition()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture
def telegram():
    fake = FakeTelegram()
    yield fake
    fake.close()


def test_accounts_follow_the_api_across_two_feeds_processes(redis_client, redis_url, sqlite_url, tmp_path, telegram):
    processes: list[Process] = []
    answers: list[str] = []

    async def scenario() -> None:
        async with FakeDhanAccounts({CLIENT_A: TOKEN_A, CLIENT_B: TOKEN_B}) as fake:
            env = make_env(
                redis_url,
                sqlite_url,
                tmp_path,
                **FAST,
                FEEDS="",
                DHAN_ORDER_WS_URL=fake.url,
                TELEGRAM_BOT_TOKEN=BOT_TOKEN,
                TELEGRAM_CHAT_ID=CHAT_ID,
                TELEGRAM_API_URL=telegram.url,
                WORKER_PROCESSES="1",
            )
            port = free_port()
            processes.append(await asyncio.to_thread(start_web, env, tmp_path, port))
            processes.append(Process("worker", env, tmp_path))
            feeds = [Process("feeds", env, _dir(tmp_path / f"feeds-{n}")) for n in (1, 2)]
            processes.extend(feeds)
            api = Api(f"http://127.0.0.1:{port}", answers)

            # Two Dhan accounts added while everything runs: each connected once, with its own token.
            made = {}
            for client, token in ((CLIENT_A, TOKEN_A), (CLIENT_B, TOKEN_B)):
                body = {"broker": "dhan", "account_id": client, "label": client, "credentials": {"access_token": token}}
                answer = await api.call("POST", "/api/accounts", json=body)
                assert answer.status_code == 201, answer.text
                made[client] = answer.json()["id"]
            await fake.wait_for(lambda: fake.connected_clients() == {CLIENT_A, CLIENT_B}, 40, "both accounts")
            assert sorted(fake.logins) == sorted([(CLIENT_A, TOKEN_A), (CLIENT_B, TOKEN_B)])
            assert all(len(fake.open_sessions(c)) == 1 for c in (CLIENT_A, CLIENT_B))

            # Each account's order is stored under its client id.
            await fake.push_to(CLIENT_A, dhan_order_alert(CLIENT_A, "52203000000071"))
            await fake.push_to(CLIENT_B, dhan_order_alert(CLIENT_B, "52203000000072"))
            for client, order_no in ((CLIENT_A, "52203000000071"), (CLIENT_B, "52203000000072")):
                stored = await eventually(lambda o=order_no: api.order(o), 30, f"order {order_no} stored")
                assert stored["account_id"] == client and stored["events"][0]["source"] == "websocket"
            view = await api.account(made[CLIENT_A])
            assert view["session"]["state"] == "active" and view["feed_state"] == "running"

            # The broker stops taking A's token: refused, one alert, no hammering.
            del fake.tokens[CLIENT_A]
            fake.open_sessions(CLIENT_A)[0].ws.transport.abort()
            refused = await eventually(
                lambda: _session_is(api, made[CLIENT_A], ("refused", "expired")), CHANGE_SECONDS, "A refused"
            )
            assert refused["last_error"]
            await eventually(
                lambda: asyncio.sleep(0, [t for t in telegram.texts() if f"login needed: dhan {CLIENT_A}" in t]),
                60,
                "the login-needed alert",
            )
            await asyncio.sleep(8)  # what a hammering feed would do meanwhile
            assert [c for c, _ in fake.refused].count(CLIENT_A) == 1
            assert len([t for t in telegram.texts() if "login needed" in t]) == 1
            assert fake.open_sessions(CLIENT_B)  # B never noticed

            # A pasted token takes over at once.
            fake.tokens[CLIENT_A] = TOKEN_A2
            answer = await api.call("PUT", f"/api/accounts/{made[CLIENT_A]}/session", json={"access_token": TOKEN_A2})
            assert answer.status_code == 200 and answer.json()["session"]["state"] == "active", answer.text
            await fake.wait_for(lambda: (CLIENT_A, TOKEN_A2) in fake.logins, CHANGE_SECONDS, "A back, new token")

            # A feeds process SIGKILLed: its accounts are taken over by the other.
            lease = redis_client.get(feed_lease_key(f"dhan:{made[CLIENT_B]}")).decode()
            victim = next(p for p in feeds if f":{p.popen.pid}:" in lease)  # holder: host:pid:random
            victim.kill_group()
            await asyncio.to_thread(victim.popen.wait, 10)
            await fake.wait_for(lambda: not fake.open_sessions(CLIENT_B), 20, "the victim's connection gone")
            await fake.wait_for(
                lambda: fake.connected_clients() == {CLIENT_A, CLIENT_B}, TAKEOVER_SECONDS, "B taken over"
            )
            assert all(len(fake.open_sessions(c)) == 1 for c in (CLIENT_A, CLIENT_B))

            # A callback nobody started is refused, with no session stored.
            forged = await api.call("GET", "/brokers/kite/callback?request_token=forged&action=login&status=success")
            assert forged.status_code in (400, 403), forged.text
            listed = await api.call("GET", "/api/accounts")
            assert listed.status_code == 200 and {a["id"] for a in listed.json()["accounts"]} >= set(made.values())

    try:
        asyncio.run(scenario())
        logs = "\n".join(p.log() for p in processes)
    finally:
        for process in processes:
            process.stop()
    secrets = (TOKEN_A, TOKEN_B, TOKEN_A2)
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    stored = b"".join(path.read_bytes() for path in database.parent.glob(database.name + "*"))
    assert len(answers) >= 8  # every call above, at least
    for secret in secrets:
        assert not [text for text in answers if secret in text]
        assert secret not in logs
        assert secret.encode() not in stored
    assert "Traceback" not in logs, logs[-4000:]


async def _session_is(api: Api, account_id: str, states: tuple[str, ...]) -> dict | None:
    """The account's view once its session is in one of `states`."""
    view = await api.account(account_id)
    return view if view["session"]["state"] in states else None


def _dir(path: Path) -> Path:
    """A log directory of its own (two feeds processes would share feeds.log)."""
    path.mkdir(parents=True, exist_ok=True)
    return path
