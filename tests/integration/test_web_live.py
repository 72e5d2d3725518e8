"""app/live.py and the stream hub in one process: what is published after storage, and the fan-out."""

from __future__ import annotations

import json
import queue
import time

import redis

from app import live
from app.api import stream
from app.redis_conn import database_of
from app.redis_keys import live_channel
from app.store import StoredBatch
from tests.support.env import KITE_SECRET
from tests.support.helpers import load_fixture, run_pipeline, sign_kite

KITE = load_fixture("kite_postback_complete.json")


def post(client, **changes):
    answer = client.post("/postbacks/kite", data=json.dumps(sign_kite(dict(KITE, **changes), KITE_SECRET)))
    assert answer.status_code == 202, answer.data


def messages_from(pubsub, want: int, timeout: float = 10.0) -> list[dict]:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            got.append(json.loads(message["data"]))
    return got


def test_the_worker_publishes_one_message_per_touched_order_after_storage(client, services):
    pubsub = services.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(live_channel(database_of(services.redis)))
    post(
        client,
        order_id="P-1",
        status="OPEN",
        filled_quantity=0,
        average_price=0,
        exchange_update_timestamp="2022-03-03 09:24:20",
    )
    post(client, order_id="P-1")
    post(client, order_id="P-2", status="REJECTED", filled_quantity=0, status_message="RMS: no margin")
    run_pipeline(services)
    got = messages_from(pubsub, 2)
    by_order = {m["order"]["order_id"]: m for m in got}
    assert set(by_order) == {"P-1", "P-2"}
    assert by_order["P-1"]["order"]["status"] == "FILLED" and by_order["P-1"]["event"]["sequence"] == 2
    assert by_order["P-2"]["order"]["reason"] == "RMS: no margin"
    assert by_order["P-2"]["event"]["source"] == "postback"
    assert not any(key.startswith("_") for key in by_order["P-1"]["order"])  # bookkeeping stays private
    assert "raw" not in by_order["P-1"]["event"]  # compact: no payload on the channel


def test_publishing_never_raises_when_redis_is_away():
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    batch = StoredBatch(
        events=[{"broker": "kite", "order_id": "X", "sequence": 1, "id": "e1", "status": "OPEN"}],
        states={("kite", "X"): {"broker": "kite", "order_id": "X", "status": "OPEN", "_fill_key": []}},
    )
    assert live.publish_stored(dead, batch) == 0


def test_messages_take_the_latest_event_of_each_order():
    batch = StoredBatch(
        events=[
            {"broker": "kite", "order_id": "A", "sequence": 1, "id": "e1", "status": "OPEN"},
            {"broker": "kite", "order_id": "A", "sequence": 2, "id": "e2", "status": "FILLED"},
        ],
        states={("kite", "A"): {"broker": "kite", "order_id": "A", "status": "FILLED"}},
    )
    (only,) = [json.loads(m) for m in live.messages(batch, published_at=1.0)]
    assert only["event"]["id"] == "e2" and only["published_at"] == 1.0


def test_hub_fans_one_subscription_out_to_every_stream(services):
    channel = live_channel(database_of(services.redis))
    hub = stream.Hub()
    hub.start(services.redis)
    assert hub.subscribed.wait(10)
    boxes = [hub.join() for _ in range(3)]
    services.redis.publish(channel, '{"type":"order"}')
    for box in boxes:
        assert box.get(timeout=10) == '{"type":"order"}'
    hub.leave(boxes[0])
    services.redis.publish(channel, "second")
    assert boxes[1].get(timeout=10) == "second"
    try:
        boxes[0].get(timeout=0.5)
        raise AssertionError("a stream that left still got messages")
    except queue.Empty:
        pass
    # One Redis subscription however many streams: more streams add none (a hub another test closed may
    # still be leaving, so the count is compared, not expected to be exactly 1).
    subscriptions = services.redis.execute_command("PUBSUB", "NUMSUB", channel)[1]
    more = [hub.join() for _ in range(5)]
    assert 1 <= services.redis.execute_command("PUBSUB", "NUMSUB", channel)[1] <= subscriptions
    for box in more:
        hub.leave(box)
    hub.close()


def test_stream_body_starts_with_the_retry_hint_and_ends_on_shutdown(monkeypatch):
    hub = stream.Hub()
    monkeypatch.setattr(stream, "HUB", hub)
    box = hub.join()
    body = stream._events(box, None, None)
    assert next(body).startswith("retry: ")
    box.put('{"x":1}')
    assert next(body) == 'data: {"x":1}\n\n'
    hub.close()
    assert list(body) == []
    assert box not in hub.queues


def test_losing_redis_ends_every_stream_so_pages_resnapshot(services):
    hub = stream.Hub()
    boxes = [hub.join() for _ in range(2)]
    hub.cut_all()
    assert [box.get(timeout=1) for box in boxes] == [None, None] and not hub.queues


def test_a_deployment_on_another_database_of_the_server_is_not_heard(services):
    """Pub/sub ignores database numbers: the channel carries the database, so neighbours stay apart."""
    hub = stream.Hub()
    hub.start(services.redis)
    assert hub.subscribed.wait(10)
    box = hub.join()
    neighbour = database_of(services.redis) + 1
    services.redis.publish(live_channel(neighbour), '{"type":"order","from":"the neighbour"}')
    services.redis.publish(live_channel(database_of(services.redis)), '{"type":"order","from":"us"}')
    assert box.get(timeout=10) == '{"type":"order","from":"us"}'
    hub.close()
