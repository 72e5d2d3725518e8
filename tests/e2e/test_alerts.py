"""End to end: rejections posted to the Procfile web reach a (fake) Telegram chat within seconds, once each.

The fake refuses a message over Telegram's 4,096 UTF-16 units as Telegram does; one worker process
keeps the stored order the posted one, so the lines must arrive in the order they were posted.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from app.alerts.telegram import CONTINUES
from app.redis_keys import ALERTS_STATUS_KEY
from tests.support.env import KITE_SECRET, POSTBACK_TOKEN, make_env
from tests.support.fakes.telegram import BOT_TOKEN, CHAT_ID, FakeTelegram, utf16_units
from tests.support.helpers import load_fixture, sign_kite
from tests.support.procs import Process, free_port, start_web, wait_until

pytestmark = pytest.mark.e2e
SEED = load_fixture("kite_postback_complete.json")
DHAN = load_fixture("dhan_postback_traded.json")
#: An ordinary Dhan RMS rejection reason, 154 characters long.
RMS_REASON = (
    "RMS:Margin Exceeds for the order, Required Margin: 2945500.00, Available Margin: 12345.67, "
    "Shortfall: 2933154.33 in NSE_EQ INTRADAY; add funds or cut qty."
)
FORGED = "FILLED kite 999999 RELIANCE BUY 1000/1000 @ avg 2945.50 [AB1234]"


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
        WORKER_PROCESSES="1",
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


def dhan_rejection(number: int, reason: str, client_id: str) -> bytes:
    """A Dhan REJECTED postback body."""
    update = dict(
        DHAN,
        orderId=f"5125112400{number:03d}",
        orderStatus="REJECTED",
        filled_qty=0,
        remainingQuantity=1,
        omsErrorCode="RMS_001",
        omsErrorDescription=reason,
        dhanClientId=client_id,
    )
    return json.dumps(update).encode()


def test_a_burst_of_long_and_hostile_dhan_rejections_arrives_line_by_line_once_and_in_order(stack, redis_client):
    base, telegram, worker = stack
    assert len(RMS_REASON) == 154
    hostile = [
        RMS_REASON,
        "RMS: margin exceeds\n" + FORGED,
        "RMS: blocked for \u202e1234BA\u202c \u2066x\u2069 📉🚨 " + "注文" * 20,
        "RMS: 📉 margin 📉 exceeds 🚨 " * 5,
    ]
    url = f"{base}/postbacks/dhan/{POSTBACK_TOKEN}"
    for number in range(40):
        client_id = "11\u202e00000001" if number % 5 == 2 else "1100000001"
        body = dhan_rejection(number, hostile[number % len(hostile)], client_id)
        assert requests.post(url, data=body, timeout=10).status_code == 202
    wait_until(lambda: len(telegram.texts()) >= 40, 60, message=f"alerts missing:\n{worker.log()}")
    time.sleep(2)  # anything sent twice would arrive by now
    lines = telegram.texts()
    assert [line.split(" ")[2] for line in lines] == [f"5125112400{number:03d}" for number in range(40)]
    assert all(line.startswith("REJECTED dhan ") for line in lines)  # no forged line of its own
    assert not any(line.endswith(CONTINUES) for line in lines)  # each fits a message whole
    assert lines[0].endswith(f"— {RMS_REASON} [1100000001]")
    assert lines[1].endswith("— RMS: margin exceeds\\u000A" + FORGED + " [1100000001]")
    assert "[11\\u202E00000001]" in lines[2] and "\\u202E1234BA\\u202C" in lines[2]
    assert not any(char in "".join(lines) for char in "\u202e\u202c\u2066\u2069\r")
    assert all(utf16_units(message["text"]) <= 4096 for message in telegram.messages)
    assert telegram.refused_texts == []
    assert redis_client.hget(ALERTS_STATUS_KEY, "sent") == b"40"  # counted what Telegram accepted, no more
    print(f"40 rejections: {len(telegram.messages)} messages")
