"""Consumers end to end: the real web and worker processes, consumers added, filtered, switched off, rotated and
removed through the API while postbacks flow; each HTTP delivery checked with the `standardwebhooks` package under
that consumer's secret (both during a rotation); the README's `rq worker` function run by a real `rq worker --burst`
and the README's XREADGROUP loop run as written; a test delivery and a replay."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.env import ADMIN_TOKEN, FORWARD_SECRET, KITE_SECRET, ROOT, make_env
from tests.support.helpers import load_fixture, sign_kite
from tests.support.procs import VENV_BIN, Consumer, Process, free_port, start_web, wait_until

pytestmark = pytest.mark.e2e
SEED = load_fixture("kite_postback_complete.json")
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: Longer than a worker's routing table lives (app/consumers/routes.py, 1 s), with room for a busy machine.
CHANGE_APPLIES = 2.5


@pytest.fixture
def launch(redis_client, redis_url, sqlite_url, tmp_path):
    started: list = []

    def _launch(*environment_consumers: Consumer):
        env = make_env(
            redis_url,
            sqlite_url,
            tmp_path,
            FORWARD_URLS=",".join(c.url for c in environment_consumers),
            FORWARD_RETRY_SCHEDULE="1,1",
        )
        port = free_port()
        started.append(start_web(env, tmp_path, port))
        worker = Process("worker", env, tmp_path)
        started.append(worker)
        return f"http://127.0.0.1:{port}", worker

    yield _launch
    for process in started:
        process.stop()


_orders = iter(range(10_000))


def send(base: str, account: str, status: str = "COMPLETE") -> str:
    """A new Kite order of `account` in `status`; its event id."""
    payload = dict(SEED, order_id=f"2412{next(_orders):08d}", user_id=account, status=status)
    answer = requests.post(f"{base}/postbacks/kite", data=json.dumps(sign_kite(payload, KITE_SECRET)), timeout=10)
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def api(method: str, base: str, path: str, body: dict | None = None, expect: int = 200):
    answer = requests.request(method, f"{base}{path}", json=body, headers=AUTH, timeout=10)
    assert answer.status_code == expect, answer.text
    return answer.json() if answer.content else None


def probe_taken(base: str, cid: str) -> bool:
    """True once the consumer's last test delivery was taken (404 until a worker sent one)."""
    answer = requests.get(f"{base}/api/consumers/{cid}/test", headers=AUTH, timeout=10)
    return answer.status_code == 200 and answer.json()["ok"] is True


def ids(consumer: Consumer) -> list[str]:
    return [r["headers"]["webhook-id"] for r in consumer.requests]


def verify(secret: str, request: dict) -> dict:
    return Webhook(secret).verify(request["body"], request["headers"])


def test_http_consumers_managed_while_postbacks_flow(launch):
    user_a, user_b, fills, legacy = Consumer(), Consumer(), Consumer(), Consumer()
    base, worker = launch(legacy)
    a = api("POST", base, "/api/consumers", {"type": "http", "url": user_a.url, "filters": {"accounts": ["A1"]}}, 201)
    b = api("POST", base, "/api/consumers", {"type": "http", "url": user_b.url, "filters": {"accounts": ["B2"]}}, 201)
    time.sleep(CHANGE_APPLIES)
    first_a, first_b = send(base, "A1"), send(base, "B2")
    wait_until(lambda: len(legacy.requests) == 2 and user_a.requests and user_b.requests, 30, message=worker.log())
    assert ids(user_a) == [first_a] and ids(user_b) == [first_b]
    assert verify(a["secret"], user_a.requests[0])["account_id"] == "A1"
    assert verify(b["secret"], user_b.requests[0])["account_id"] == "B2"
    with pytest.raises(WebhookVerificationError):
        verify(b["secret"], user_a.requests[0])
    assert {verify(FORWARD_SECRET, r)["id"] for r in legacy.requests} == {first_a, first_b}  # FORWARD_URLS as before

    # Added while running, filtered on status; B switched off.
    made = api(
        "POST", base, "/api/consumers", {"type": "http", "url": fills.url, "filters": {"statuses": ["REJECTED"]}}, 201
    )
    api("PATCH", base, f"/api/consumers/{b['id']}", {"enabled": False})
    time.sleep(CHANGE_APPLIES)
    rejected = send(base, "A1", "REJECTED")
    off = send(base, "B2")
    wait_until(lambda: len(legacy.requests) == 4 and fills.requests and len(user_a.requests) == 2, 30)
    assert ids(fills) == [rejected] and ids(user_a)[1] == rejected
    verify(made["secret"], fills.requests[0])
    time.sleep(1.5)
    assert ids(user_b) == [first_b]  # nothing new while off
    deliveries = api("GET", base, "/api/deliveries", None)["deliveries"]
    assert not [d for d in deliveries if d["consumer_id"] == b["id"] and d["event_id"] == off]

    # Rotation: both secrets verify for the overlap; then the fills consumer is removed.
    rotated = api("POST", base, f"/api/consumers/{a['id']}/secret")["secret"]
    api("DELETE", base, f"/api/consumers/{made['id']}", expect=204)
    time.sleep(CHANGE_APPLIES)
    during = send(base, "A1", "REJECTED")
    wait_until(lambda: len(user_a.requests) == 3 and len(legacy.requests) == 5, 30, message=worker.log())
    last = user_a.requests[-1]
    assert last["headers"]["webhook-id"] == during
    assert len(last["headers"]["webhook-signature"].split(" ")) == 2
    assert verify(a["secret"], last)["id"] == verify(rotated, last)["id"] == during
    time.sleep(1.5)
    assert ids(fills) == [rejected]

    # A test delivery: signed, marked, never an order.
    test = api("POST", base, f"/api/consumers/{a['id']}/test", expect=202)
    wait_until(lambda: len(user_a.requests) == 4, 30, message=worker.log())
    sent = verify(rotated, user_a.requests[-1])
    assert sent["test"] is True and sent["id"] == test["event_id"]
    orders = api("GET", base, "/api/orders", None)["orders"]
    assert sent["order_id"] not in {o["order_id"] for o in orders}
    wait_until(lambda: probe_taken(base, a["id"]), 10)

    # Replay: everything of A1 again, with the original webhook-ids; B (off) keeps its replay pending.
    assert api("POST", base, f"/api/consumers/{a['id']}/replay", {"since": "2000-01-01T00:00:00Z"}, 202) == {
        "events": 3
    }
    wait_until(lambda: len(user_a.requests) == 7, 30, message=worker.log())
    assert sorted(ids(user_a)[4:]) == sorted([first_a, rejected, during])
    for request in user_a.requests[4:]:
        verify(rotated, request)
    shown = api("GET", base, f"/api/consumers/{a['id']}")
    assert shown["counts"] == {"delivered": 3, "pending": 0, "failed": 0}
    assert shown["latency_ms"]["p50"] is not None
    listed = api("GET", base, "/api/consumers")["consumers"]
    assert [c["source"] for c in listed] == ["environment", "api", "api"]
    assert "whsec_" not in json.dumps(listed)


