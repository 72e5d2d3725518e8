"""End to end, Fyers (docs/brokers.md §11): an account added through the API logs in by the redirect flow against a
local fake of Fyers' login page and validate-authcode, its feed connects to a fake order socket with the new token,
and an order update the fake pushes is stored and forwarded, signed, to a local consumer. The Procfile's web,
worker and feeds on loopback; no secret in any answer, log or the database file.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.brokers.fyers.fakes import FakeFyers, FakeFyersSocket, fyers_server
from tests.support.env import ADMIN_TOKEN, make_env
from tests.support.fakes.harness import FAST
from tests.support.procs import Consumer, Process, free_port, start_web

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
APP_ID, APP_SECRET, USER = "XE2EFYERS1-100", "fyers-e2e-app-secret-0123456789", "XE0001"
CALLBACK = "https://orderhook.example.com/brokers/fyers/callback"  # PUBLIC_BASE_URL of make_env
ORDER_ID = "25120400077777"
#: The contract's 10 s to connect a change, with room for a busy machine.
CHANGE_SECONDS = 30


async def eventually(condition, timeout: float, what: str):
    """Poll a blocking condition (in a thread) until it is truthy; fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = await asyncio.to_thread(condition)
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def log_in(web: str, account: str, browser: requests.Session) -> str:
    """The browser's login: Orderhook → the fake Fyers page → submitted → back to our callback; the landing URL."""
    start = browser.get(f"{web}/accounts/{account}/login", allow_redirects=False, timeout=15)
    assert start.status_code == 302, start.text
    location = start.headers["Location"]
    page = browser.get(location, timeout=15)
    assert page.status_code == 200 and "FYERS" in page.text
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    form = {"client_id": query["client_id"], "state": query["state"], "redirect_uri": query["redirect_uri"]}
    sent = browser.post(location.split("/api/v3/")[0] + "/login", data=form, allow_redirects=False, timeout=15)
    assert sent.status_code == 302
    back = urlsplit(sent.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK  # what the trader registers with Fyers
    landed = browser.get(f"{web}{back.path}?{back.query}", allow_redirects=False, timeout=15)
    assert landed.status_code == 302, landed.text
    return landed.headers["Location"]


def test_a_fyers_account_logs_in_connects_and_its_order_is_stored_and_forwarded(
    redis_client, redis_url, sqlite_url, tmp_path
):
    processes: list[Process] = []
    answers: list[str] = []
    consumer = Consumer()
    broker = FakeFyers(apps={APP_ID: APP_SECRET}, redirect_url=CALLBACK, user_id=USER)

    async def scenario() -> dict:
        with fyers_server(broker) as http:
            async with FakeFyersSocket(broker) as socket:
                env = make_env(
                    redis_url,
                    sqlite_url,
                    tmp_path,
                    **FAST,
                    FEEDS="",
                    FYERS_WS_URL=socket.url,
                    FYERS_API_URL=http.url,
                    FYERS_LOGIN_URL=http.url,
                    FORWARD_URLS=consumer.url,
                    WORKER_PROCESSES="1",
                )
                port = free_port()
                web = f"http://127.0.0.1:{port}"
                processes.append(await asyncio.to_thread(start_web, env, tmp_path, port))
                processes.append(Process("worker", env, tmp_path))
                processes.append(Process("feeds", env, _dir(tmp_path / "feeds")))

                body = {
                    "broker": "fyers",
                    "account_id": USER,
                    "label": "fyers main",
                    "credentials": {"app_id": APP_ID, "app_secret": APP_SECRET},
                }
                added = requests.post(f"{web}/api/accounts", json=body, headers=AUTH, timeout=15)
                answers.append(added.text)
                assert added.status_code == 201, added.text
                account = added.json()
                assert account["session"] == {
                    "state": "missing",
                    "logged_in_at": None,
                    "expires_at": None,
                    "login": "redirect",
                }

                browser = requests.Session()
                signed = browser.post(f"{web}/signin", data={"token": ADMIN_TOKEN}, timeout=15)
                assert signed.status_code == 200
                landing = await asyncio.to_thread(log_in, web, account["id"], browser)
                assert parse_qs(urlsplit(landing).query)["login"] == ["ok"], landing

                await socket.wait_for(lambda: socket.subscribed(USER), CHANGE_SECONDS, "the feed subscribed")
                token_header = socket.subscribed(USER)[-1].headers["Authorization"]
                assert broker.user_of(token_header) == USER and token_header.startswith(f"{APP_ID}:")

                placed = {
                    "client_id": USER,
                    "id": ORDER_ID,
                    "symbol": "NSE:SBIN-EQ",
                    "exchange": 10,
                    "product_type": "INTRADAY",
                    "ord_type": 1,
                    "tran_side": -1,
                    "qty": 5,
                    "qty_filled": 5,
                    "qty_remaining": 0,
                    "price_limit": 802.0,
                    "price_traded": 802.05,
                    "org_ord_status": 2,
                    "report_type": "Fill",
                    "time_oms": "04-Dec-2025 11:02:03",
                }
                await socket.push_order(USER, placed)

                def stored():
                    answer = requests.get(f"{web}/api/orders/fyers/{ORDER_ID}", headers=AUTH, timeout=15)
                    answers.append(answer.text)
                    return answer.json() if answer.status_code == 200 else None

                order = await eventually(stored, CHANGE_SECONDS, "the order stored")
                await eventually(lambda: consumer.requests, CHANGE_SECONDS, "the event forwarded")
                view = requests.get(f"{web}/api/accounts/{account['id']}", headers=AUTH, timeout=15)
                answers.append(view.text)
                return {"order": order, "view": view.json()}

    try:
        result = asyncio.run(scenario())
        logs = "\n".join(p.log() for p in processes)
    finally:
        for process in processes:
            process.stop()
        consumer.close()
    order, view = result["order"], result["view"]
    assert (order["status"], order["account_id"], order["side"]) == ("FILLED", USER, "SELL")
    assert order["filled_quantity"] == 5 and order["average_price"] == 802.05
    assert order["events"][0]["source"] == "websocket"
    assert view["session"]["state"] == "active" and view["session"]["expires_at"] is not None
    [delivery] = [r for r in consumer.requests if r["json"]["order_id"] == ORDER_ID]
    assert delivery["json"]["broker"] == "fyers" and delivery["json"]["id"] == order["events"][0]["id"]
    assert delivery["headers"]["webhook-id"] == delivery["json"]["id"] and delivery["headers"]["webhook-signature"]
    tokens = [header.partition(":")[2] for header in broker.authorizations]
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    on_disk = b"".join(path.read_bytes() for path in database.parent.glob(database.name + "*"))
    for secret in (APP_SECRET, APP_ID, *tokens):
        assert not [text for text in answers if secret in text]
        assert secret not in logs
        assert secret.encode() not in on_disk
        assert secret not in json.dumps(delivery["json"])
    assert "Traceback" not in logs, logs[-4000:]


def _dir(path: Path) -> Path:
    """A log directory of its own."""
    path.mkdir(parents=True, exist_ok=True)
    return path
