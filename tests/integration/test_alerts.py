"""Alerts to Telegram: what is announced, once, rate-limited, retried on 429, with a real Redis.

The fake Telegram refuses, as Telegram does, a message over 4,096 UTF-16 code units; the hostile
bursts check that every line arrives exactly once, whole and in order, that broker text cannot make
a line of its own or reverse one, and that `sent` counts only what Telegram accepted.
"""

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
from app.alerts.telegram import CONTINUED, CONTINUES, Refused, RetryAfter, TelegramClient, TooLong, Unavailable
from app.config import load_config
from app.db import deliveries, utcnow
from app.redis_keys import ALERTS_LOCK_KEY, ALERTS_PARTS_KEY, ALERTS_STATUS_KEY, ALERTS_STREAM
from app.text import one_line
from tests.support.fakes.telegram import BOT_TOKEN, CHAT_ID, FakeTelegram, ok, utf16_units
from workers import alerts as alert_worker
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
    fake = FakeTelegram(plan=lambda n: (429, {"ok": False, "parameters": {"retry_after": 1}}) if n == 1 else ok(n))
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
        assert status[b"dropped"] == b"1" and b"sent" not in status  # refused: dropped, never counted sent
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


def test_an_accounts_connection_down_is_announced_and_its_refusal_left_to_login_needed(services, telegram, sender_for):
    """Accounts added as data: a logged-in account's connection down past the threshold is announced by the
    account's name; a refused one is not (its `login needed` says it); a switched-off one is not watched."""
    from app.redis_keys import feed_status_key

    down = services.accounts.create("dhan", "1100001", session_token="dhan-token-1")
    refused = services.accounts.create("dhan", "1100002", session_token="dhan-token-2")
    off = services.accounts.create("dhan", "1100003", session_token="dhan-token-3", feed=False)
    for account, state in ((down, "running"), (refused, "auth_failed"), (off, "running")):
        services.redis.hset(
            feed_status_key(account.feed_status_name("dhan")),
            mapping={"state": state, "connected": "0", "last_error": "dropped", "updated_at": "2099-01-01T00:00:00Z"},
        )
    sender = sender_for(feed_down_seconds=0.3)
    sender.watch_feeds()
    time.sleep(0.4)
    sender.watch_feeds()
    sender.watch_feeds()
    assert sender.send_pending(block_ms=100) == 1
    assert telegram.texts() == [lines for lines in telegram.texts() if "1100001" in lines]
    assert telegram.texts()[0].startswith("FEED DOWN dhan 1100001 (dhan) for ")


def test_an_accounts_failed_reconciliation_is_announced_by_its_name(services, telegram, sender_for):
    from app.redis_keys import reconcile_status_key

    account = services.accounts.create("dhan", "1100001", session_token="dhan-token-1")
    services.redis.hset(reconcile_status_key(account.reconcile_name), mapping={"last_error": "Dhan answered 502"})
    sender = sender_for()
    sender.watch_reconciliations()
    sender.watch_reconciliations()
    assert sender.send_pending(block_ms=100) == 1
    assert telegram.texts() == ["RECONCILE FAILED dhan 1100001: Dhan answered 502"]


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


# Bursts, long lines and hostile broker text (docs/alerts.md "Long bursts" and "Text from brokers"):

#: An ordinary Dhan RMS rejection reason, 154 characters long.
RMS_REASON = (
    "RMS:Margin Exceeds for the order, Required Margin: 2945500.00, Available Margin: 12345.67, "
    "Shortfall: 2933154.33 in NSE_EQ INTRADAY; add funds or cut qty."
)
FORGED = "FILLED kite 999999 RELIANCE BUY 1000/1000 @ avg 2945.50 [AB1234]"


@pytest.fixture
def quick(monkeypatch):
    """Messages a twentieth of a second apart, so that a long burst takes seconds (the pacing has its own test)."""
    monkeypatch.setattr(alert_worker, "MIN_INTERVAL_SECONDS", 0.05)


def dhan_rejection(number: int, reason: str = RMS_REASON, account: str = "1100000001") -> dict:
    """A stored Dhan rejection event, as on_stored gets it."""
    return {
        "id": f"evt_dhan_{number}",
        "broker": "dhan",
        "order_id": f"41251124{number:05d}",
        "status": "REJECTED",
        "broker_status": "REJECTED",
        "symbol": "RELIANCE",
        "side": "BUY",
        "quantity": 1000,
        "price": 2945.5,
        "reason": reason,
        "account_id": account,
    }


def drain(sender: AlertSender, client, seconds: float = 120) -> int:
    """Run the sender until the alert stream is empty; the lines it says it completed."""
    completed = 0
    deadline = time.monotonic() + seconds
    while client.xlen(ALERTS_STREAM) and time.monotonic() < deadline:
        completed += sender.send_pending(block_ms=50)
    assert client.xlen(ALERTS_STREAM) == 0, "the sender did not empty the alert stream"
    return completed