def test_changes_while_a_stream_of_postbacks_flows(launch):
    """A steady stream of postbacks (A1 and B2 in turn) while a consumer is added then removed and another is
    switched off: every delivery verifies under its consumer's secret and passes its filters, and no change
    is ignored once it has had time to apply."""
    user_a, user_b, later = Consumer(), Consumer(), Consumer()
    base, worker = launch()
    a = api("POST", base, "/api/consumers", {"type": "http", "url": user_a.url, "filters": {"accounts": ["A1"]}}, 201)
    b = api("POST", base, "/api/consumers", {"type": "http", "url": user_b.url, "filters": {"accounts": ["B2"]}}, 201)
    time.sleep(CHANGE_APPLIES)
    posted: list[tuple[float, str, str]] = []
    stop = threading.Event()

    def flow() -> None:
        while not stop.is_set():
            account = "A1" if len(posted) % 2 == 0 else "B2"
            posted.append((time.monotonic(), account, send(base, account)))
            time.sleep(0.05)

    thread = threading.Thread(target=flow)
    thread.start()
    try:
        time.sleep(1.5)
        c = api(
            "POST", base, "/api/consumers", {"type": "http", "url": later.url, "filters": {"accounts": ["A1"]}}, 201
        )
        time.sleep(3)
        api("PATCH", base, f"/api/consumers/{b['id']}", {"enabled": False})
        b_off = time.monotonic()
        time.sleep(1.5)
        api("DELETE", base, f"/api/consumers/{c['id']}", expect=204)
        c_gone = time.monotonic()
        time.sleep(CHANGE_APPLIES + 2)
    finally:
        stop.set()
        thread.join(30)
    mine = [event_id for _, account, event_id in posted if account == "A1"]
    wait_until(lambda: len(user_a.requests) >= len(mine), 60, message=worker.log())
    time.sleep(1.5)
    assert sorted(ids(user_a)) == sorted(mine)  # every A1 event, once
    for consumer, made in ((user_a, a), (user_b, b), (later, c)):
        for request in consumer.requests:
            assert verify(made["secret"], request)["account_id"] == ("B2" if consumer is user_b else "A1")
    b_ids, c_ids = set(ids(user_b)), set(ids(later))
    assert b_ids and c_ids  # each got events while it was on
    assert not b_ids & {e for at, acc, e in posted if acc == "B2" and at > b_off + CHANGE_APPLIES}
    assert not c_ids & {e for at, acc, e in posted if acc == "A1" and at > c_gone + CHANGE_APPLIES}


def test_a_change_applies_to_the_very_next_postback(launch):
    """No waiting for caches: right after the API answers, the next postback is routed to a consumer just added,
    its delivery signed under a secret just rotated, and a test asked of a consumer just added is sent — while the
    worker had read its tables a moment before (app/consumers/revision.py)."""
    warm, fresh = Consumer(), Consumer()
    base, worker = launch(warm)
    for _ in range(3):  # each time the worker has just routed and signed a batch when the change is made
        _change_then_post_at_once(base, worker, warm, fresh)


