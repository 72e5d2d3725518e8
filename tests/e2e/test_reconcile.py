"""End to end: a lost postback is recovered by the real worker's reconciliation (gunicorn web, worker,
real Redis, SQLite, a fake Kite REST server on loopback)."""

from __future__ import annotations

import json

import pytest
import requests

from tests.support.env import ADMIN_TOKEN, KITE_SECRET, make_env
from tests.support.fakes.rest import FakeKiteRest, kite_lifecycle
from tests.support.helpers import sign_kite
from tests.support.procs import Process, free_port, start_web, wait_until

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def stack(redis_client, redis_url, sqlite_url, tmp_path):
    kite = FakeKiteRest("kitekey", "kitetoken").start()
    env = make_env(
        redis_url,
        sqlite_url,
        tmp_path,
        KITE_API_KEY="kitekey",
        KITE_ACCESS_TOKEN="kitetoken",
        KITE_API_URL=kite.url,
        RECONCILE_INTERVAL_SECONDS="0",
    )
    port = free_port()
    web = start_web(env, tmp_path, port)
    worker = Process("worker", env, tmp_path)
    yield f"http://127.0.0.1:{port}", kite, worker
    web.stop()
    worker.stop()
    kite.close()


def order(base: str, order_id: str) -> dict | None:
    answer = requests.get(f"{base}/api/orders/kite/{order_id}", headers=AUTH, timeout=5)
    return answer.json() if answer.status_code == 200 else None


def kite_status(base: str) -> dict:
    brokers = requests.get(f"{base}/api/reconcile", headers=AUTH, timeout=5).json()["brokers"]
    return next(b for b in brokers if b["broker"] == "kite")


def test_a_lost_postback_is_recovered_by_the_next_reconciliation(stack):
    base, kite, worker = stack
    # Start-up reconciliation runs on an empty book.
    wait_until(lambda: kite_status(base)["runs"] >= 1, 60, message=f"no start-up run:\n{worker.log()}")
    assert kite_status(base)["last_error"] is None

    rows = kite_lifecycle("251128000000901")
    kite.add("251128000000901", rows)
    # The OPEN postback arrives; the COMPLETE one is lost (never sent).
    opened = dict(rows[3], user_id="AB1234")
    opened.pop("account_id")
    assert requests.post(f"{base}/postbacks/kite", data=json.dumps(sign_kite(opened, KITE_SECRET))).status_code == 202
    wait_until(lambda: (order(base, "251128000000901") or {}).get("status") == "OPEN", 30, message=worker.log())

    assert requests.post(f"{base}/api/reconcile?broker=kite", headers=AUTH, timeout=5).status_code == 202
    wait_until(
        lambda: (order(base, "251128000000901") or {}).get("status") == "FILLED",
        60,
        message=f"the lost COMPLETE was not recovered:\n{worker.log()}",
    )
    recovered = order(base, "251128000000901")
    assert recovered["filled_quantity"] == 10 and recovered["confirmed"] is True
    assert [e["source"] for e in recovered["events"]][0] == "postback"
    assert recovered["events"][-1]["source"] == "reconcile" and recovered["events"][-1]["status"] == "FILLED"
    status = kite_status(base)
    assert status["runs"] >= 2 and status["orders_seen"] == 1 and status["last_error"] is None

    # An expired token is said plainly.
    kite.expired = True
    runs = status["runs"]
    requests.post(f"{base}/api/reconcile", headers=AUTH, timeout=5)
    wait_until(lambda: kite_status(base)["runs"] > runs, 60, message=worker.log())
    assert kite_status(base)["last_error"] == "Kite access token expired or invalid: refresh KITE_ACCESS_TOKEN"
    assert "kitetoken" not in worker.log()
