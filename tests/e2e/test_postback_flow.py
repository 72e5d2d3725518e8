"""End to end: gunicorn (Procfile web) and the worker on loopback, a real Redis, a real local consumer."""

from __future__ import annotations

import json

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests.support.env import ADMIN_TOKEN, FORWARD_SECRET, KITE_SECRET, make_env
from tests.support.helpers import load_fixture, sign_kite
from tests.support.procs import Consumer, Process, free_port, start_web, wait_until

pytestmark = pytest.mark.e2e
SEED = load_fixture("kite_postback_complete.json")
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def stack(redis_client, redis_url, sqlite_url, tmp_path):
    consumer = Consumer()
    env = make_env(redis_url, sqlite_url, tmp_path, FORWARD_URLS=consumer.url, FORWARD_RETRY_SCHEDULE="1,1")
    port = free_port()
    web = start_web(env, tmp_path, port)
    worker = Process("worker", env, tmp_path)
    yield f"http://127.0.0.1:{port}", consumer, worker
    web.stop()
    worker.stop()
    consumer.close()


def test_postbacks_flow_to_the_api_and_the_consumer(stack):
    base, consumer, worker = stack
    updates = [
        dict(
            SEED,
            status="OPEN",
            quantity=10,
            filled_quantity=0,
            average_price=0,
            exchange_update_timestamp="2022-03-03 09:24:30",
        ),
        dict(
            SEED,
            status="UPDATE",
            quantity=10,
            filled_quantity=4,
            average_price=470.5,
            exchange_update_timestamp="2022-03-03 09:24:40",
        ),
        dict(
            SEED,
            status="COMPLETE",
            quantity=10,
            filled_quantity=10,
            average_price=470.25,
            exchange_update_timestamp="2022-03-03 09:24:50",
        ),
    ]
    codes = [
        requests.post(f"{base}/postbacks/kite", data=json.dumps(sign_kite(u, KITE_SECRET))).status_code for u in updates
    ]
    assert codes == [202, 202, 202]
    duplicate = requests.post(f"{base}/postbacks/kite", data=json.dumps(sign_kite(updates[1], KITE_SECRET)))
    assert duplicate.status_code == 200 and duplicate.json()["status"] == "duplicate"

    def stored() -> bool:
        answer = requests.get(f"{base}/api/orders/kite/{SEED['order_id']}", headers=AUTH, timeout=2)
        return answer.status_code == 200 and len(answer.json()["events"]) == 3

    wait_until(stored, 30, message=f"events were not stored:\n{worker.log()}")
    order = requests.get(f"{base}/api/orders/kite/{SEED['order_id']}", headers=AUTH).json()
    assert order["status"] == "FILLED" and order["filled_quantity"] == 10
    assert [e["status"] for e in order["events"]] == ["OPEN", "PARTIALLY_FILLED", "FILLED"]
    listed = requests.get(f"{base}/api/orders", params={"broker": "kite", "status": "FILLED"}, headers=AUTH).json()
    assert [o["order_id"] for o in listed["orders"]] == [SEED["order_id"]]
    assert requests.get(f"{base}/api/orders", timeout=2).status_code == 401
    assert requests.get(f"{base}/readyz", timeout=5).status_code == 200

    wait_until(lambda: len(consumer.requests) >= 3, 30, message="consumer did not receive 3 events")
    verifier = Webhook(FORWARD_SECRET)
    received = {}
    for request in consumer.requests:
        payload = verifier.verify(request["body"], request["headers"])
        assert request["headers"]["webhook-id"] == payload["id"]
        received[payload["id"]] = payload
    assert sorted(e["sequence"] for e in received.values()) == [1, 2, 3]
    assert {e["id"] for e in order["events"]} == set(received)