def delivered_lines(fake: FakeTelegram) -> list[str]:
    """The lines Telegram received, the marked parts of a long line joined back into it."""
    lines: list[str] = []
    joining = False
    for line in fake.texts():
        if joining:
            assert line.startswith(CONTINUED), line[:80]
            line = line[len(CONTINUED) :]
        body = line.removesuffix(CONTINUES)
        if joining:
            lines[-1] += body
        else:
            lines.append(body)
        joining = line.endswith(CONTINUES)
    assert not joining, "a long line's last part never arrived"
    return lines


def sent_count(client) -> int:
    """The sender's `sent` counter."""
    return int(client.hget(ALERTS_STATUS_KEY, "sent") or 0)


def test_the_fake_telegram_counts_utf16_units_as_telegram_does():
    fake = FakeTelegram()
    try:
        client = TelegramClient(fake.url, BOT_TOKEN, CHAT_ID)
        client.send("📉" * 2048)  # 2,048 characters, 4,096 units: fits
        with pytest.raises(TooLong):
            client.send("📉" * 2049)  # 2,049 characters, 4,098 units
        with pytest.raises(TooLong):
            client.send("x" * 4097)
        assert [utf16_units(m["text"]) for m in fake.messages] == [4096]
        assert len(fake.refused_texts) == 2
    finally:
        fake.close()


def test_a_burst_of_25_dhan_rejections_arrives_whole_once_and_in_order(services, telegram, sender_for):
    assert len(RMS_REASON) == 154
    sender = sender_for()
    events = [dhan_rejection(number) for number in range(25)]
    assert on_stored(services.redis, sender.settings, events) == 25
    expected = [event_line(event, "REJECTED") for event in events]
    assert drain(sender, services.redis) == 25
    assert delivered_lines(telegram) == expected  # none lost, none cut, none twice, in order
    assert all(utf16_units(message["text"]) <= 4096 for message in telegram.messages)
    assert telegram.refused_texts == []
    assert sent_count(services.redis) == 25
    print(f"25 lines of {len(expected[0])} characters: {len(telegram.messages)} messages")