def _change_then_post_at_once(base: str, worker: Process, warm: Consumer, fresh: Consumer) -> None:
    """One batch stored and forwarded; then add, post, rotate, post, add and test, each at once."""
    before = len(warm.requests)
    send(base, "W1")
    wait_until(lambda: len(warm.requests) > before, 30, interval=0.01, message=worker.log())
    made = api("POST", base, "/api/consumers", {"type": "http", "url": fresh.url}, 201)
    first = send(base, "N1")
    wait_until(lambda: first in ids(fresh), 30, message=worker.log())
    assert verify(made["secret"], delivery(fresh, first))["id"] == first

    rotated = api("POST", base, f"/api/consumers/{made['id']}/secret")["secret"]
    second = send(base, "N1")
    wait_until(lambda: second in ids(fresh), 30, message=worker.log())
    assert verify(rotated, delivery(fresh, second))["id"] == second  # the new secret at once...
    assert verify(made["secret"], delivery(fresh, second))["id"] == second  # ...and the old one still

    probe = api("POST", base, "/api/consumers", {"type": "http", "url": fresh.url}, 201)
    api("POST", base, f"/api/consumers/{probe['id']}/test", expect=202)
    wait_until(lambda: probe_taken(base, probe["id"]), 30, message=worker.log())
    for cid in (made["id"], probe["id"]):
        api("DELETE", base, f"/api/consumers/{cid}", expect=204)


def delivery(consumer: Consumer, event_id: str) -> dict:
    """The request that delivered this event to the consumer."""
    return next(r for r in consumer.requests if r["headers"]["webhook-id"] == event_id)


# The README's own code


def readme_block(after: str) -> str:
    """The first python block after the README line starting with `after`."""
    text = (ROOT / "README.md").read_text()
    start = text.index(after)
    match = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert match, f"no python block after {after!r} in README.md"
    return match.group(1)


class Reader:
    """The README's XREADGROUP loop, running as its own process; the lines it printed."""

    def __init__(self, path: Path, redis_url: str) -> None:
        env = dict(os.environ, REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen(
            [sys.executable, str(path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self.lines.append(line.strip())

    def stop(self) -> None:
        self.popen.kill()
        self.popen.wait(10)


def test_the_readme_rq_function_and_stream_reader(launch, redis_url, tmp_path):
    home = tmp_path / "user"
    home.mkdir()
    (home / "strategy.py").write_text(readme_block("An `rq` consumer"))
    (home / "reader.py").write_text(readme_block("A `redis_stream` consumer"))
    base, worker = launch()
    rq = api(
        "POST",
        base,
        "/api/consumers",
        {"type": "rq", "queue": "strategy", "function": "strategy.on_order", "filters": {"accounts": ["A1"]}},
        201,
    )
    stream = api("POST", base, "/api/consumers", {"type": "redis_stream", "stream": "orders"}, 201)
    assert "secret" not in rq and "secret" not in stream
    reader = Reader(home / "reader.py", redis_url)
    try:
        wait_until(lambda: b"strategy" in b"".join(_groups(redis_url)), 20, message="the reader made no group")
        time.sleep(CHANGE_APPLIES)
        mine = [send(base, "A1"), send(base, "A1", "REJECTED")]
        other = send(base, "B2")

        def delivered(cid: str, count: int) -> bool:
            found = api("GET", base, f"/api/deliveries?consumer={cid}&status=delivered")["count"]
            return found == count

        wait_until(lambda: delivered(rq["id"], 2) and delivered(stream["id"], 3), 30, message=worker.log())
        api("POST", base, f"/api/consumers/{rq['id']}/test", expect=202)  # the function skips test events
        wait_until(lambda: probe_taken(base, rq["id"]), 20, message=worker.log())
        ran = subprocess.run(
            [str(VENV_BIN / "rq"), "worker", "--burst", "--url", redis_url, "strategy"],
            cwd=home,
            env=dict(os.environ, PYTHONPATH=str(home)),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        journal = [json.loads(line) for line in (home / "orders.jsonl").read_text().splitlines()]
        assert sorted(e["id"] for e in journal) == sorted(mine)  # once each, only A1's, no test event
        assert all(e["account_id"] == "A1" and e["broker"] == "kite" for e in journal)
        wait_until(lambda: len(reader.lines) >= 3, 20, message="\n".join(reader.lines))
        assert sorted(line.split()[0] for line in reader.lines) == sorted([*mine, other])
        time.sleep(6)  # longer than redis-py's socket timeout: a quiet stream must not end the loop
        assert reader.popen.poll() is None, "\n".join(reader.lines)
        late = send(base, "B2")
        wait_until(lambda: len(reader.lines) >= 4, 20, message="\n".join(reader.lines))
        assert reader.lines[-1].split()[0] == late
    finally:
        reader.stop()


def _groups(redis_url: str) -> list[bytes]:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return [g["name"] for g in client.xinfo_groups("orders")]
    except redis.ResponseError:
        return []
    finally:
        client.close()
