"""Alerts to Telegram: what is announced, once, rate-limited, retried on 429, with a real Redis."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import replace

import pytest
import requests
import responses
import sqlalchemy as sa
from redis.exceptions import LockError

from app.alerts import AlertSettings, announce, on_stored, settings_from
from app.alerts.messages import event_line
from app.alerts.telegram import Refused, RetryAfter, TelegramClient, Unavailable
from app.config import load_config
from app.db import deliveries, utcnow
from app.redis_keys import ALERTS_LOCK_KEY
from tests.support.fakes.telegram import BOT_TOKEN, CHAT_ID, FakeTelegram
from workers.alerts import AlertSender

REJECTED = {
    "id": "evt_rejected1",
    "broker": "kite",
    "order_id": "251128000123",
    "status": "REJECTED",
    "broker_status": "REJECTED",
    "symbol": "INFY",
    "side": "BUY",
    "quantity": 10,
    "price": 101.5,
    "reason": "RMS: margin exceeds",
    "account_id": "AB1234",
}


def settings(url: str = "http://telegram.invalid", kinds: str = "") -> AlertSettings:
    """Alert settings as the environment would give them."""
    env = {"APP_ENV": "development", "TELEGRAM_BOT_TOKEN": BOT_TOKEN, "TELEGRAM_CHAT_ID": CHAT_ID}
    env.update(TELEGRAM_API_URL=url, ALERT_ON=kinds)
    return settings_from(load_config(env))


@pytest.fixture
def telegram():
    fake = FakeTelegram()
    yield fake
    fake.close()


@pytest.fixture
def sender_for(services, telegram):
    """An AlertSender over the test services, pointed at the fake Telegram."""
    made = []

    def make(kinds: str = "", **kwargs) -> AlertSender:
        sender = AlertSender(services, settings(telegram.url, kinds), **kwargs)
        made.append(sender)
        return sender

    yield make
    for sender in made:
        with contextlib.suppress(LockError):  # a sender that never took the lock holds nothing
            sender.lock.release()


# What a line says:


def test_a_rejection_reads_at_a_glance():
    assert (
        event_line(REJECTED, "REJECTED")
        == "REJECTED kite 251128000123 INFY BUY 10 @ 101.50 — RMS: margin exceeds [AB1234]"
    )


def test_fills_show_filled_over_ordered_and_the_average():
    fill = dict(REJECTED, status="PARTIALLY_FILLED", filled_quantity=4, average_price=101.4, reason=None)
    assert (
        event_line(fill, "PARTIALLY_FILLED") == "PARTIALLY_FILLED kite 251128000123 INFY BUY 4/10 @ avg 101.40 [AB1234]"
    )
    market = dict(REJECTED, price=0, account_id=None, reason=None, status="FILLED")
    assert event_line(market, "REJECTED") == "REJECTED kite 251128000123 INFY BUY 10 @ MKT"


# Settings:


def test_alert_on_defaults_to_the_contract_list_plus_unknown_status_and_reconcile_errors():
    kinds = settings().kinds
    assert {"REJECTED", "PARTIALLY_FILLED", "FILLED", "feed_down", "delivery_failed"} <= kinds
    assert {"unknown_status", "reconcile_error"} <= kinds
    assert "CANCELLED" not in kinds


def test_alert_on_narrows_what_is_announced(redis_client):
    only = settings(kinds="rejected")
    assert only.wants("REJECTED") and not only.wants("FILLED")
    assert on_stored(redis_client, only, [dict(REJECTED, id="e2", status="FILLED", filled_quantity=10)]) == 0


def test_nothing_is_announced_without_a_bot_token(redis_client):
    off = settings_from(load_config({"APP_ENV": "development"}))
    assert not off.enabled
    assert on_stored(redis_client, off, [REJECTED]) == 0
    assert redis_client.xlen("oh:alerts") == 0


# Once per piece of news:


def test_each_update_is_announced_once(redis_client):
    chosen = settings()
    copy_by_websocket = dict(REJECTED, id="evt_other_copy", source="websocket")
    assert on_stored(redis_client, chosen, [REJECTED]) == 1
    assert on_stored(redis_client, chosen, [REJECTED, copy_by_websocket]) == 0
    partial = dict(REJECTED, id="p1", status="PARTIALLY_FILLED", filled_quantity=4, reason=None)
    more = dict(partial, id="p2", filled_quantity=7)
    assert on_stored(redis_client, chosen, [partial, more, dict(more, id="p3")]) == 2
    assert redis_client.xlen("oh:alerts") == 3


def test_a_late_partial_fill_of_a_filled_order_is_not_news(redis_client):
    partial = dict(REJECTED, status="PARTIALLY_FILLED", filled_quantity=4, reason=None)
    states = {("kite", "251128000123"): {"status": "FILLED"}}
    assert on_stored(redis_client, settings(), [partial], states) == 0


def test_unknown_status_words_are_counted_and_announced(redis_client):
    odd = dict(REJECTED, id="evt_odd", status="PENDING", broker_status="HALTED BY EXCHANGE")
    queued = on_stored(
        redis_client, settings(), [odd], is_known_status=lambda broker, word: word != "HALTED BY EXCHANGE"
    )
    assert queued == 1
    assert int(redis_client.hget("oh:stats", "unknown_status")) == 1
    entry = redis_client.xrange("oh:alerts")[0][1]
    assert b"HALTED BY EXCHANGE" in entry[b"text"] and entry[b"kind"] == b"unknown_status"


# The Telegram client (responses):


@responses.activate
def test_client_posts_chat_and_text_to_the_bot_url():
    responses.post(f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage", json={"ok": True})
    TelegramClient("https://api.telegram.org", BOT_TOKEN, CHAT_ID).send("hello")
    sent = json.loads(responses.calls[0].request.body)
    assert sent["chat_id"] == CHAT_ID and sent["text"] == "hello"


@responses.activate
def test_client_reads_retry_after_refusals_and_outages():
    url = f"https://t.example/bot{BOT_TOKEN}/sendMessage"
    client = TelegramClient("https://t.example", BOT_TOKEN, CHAT_ID)
    responses.post(url, status=429, json={"ok": False, "parameters": {"retry_after": 7}})
    with pytest.raises(RetryAfter) as waited:
        client.send("x")
    assert waited.value.seconds == 7
    responses.replace(responses.POST, url, status=403, json={"ok": False, "description": "bot was blocked"})
    with pytest.raises(Refused, match="TELEGRAM_CHAT_ID") as refused:
        client.send("x")
    assert BOT_TOKEN not in str(refused.value)
    responses.replace(responses.POST, url, status=502, body="bad gateway")
    with pytest.raises(Unavailable):
        client.send("x")
    responses.replace(responses.POST, url, body=requests.ConnectionError("down"))
    with pytest.raises(Unavailable) as down:
        client.send("x")
    assert BOT_TOKEN not in str(down.value)


# The sender against a fake Telegram on loopback:


def test_sender_delivers_queued_lines_in_one_message(services, telegram, sender_for):
    sender = sender_for()
    for number in range(3):
        announce(services.redis, sender.settings, "REJECTED", f"k{number}", f"line {number}")
    assert sender.send_pending(block_ms=100) == 3
    assert telegram.texts() == ["line 0", "line 1", "line 2"]
    assert telegram.messages[0]["chat_id"] == CHAT_ID
    assert services.redis.xlen("oh:alerts") == 0


def test_sender_waits_out_telegrams_429_and_keeps_the_lines(services, sender_for):
    fake = FakeTelegram(plan=lambda n: (429, {"ok": False, "parameters": {"retry_after": 1}}) if n == 1 else (200, {}))
    try:
        sender = AlertSender(services, settings(fake.url))
        announce(services.redis, sender.settings, "FILLED", "k", "FILLED kite 1")
        started = time.monotonic()
        assert sender.send_pending(block_ms=100) == 0  # told to wait: the line stays pending
        assert time.monotonic() - started >= 0.9
        assert sender.send_pending(block_ms=100) == 1
        assert fake.texts() == ["FILLED kite 1"] and fake.requests == 2
    finally:
        fake.close()


def test_sender_spaces_messages_to_respect_telegrams_rate(services, telegram, sender_for):
    sender = sender_for()
    announce(services.redis, sender.settings, "FILLED", "a", "first")
    sender.send_pending(block_ms=100)
    announce(services.redis, sender.settings, "FILLED", "b", "second")
    sender.send_pending(block_ms=100)
    gap = telegram.messages[1]["at"] - telegram.messages[0]["at"]
    assert gap >= 0.9, gap


def test_a_wrong_bot_token_is_reported_and_does_not_block_the_queue(services, redis_client):
    fake = FakeTelegram(token="another-token")
    try:
        sender = AlertSender(services, settings(fake.url))
        announce(services.redis, sender.settings, "REJECTED", "k", "REJECTED kite 1")
        assert sender.send_pending(block_ms=100) == 0
        status = redis_client.hgetall("oh:alerts:status")
        assert b"TELEGRAM_BOT_TOKEN" in status[b"last_error"] and BOT_TOKEN.encode() not in status[b"last_error"]
        assert redis_client.xlen("oh:alerts") == 0
    finally:
        fake.close()


def test_a_sender_that_died_leaves_its_lines_for_the_next(services, telegram, sender_for):
    first = sender_for()
    announce(services.redis, first.settings, "REJECTED", "k", "REJECTED kite 9")
    first._ensure_group()
    first._read(">", 100)  # read, then "crash" before sending
    second = sender_for()
    assert second.send_pending(block_ms=100) == 1
    assert telegram.texts() == ["REJECTED kite 9"]


def test_one_sender_at_a_time_holds_the_lock_from_its_own_thread(services, telegram, sender_for):
    stop = threading.Event()
    first, second = sender_for(stop=stop), sender_for()
    runner = threading.Thread(target=first.run, daemon=True)
    runner.start()
    deadline = time.monotonic() + 5
    while not services.redis.exists(ALERTS_LOCK_KEY) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not second._hold_lock()  # another process's sender waits
    announce(services.redis, first.settings, "REJECTED", "k", "REJECTED kite 10")
    deadline = time.monotonic() + 5
    while not telegram.texts() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert telegram.texts() == ["REJECTED kite 10"]
    stop.set()
    runner.join(timeout=5)
    assert not services.redis.exists(ALERTS_LOCK_KEY)  # released on the way out
    assert second._hold_lock()


# Watchers:


def test_a_feed_down_for_over_the_threshold_is_announced_once(services, telegram, sender_for):
    from app.redis_keys import feed_status_key

    services.config = replace(services.config, feeds=("kite",))
    services.redis.hset(
        feed_status_key("kite"),
        mapping={
            "name": "kite",
            "state": "running",
            "connected": "0",
            "last_error": "connection refused",
            "updated_at": "2099-01-01T00:00:00Z",
        },
    )
    sender = sender_for(feed_down_seconds=0.3)
    sender.watch_feeds()
    assert services.redis.xlen("oh:alerts") == 0  # just went down
    time.sleep(0.4)
    sender.watch_feeds()
    sender.watch_feeds()
    assert sender.send_pending(block_ms=100) == 1
    assert telegram.texts()[0].startswith("FEED DOWN kite for ")
    assert telegram.texts()[0].endswith(": connection refused")


def test_a_refused_feed_is_announced_at_once(services, telegram, sender_for):
    from app.redis_keys import feed_status_key

    services.config = replace(services.config, feeds=("dhan",))
    services.redis.hset(
        feed_status_key("dhan"),
        mapping={"state": "auth_failed", "last_error": "Dhan refused the access token", "updated_at": "t1"},
    )
    sender = sender_for()
    sender.watch_feeds()
    sender.watch_feeds()
    assert sender.send_pending(block_ms=100) == 1
    assert telegram.texts() == ["FEED REFUSED dhan: Dhan refused the access token"]


def test_dead_lettered_deliveries_are_announced(services, telegram, sender_for):
    sender = sender_for()
    sender.watch_deliveries()  # sets the watermark
    now = utcnow()
    rows = [
        {
            "event_id": f"evt_{n}",
            "consumer_id": "c_1",
            "url": "http://consumer.test/hook",
            "status": "failed",
            "attempts": 8,
            "created_at": now,
            "updated_at": now,
            "last_error": "HTTP 500",
        }
        for n in range(2)
    ]
    with services.engine.begin() as conn:
        conn.execute(deliveries.insert(), rows)
    sender.watch_deliveries()
    sender.watch_deliveries()
    assert sender.send_pending(block_ms=100) == 2
    assert telegram.texts()[0] == "DELIVERY FAILED evt_0 to http://consumer.test/hook after 8 attempt(s) (HTTP 500)"


def test_many_dead_letters_of_one_consumer_become_one_line(services, telegram, sender_for):
    sender = sender_for()
    sender.watch_deliveries()
    now = utcnow()
    with services.engine.begin() as conn:
        conn.execute(
            deliveries.insert(),
            [
                {
                    "event_id": f"evt_{n}",
                    "consumer_id": "c_1",
                    "url": "http://c.test/",
                    "status": "failed",
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                    "last_error": "consumer disabled",
                }
                for n in range(50)
            ],
        )
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar() == 50
    sender.watch_deliveries()
    assert sender.send_pending(block_ms=100) == 1
    assert telegram.texts()[0].startswith("DELIVERIES FAILED 50 to http://c.test/")


def test_a_reconciliation_error_is_announced_once(services, telegram, sender_for):
    services.redis.hset(
        "oh:reconcile:status:kite",
        mapping={"last_error": "Kite access token expired or invalid: refresh KITE_ACCESS_TOKEN", "runs": "3"},
    )
    sender = sender_for()
    sender.watch_reconciliations()
    sender.watch_reconciliations()
    assert sender.send_pending(block_ms=100) == 1
    assert telegram.texts() == [
        "RECONCILE FAILED kite: Kite access token expired or invalid: refresh KITE_ACCESS_TOKEN"
    ]