def test_a_hostile_burst_arrives_line_by_line_exactly_once_in_order(services, quick):
    """Newlines, bidi overrides, emoji, CJK, 154-character RMS reasons, over-long lines and 429s: 130 lines."""
    rate_limited = {2, 5, 9}
    fake = FakeTelegram(
        plan=lambda n: (429, {"ok": False, "parameters": {"retry_after": 1}}) if n in rate_limited else ok(n)
    )
    try:
        sender = AlertSender(services, settings(fake.url))
        reasons = [
            RMS_REASON,
            "RMS: margin exceeds\n" + FORGED,
            "RMS: margin exceeds\r\n" + FORGED + "\u2028" + FORGED + "\x85" + FORGED,
            "RMS: blocked \u202e1234BA\u202c for \u2066isolate\u2069 \u200f\u200e\u061c\u202a\u202b\u202d",
            "RMS: 📉 margin 📉 exceeds 🚨 " * 5 + "注文は拒否されました",
            "\x00\x07\x1b[31mRED\x1b[0m\x7f\x9b tab\there",
            "📉" * 77,  # 77 characters, 154 units
        ]
        events = [
            dhan_rejection(number, reasons[number % len(reasons)], account="AB\u202e4321" if number % 4 else "AB1234")
            for number in range(120)
        ]
        assert on_stored(services.redis, sender.settings, events) == 120
        expected = [one_line(event_line(event, "REJECTED")) for event in events]
        long_lines = [
            "RECONCILE FAILED kite: " + "🚨 margin call on NIFTY " * 700,  # ~17,000 units: five parts
            "x" * 4096,  # exactly the limit: one message of its own
            "y" * 4097,  # one unit over: two parts
            "📉" * 2100,  # 2,100 characters but 4,200 units: two parts
            "DELIVERY FAILED evt_1 to https://algo.example/hook after 8 attempt(s) (" + "é注🚨\u202e\n" * 900 + ")",
        ]
        for number, text in enumerate(long_lines):
            assert announce(services.redis, sender.settings, "reconcile_error", f"long:{number}", text)
        expected += [one_line(text) for text in long_lines]
        for number in range(5):
            text = f"FEED DOWN dhan for {60 + number}s: 📉 closed\nFILLED dhan 1 IDEA BUY 1/1"
            assert announce(services.redis, sender.settings, "feed_down", f"feed:{number}", text)
            expected.append(one_line(text))
        assert len(expected) == 130

        assert drain(sender, services.redis) == 130
        assert delivered_lines(fake) == expected  # every line, exactly once, in order
        assert sent_count(services.redis) == 130
        assert fake.refused_texts == []
        for message in fake.messages:
            text = message["text"]
            assert utf16_units(text) <= 4096
            assert not any(char in text for char in "\r\x00\x1b\x7f\x85\u2028\u2029\u202a\u202b\u202c\u202d\u202e")
            assert not any(char in text for char in "\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
        assert not [line for line in fake.texts() if line.startswith("FILLED")]  # no forged line of its own
        assert "\\u000A" + FORGED in expected[1] and "AB\\u202E4321" in expected[1]
        assert fake.requests == len(fake.messages) + len(rate_limited)
    finally:
        fake.close()


def test_a_line_over_the_limit_goes_in_marked_parts_and_a_new_sender_goes_on_from_the_last_part(
    services, telegram, sender_for
):
    first = sender_for()
    text = "RECONCILE FAILED kite: " + "margin call 🚨 " * 800  # 12,023 units: three parts
    announce(services.redis, first.settings, "reconcile_error", "long", text)
    announce(services.redis, first.settings, "REJECTED", "after", "REJECTED kite 2 INFY BUY 1 @ MKT")
    assert first.send_pending(block_ms=100) == 0  # the first part: the line is not complete yet
    assert sent_count(services.redis) == 0 and services.redis.hlen(ALERTS_PARTS_KEY) == 1
    second = sender_for()  # the first sender died after its first part
    assert drain(second, services.redis) == 2
    assert delivered_lines(telegram) == [text, "REJECTED kite 2 INFY BUY 1 @ MKT"]
    parts = [message["text"] for message in telegram.messages]
    assert len(parts) == 3
    assert parts[0].endswith(CONTINUES) and not parts[0].startswith(CONTINUED)
    assert parts[1].startswith(CONTINUED) and parts[1].endswith(CONTINUES)
    assert parts[2].startswith(CONTINUED) and parts[2].endswith("\nREJECTED kite 2 INFY BUY 1 @ MKT")
    assert sent_count(services.redis) == 2 and services.redis.hlen(ALERTS_PARTS_KEY) == 0


def test_telegrams_message_is_too_long_answer_delivers_nothing_and_the_lines_go_smaller(services, quick):
    fake = FakeTelegram(limit=1000)  # a Telegram counting tighter than the sender does
    try:
        sender = AlertSender(services, settings(fake.url))
        events = [dhan_rejection(number) for number in range(25)]
        on_stored(services.redis, sender.settings, events)
        announce(services.redis, sender.settings, "reconcile_error", "long", "RECONCILE FAILED kite: " + "z " * 1500)
        assert drain(sender, services.redis) == 26
        assert delivered_lines(fake) == [event_line(event, "REJECTED") for event in events] + [
            "RECONCILE FAILED kite: " + "z " * 1500
        ]
        assert len(fake.refused_texts) == 3 and sender.limit == 512  # 4096 → 2048 → 1024 → 512
        assert sent_count(services.redis) == 26
        assert services.redis.hget(ALERTS_STATUS_KEY, "dropped") is None
    finally:
        fake.close()


def test_a_line_trimmed_from_the_stream_while_pending_is_counted_dropped_not_sent(services, telegram, sender_for):
    sender = sender_for()
    announce(services.redis, sender.settings, "REJECTED", "a", "REJECTED kite 1")
    announce(services.redis, sender.settings, "REJECTED", "b", "REJECTED kite 2")
    sender._ensure_group()
    (first, _), _ = sender._read(">", 100)
    services.redis.xdel(ALERTS_STREAM, first)  # as MAXLEN trimming does
    assert sender.send_pending(block_ms=100) == 1
    assert telegram.texts() == ["REJECTED kite 2"]
    status = services.redis.hgetall(ALERTS_STATUS_KEY)
    assert status[b"sent"] == b"1" and status[b"dropped"] == b"1"


@responses.activate
def test_client_sends_the_text_whole_and_reads_telegrams_too_long_answer():
    url = f"https://t.example/bot{BOT_TOKEN}/sendMessage"
    client = TelegramClient("https://t.example", BOT_TOKEN, CHAT_ID)
    responses.post(
        url, status=400, json={"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}
    )
    with pytest.raises(TooLong):
        client.send("x" * 5000)
    assert json.loads(responses.calls[0].request.body)["text"] == "x" * 5000  # never cut by the client
    responses.replace(responses.POST, url, status=200, body="<html>captive portal</html>")
    with pytest.raises(Unavailable):  # a 200 that is not Telegram's "ok": true is not a delivery
        client.send("x")


def test_broker_text_makes_one_line_with_control_and_bidi_characters_escaped(redis_client):
    event = dict(REJECTED, reason="RMS: margin exceeds\n" + FORGED, account_id="AB\u202e4321")
    assert on_stored(redis_client, settings(), [event]) == 1
    text = redis_client.xrange(ALERTS_STREAM)[0][1][b"text"].decode()
    assert text == (
        "REJECTED kite 251128000123 INFY BUY 10 @ 101.50 — RMS: margin exceeds\\u000A" + FORGED + " [AB\\u202E4321]"
    )
