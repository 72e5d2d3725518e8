"""End to end: an Upstox account added through the API logs in through the redirect flow, its feed connects
through the authorize step, and an order update from the fake is stored and forwarded (docs/brokers.md §10).

The Procfile's web, worker and feeds processes on loopback; the fake Upstox (login dialog, token API, authorize
step, order-updates socket) in this test; a local HTTP consumer as FORWARD_URLS. The browser is a `requests`
session signed in to the web, following each redirect by hand as a browser would.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.brokers.upstox.fakes import FakeUpstox, FakeUpstoxSocket, upstox_server
from tests.brokers.upstox.samples import lifecycle
from tests.support.env import ADMIN_TOKEN, FORWARD_SECRET, make_env
from tests.support.fakes.harness import FAST
from tests.support.procs import Consumer, Process, free_port, start_web

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
API_KEY = "615b1297-d443-3b39-ba19-1927fbcdddc7"
API_SECRET = "upstox-e2e-secret-never-shown-4242"
USER = "UP1234"
REDIRECT = "https://orderhook.example.com/brokers/upstox/callback"
ORDER = "250512000004242"


async def eventually(condition, timeout: float, what: str):
    """Poll a blocking condition off the loop until it is truthy; fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = await asyncio.to_thread(condition)
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def log_in(base: str, account_id: str) -> dict[str, str]:
    """Sign in, press Log in, submit Upstox's dialog, come back: the Accounts page's query."""
    browser = requests.Session()
    assert browser.post(f"{base}/signin", data={"token": ADMIN_TOKEN}, timeout=15).status_code == 200
    started = browser.get(f"{base}/accounts/{account_id}/login", allow_redirects=False, timeout=15)
    assert started.status_code == 302, started.text
    dialog = started.headers["Location"]
    assert browser.get(dialog, timeout=15).status_code == 200
    query = {key: values[0] for key, values in parse_qs(urlsplit(dialog).query).items()}
    form = {key: query[key] for key in ("client_id", "redirect_uri", "state")} | {"user_id": USER}
    submitted = browser.post(f"{dialog.split('/v2/')[0]}/login", data=form, allow_redirects=False, timeout=15)
    back = browser.get(submitted.headers["Location"], allow_redirects=False, timeout=30)
    assert back.status_code == 302, back.text
    landed = urlsplit(back.headers["Location"])
    return {key: values[0] for key, values in parse_qs(landed.query).items()}


def signature(request: dict) -> str:
    """The Standard Webhooks signature the consumer should have been sent."""
    key = base64.b64decode(FORWARD_SECRET.removeprefix("whsec_"))
    headers = request["headers"]
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + request["body"]
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_an_upstox_account_logs_in_connects_and_its_update_is_stored_and_forwarded(
    redis_client, redis_url, sqlite_url, tmp_path
):
    processes: list[Process] = []
    consumer = Consumer()
    answers: list[str] = []

    async def scenario() -> dict:
        async with FakeUpstoxSocket() as sock:
            fake = FakeUpstox(socket=sock, apps={API_KEY: (API_SECRET, REDIRECT)}, user_id=USER)
            with upstox_server(fake) as http:
                port = free_port()
                fake.browser_origin = f"http://127.0.0.1:{port}"
                env = make_env(
                    redis_url,
                    sqlite_url,
                    tmp_path,
                    **FAST,
                    FEEDS="",
                    FORWARD_URLS=consumer.url,
                    UPSTOX_API_URL=http.url,
                    UPSTOX_LOGIN_URL=f"{http.url}/v2/login/authorization/dialog",
                    UPSTOX_FEED_AUTHORIZE_URL=f"{http.url}/v2/feed/portfolio-stream-feed/authorize",
                    WORKER_PROCESSES="1",
                )
                processes.append(await asyncio.to_thread(start_web, env, tmp_path, port))
                processes.append(Process("worker", env, tmp_path))
                processes.append(Process("feeds", env, tmp_path))
                base = f"http://127.0.0.1:{port}"

                body = {
                    "broker": "upstox",
                    "account_id": USER,
                    "label": "upstox main",
                    "credentials": {"api_key": API_KEY, "api_secret": API_SECRET},
                }
                made = await asyncio.to_thread(
                    requests.post, f"{base}/api/accounts", json=body, headers=AUTH, timeout=15
                )
                assert made.status_code == 201, made.text
                account = made.json()
                assert account["session"] == {**account["session"], "state": "missing", "login": "redirect"}

                landed = await asyncio.to_thread(log_in, base, account["id"])
                assert landed["login"] == "ok", landed
                token = fake.latest_token(USER)
                await sock.wait_sessions(1, 40, logged_in=False)
                assert sock.connected_tokens == [token]
                assert fake.authorize_requests[-1] == {"update_types": "order", "auth": f"Bearer {token}"}

                for update in lifecycle(ORDER, USER):
                    await sock.push(update)

                def stored() -> dict | None:
                    answer = requests.get(f"{base}/api/orders/upstox/{ORDER}", headers=AUTH, timeout=15)
                    answers.append(answer.text)
                    return answer.json() if answer.status_code == 200 and answer.json()["status"] == "FILLED" else None

                order = await eventually(stored, 40, "the order stored as FILLED")
                await eventually(lambda: len(consumer.requests) >= 4, 40, "four events forwarded")
                view = requests.get(f"{base}/api/accounts/{account['id']}", headers=AUTH, timeout=15)
                answers.append(view.text)
                return {"order": order, "view": view.json(), "token": token}

    try:
        outcome = asyncio.run(scenario())
        logs = "\n".join(p.log() for p in processes)
    finally:
        for process in processes:
            process.stop()
        consumer.close()
    order, view, token = outcome["order"], outcome["view"], outcome["token"]
    assert [e["status"] for e in order["events"]] == ["PENDING", "OPEN", "PARTIALLY_FILLED", "FILLED"]
    assert order["account_id"] == USER and {e["source"] for e in order["events"]} == {"websocket"}
    assert view["session"]["state"] == "active" and view["feed_state"] == "running"
    forwarded = [request["json"] for request in consumer.requests]
    # A batch's events are forwarded concurrently (docs/pipeline.md): their arrival order is not theirs.
    assert sorted(e["id"] for e in forwarded) == sorted(e["id"] for e in order["events"])
    assert {e["status"] for e in forwarded} == {"PENDING", "OPEN", "PARTIALLY_FILLED", "FILLED"}
    assert {e["broker"] for e in forwarded} == {"upstox"}
    assert all(request["headers"]["webhook-signature"] == signature(request) for request in consumer.requests)
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    kept = b"".join(path.read_bytes() for path in database.parent.glob(database.name + "*"))
    for secret in (API_SECRET, token):
        assert secret not in logs and secret.encode() not in kept
        assert not [text for text in answers if secret in text]
    assert "Traceback" not in logs, logs[-4000:]
