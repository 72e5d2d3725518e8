"""End to end: a Kite rejection posted to the Procfile web reaches a (fake) Telegram chat within seconds, once."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.support.env import KITE_SECRET, make_env
from tests.support.fakes.telegram import BOT_TOKEN, CHAT_ID, FakeTelegram
from tests.support.helpers import load_fixture, sign_kite
from tests.support.procs import Process, free_port, start_web, wait_until

pytestmark = pytest.mark.e2e
SEED = load_fixture("kite_postback_complete.json")


@pytest.fixture
def stack(redis_client, redis_url, sqlite_url, tmp_path):
    telegram = FakeTelegram()
    env = make_env(
        redis_url,
        sqlite_url,
        tmp_path,
        TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_CHAT_ID=CHAT_ID,
        TELEGRAM_API_URL=telegram.url,
    )
    port = free_port()
    web = start_web(env, tmp_path, port)
    worker = Process("worker", env, tmp_path)
    yield f"http://127.0.0.1:{port}", telegram, worker
    web.stop()
    worker.stop()
    telegram.close()


def test_a_rejection_is_announced_within_seconds_and_only_once(stack):
    base, telegram, worker = stack
    rejected = sign_kite(
        dict(SEED, order_id="251128000777", status="REJECTED", status_message="RMS: margin exceeds", filled_quantity=0),
        KITE_SECRET,
    )
    body = json.dumps(rejected).encode()
    sent = time.time()
    assert requests.post(f"{base}/postbacks/kite", data=body, timeout=10).status_code == 202
    wait_until(lambda: telegram.texts(), 30, message=f"no alert reached Telegram:\n{worker.log()}")
    latency = telegram.messages[0]["at"] - sent
    print(f"postback -> Telegram: {latency * 1000:.0f} ms")
    (line,) = telegram.texts()
    assert line.startswith("REJECTED kite 251128000777 SBIN BUY") and line.endswith("— RMS: margin exceeds [AB1234]")
    assert requests.post(f"{base}/postbacks/kite", data=body, timeout=10).status_code == 200  # a redelivery
    time.sleep(2)
    assert len(telegram.texts()) == 1
    other = sign_kite(dict(rejected, order_id="251128000778"), KITE_SECRET)
    sent = time.time()
    assert requests.post(f"{base}/postbacks/kite", data=json.dumps(other), timeout=10).status_code == 202
    wait_until(lambda: len(telegram.texts()) == 2, 30, message=f"no second alert:\n{worker.log()}")
    print(f"postback -> Telegram, warm: {(telegram.messages[1]['at'] - sent) * 1000:.0f} ms")
    assert telegram.texts()[1].startswith("REJECTED kite 251128000778 ")
