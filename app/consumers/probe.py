"""Test deliveries: one event of the normalized shape marked `"test": true`, sent once to one consumer, never
stored (no order, no event row, no delivery row; docs/consumers.md "Test").

The API pushes the request to a Redis list; a worker's forwarder pops it and sends it on that consumer's lane,
signed as every delivery, and keeps the outcome a day under the consumer's test key.
"""

from __future__ import annotations

import json
from secrets import token_hex
from typing import Any

import redis

from app.consumers.model import Consumer
from app.redis_keys import CONSUMER_TESTS_KEY, consumer_test_key
from app.times import utc_now_iso

#: How long a test result is kept.
RESULT_TTL = 24 * 3600
#: Test requests waiting at most (older ones are dropped first: a test is worth little late).
MAX_WAITING = 1000


def test_event(consumer: Consumer) -> dict[str, Any]:
    """A normalized-shape event with `"test": true`, passing the consumer's filters where it can."""
    chosen = consumer.filters
    now = utc_now_iso()
    order_id = "TEST" + token_hex(6).upper()
    return {
        "id": "evt_test_" + token_hex(12),
        "test": True,
        "broker": min(chosen.brokers) if chosen.brokers else "kite",
        "source": min(chosen.sources) if chosen.sources else "postback",
        "account_id": min(chosen.accounts) if chosen.accounts else "TEST01",
        "order_id": order_id,
        "exchange_order_id": None,
        "status": min(chosen.statuses) if chosen.statuses else "OPEN",
        "broker_status": "TEST",
        "side": "BUY",
        "exchange": "NSE",
        "symbol": "TEST",
        "product": "CNC",
        "order_type": "LIMIT",
        "quantity": 1,
        "filled_quantity": 0,
        "pending_quantity": 1,
        "price": 1.0,
        "trigger_price": 0.0,
        "average_price": 0.0,
        "reason": "test delivery from Orderhook",
        "tag": None,
        "exchange_time": now,
        "received_at": now,
        "modified": False,
        "report_type": None,
        "sequence": 1,
        "raw": {"test": True},
    }


def request_test(client: redis.Redis, consumer: Consumer) -> dict[str, Any]:
    """Queue one test delivery for a worker; returns the event sent."""
    event = test_event(consumer)
    pipe = client.pipeline(transaction=False)
    pipe.lpush(CONSUMER_TESTS_KEY, json.dumps({"consumer_id": consumer.id, "event": event}))
    pipe.ltrim(CONSUMER_TESTS_KEY, 0, MAX_WAITING - 1)
    pipe.execute()
    return event


def take_tests(client: redis.Redis, count: int = 20) -> list[tuple[str, dict[str, Any]]]:
    """Up to `count` waiting test requests (oldest first): (consumer id, event)."""
    raw = client.rpop(CONSUMER_TESTS_KEY, count)
    found = []
    for item in raw or []:
        try:
            request = json.loads(item)
            found.append((str(request["consumer_id"]), dict(request["event"])))
        except (ValueError, KeyError, TypeError):
            continue
    return found


def record_test(client: redis.Redis, consumer_id: str, result: dict[str, Any]) -> None:
    """Keep a test delivery's outcome (a day)."""
    key = consumer_test_key(consumer_id)
    pipe = client.pipeline(transaction=False)
    pipe.delete(key)
    pipe.hset(key, mapping={k: json.dumps(v) for k, v in result.items()})
    pipe.expire(key, RESULT_TTL)
    pipe.execute()


def last_test(client: redis.Redis, consumer_id: str) -> dict[str, Any] | None:
    """The consumer's last test outcome, or None."""
    raw = client.hgetall(consumer_test_key(consumer_id))
    if not raw:
        return None
    return {k.decode() if isinstance(k, bytes) else k: json.loads(v) for k, v in raw.items()}
