"""End to end: an Angel One account added through the API logs in by itself, connects, and its orders are stored
and forwarded; a refused token is logged in again with nobody at the keyboard (docs/brokers.md §9, docs/accounts.md).

The Procfile's web, worker and feeds on loopback; a fake Angel One (its login API and order book on one port, its
order-status socket on another, sharing the jwtTokens the login issues); a local consumer (FORWARD_URLS).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyotp
import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests.support.env import ADMIN_TOKEN, FORWARD_SECRET, make_env
from tests.support.fakes.angel import FakeAngelRest, FakeAngelSocket
from tests.support.fakes.harness import FAST
from tests.support.helpers import load_fixture
from tests.support.procs import Consumer, Process, free_port, start_web

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLIENT = "R52269012"
API_KEY = "angel-e2e-api-key-7788"
PIN = "8642"
SECRET = pyotp.random_base32()
ROW = load_fixture("angel_ws_open.json")["orderData"]
#: The contract's 10 s to connect a new session, the automatic login's pass, and room for a busy machine.
CONNECT_SECONDS = 40


async def call(base: str, method: str, path: str, texts: list[str], **kwargs) -> requests.Response:
    """One admin API request off the loop; its text kept (none may hold a secret)."""
    answer = await asyncio.to_thread(requests.request, method, base + path, headers=AUTH, timeout=15, **kwargs)
    texts.append(answer.text)
    return answer


async def eventually(condition, timeout: float, what: str):
    """Poll a (sync) condition until it is truthy; fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = await asyncio.to_thread(condition)
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_an_angel_account_logs_in_by_itself_and_its_orders_are_stored_and_forwarded(
    redis_client, redis_url, sqlite_url, tmp_path
):
    processes: list[Process] = []
    answers: list[str] = []
    consumer = Consumer()
    tokens: set[str] = set()
    seen: list[str] = []  # every jwtToken the fake issued
    rest = FakeAngelRest(CLIENT, API_KEY, PIN, SECRET, tokens).start()

    async def scenario() -> None:
        async with FakeAngelSocket(CLIENT, tokens) as socket:
            env = make_env(
                redis_url,
                sqlite_url,
                tmp_path,
                **FAST,
                FEEDS="",
                ANGEL_WS_URL=socket.url,
                ANGEL_API_URL=rest.url,
                FORWARD_URLS=consumer.url,
                WORKER_PROCESSES="1",
            )
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            processes.append(await asyncio.to_thread(start_web, env, tmp_path, port))
            processes.append(Process("worker", env, tmp_path))
            processes.append(Process("feeds", env, tmp_path))

            # Added through the API with its client code, PIN and TOTP secret, and no token.
            body = {
                "broker": "angel",
                "account_id": CLIENT,
                "label": "angel e2e",
                "credentials": {"api_key": API_KEY, "pin": PIN, "totp_secret": SECRET},
            }
            made = await call(base, "POST", "/api/accounts", answers, json=body)
            assert made.status_code == 201, made.text
            account = made.json()["id"]
            assert made.json()["session"]["login"] == "totp"

            # It logs in by itself, and its feed connects with the token the login got.
            await eventually(lambda: rest.logins, CONNECT_SECONDS, "the automatic login")
            assert rest.logins[0]["clientcode"] == CLIENT and rest.logins[0]["password"] == PIN
            await socket.wait_for(lambda: [s for s in socket.sessions if s.ws.state.name == "OPEN"], CONNECT_SECONDS)
            first = socket.sessions[-1]
            assert first.headers["Authorization"] == f"Bearer {rest.token}"
            view = (await call(base, "GET", f"/api/accounts/{account}", answers)).json()
            assert view["session"]["state"] == "active"

            # An order placed then filled is stored under the account and forwarded to the consumer.
            await socket.push_update("AB01", ROW, first)
            done = dict(ROW, orderstatus="complete", status="complete", filledshares="1120", unfilledshares="0")
            await socket.push_update("AB05", dict(done, averageprice=12.3, updatetime="19-Dec-2023 09:18:12"), first)

            def filled():
                answer = requests.get(f"{base}/api/orders/angel/{ROW['orderid']}", headers=AUTH, timeout=15)
                return answer.json() if answer.status_code == 200 and answer.json()["status"] == "FILLED" else None

            order = await eventually(filled, 30, "the order filled")
            assert order["account_id"] == CLIENT and [e["source"] for e in order["events"]] == ["websocket"] * 2
            await eventually(lambda: len(consumer.requests) >= 2, 30, "two forwarded events")
            forwarded = [Webhook(FORWARD_SECRET).verify(r["body"], r["headers"]) for r in consumer.requests]
            assert {e["broker"] for e in forwarded} == {"angel"}
            assert sorted(e["status"] for e in forwarded) == ["FILLED", "OPEN"]  # sent at once, in any order

            # The broker stops taking the token: the feed's refusal is answered by a new login, and it reconnects.
            old = rest.token
            seen.append(old)
            tokens.discard(old)
            first.ws.transport.abort()
            await eventually(lambda: len(rest.logins) >= 2, CONNECT_SECONDS, "a second automatic login")
            await socket.wait_for(
                lambda: socket.sessions[-1] is not first and socket.sessions[-1].ws.state.name == "OPEN",
                CONNECT_SECONDS,
                "reconnected with the new token",
            )
            assert socket.sessions[-1].headers["Authorization"] == f"Bearer {rest.token}" != f"Bearer {old}"
            seen.append(rest.token)
            view = (await call(base, "GET", f"/api/accounts/{account}", answers)).json()
            assert view["session"]["state"] == "active"

    try:
        asyncio.run(scenario())
        logs = "\n".join(p.log() for p in processes)
    finally:
        for process in processes:
            process.stop()
        rest.close()
        consumer.close()
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    stored = b"".join(path.read_bytes() for path in database.parent.glob(database.name + "*"))
    # The PIN is four digits, which times and ports hold too: it is checked in the answers only.
    assert not [text for text in answers if f'"{PIN}"' in text]
    for secret in (SECRET, API_KEY, *seen):
        assert not [text for text in answers if secret in text], secret
        assert secret not in logs, secret
        assert secret.encode() not in stored, secret
    assert "Traceback" not in logs, logs[-4000:]
