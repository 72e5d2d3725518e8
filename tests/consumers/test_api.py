"""/api/consumers: add, list, get, change, remove, rotate, test, replay; refusals; on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from app.db import consumers, deliveries, utcnow
from app.redis_keys import CONSUMER_TESTS_KEY
from app.store import consumer_id
from tests.support.env import ADMIN_TOKEN

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VIEW_KEYS = {
    "id",
    "type",
    "description",
    "filters",
    "enabled",
    "source",
    "created_at",
    "counts",
    "last_error",
    "last_error_at",
    "latency_ms",
    "disabled_reason",
    "secret_rotated_at",
    "previous_secret_until",
}


def _post(client, path, body):
    return client.post(path, data=json.dumps(body), headers=AUTH, content_type="application/json")


def _patch(client, path, body):
    return client.patch(path, data=json.dumps(body), headers=AUTH, content_type="application/json")


def test_add_http_consumer_shows_its_secret_once(db_client, db_services):
    made = _post(
        db_client,
        "/api/consumers",
        {"type": "http", "url": "https://a.example/hook", "description": "user A", "filters": {"accounts": ["A1"]}},
    )
    assert made.status_code == 201, made.json
    body = made.json
    assert body["secret"].startswith("whsec_")
    assert set(body) == VIEW_KEYS | {"url", "secret"}
    assert body["filters"] == {"brokers": [], "accounts": ["A1"], "statuses": [], "sources": []}
    assert body["enabled"] is True and body["source"] == "api" and body["created_at"].endswith("Z")
    assert body["counts"] == {"delivered": 0, "pending": 0, "failed": 0}
    assert body["latency_ms"] == {"p50": None, "p99": None}
    listed = db_client.get("/api/consumers", headers=AUTH).json["consumers"]
    assert [c["id"] for c in listed] == [body["id"]]
    assert body["secret"] not in json.dumps(listed) and "whsec_" not in json.dumps(listed)
    one = db_client.get(f"/api/consumers/{body['id']}", headers=AUTH).json
    assert "secret" not in one and one["url"] == "https://a.example/hook"
    with db_services.engine.connect() as conn:
        stored = conn.execute(sa.select(consumers.c.secret).where(consumers.c.id == body["id"])).scalar_one()
    assert body["secret"].encode() not in bytes(stored)


def test_add_rq_and_stream_consumers(db_client):
    rq = _post(db_client, "/api/consumers", {"type": "rq", "queue": "orders", "function": "strategy.on_order"})
    assert rq.status_code == 201, rq.json
    assert rq.json["queue"] == "orders" and rq.json["function"] == "strategy.on_order"
    assert "secret" not in rq.json and "url" not in rq.json
    stream = _post(db_client, "/api/consumers", {"type": "redis_stream", "stream": "orders:all"})
    assert stream.status_code == 201 and stream.json["stream"] == "orders:all"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"type": "ftp"}, "type must be one of"),
        ({"type": "http"}, 'needs "url"'),
        ({"type": "http", "url": "ftp://x"}, "http(s) URL"),
        ({"type": "http", "url": "https://x.example", "queue": "q"}, "unknown fields ['queue']"),
        ({"type": "rq", "queue": "bad queue", "function": "a.b"}, "queue must be"),
        ({"type": "rq", "queue": "q", "function": "nodots"}, "function must be a dotted path"),
        ({"type": "rq", "queue": "q", "function": "os.system; rm"}, "function must be a dotted path"),
        ({"type": "rq", "queue": "orderhook-pipeline-0", "function": "a.b"}, "the service's own"),
        ({"type": "redis_stream", "stream": "oh:ingest"}, "stream names starting with"),
        ({"type": "redis_stream", "stream": ""}, "stream must be"),
        ({"type": "http", "url": "https://x.example", "filters": {"brokers": ["nyse"]}}, "unknown ['nyse']"),
        ({"type": "http", "url": "https://x.example", "filters": {"statuses": "FILLED"}}, "list of strings"),
        ({"type": "http", "url": "https://x.example", "filters": {"colour": []}}, "unknown filters"),
        ({"type": "http", "url": "https://x.example", "enabled": "yes"}, "enabled must be true or false"),
        ({"type": "http", "url": "https://x.example", "description": "a\x00b"}, "description must be"),
    ],
)
def test_refused_bodies_say_what_to_fix(client, body, words):
    answer = _post(client, "/api/consumers", body)
    assert answer.status_code == 400
    assert words in answer.json["error"]


def test_not_json_is_400_and_unknown_id_404(client):
    answer = client.post("/api/consumers", data=b"\xff", headers=AUTH)
    assert answer.status_code == 400 and "JSON object" in answer.json["error"]
    assert client.get("/api/consumers/con_nope", headers=AUTH).status_code == 404
    assert client.delete("/api/consumers/con_nope", headers=AUTH).status_code == 404
    assert _patch(client, "/api/consumers/con_nope", {"enabled": False}).status_code == 404
    assert _post(client, "/api/consumers/con_nope/test", {}).status_code == 404
    assert client.get("/api/consumers", headers={}).status_code == 401


def test_change_and_remove(db_client, db_services):
    made = _post(db_client, "/api/consumers", {"type": "http", "url": "https://a.example/1"}).json
    changed = _patch(
        db_client,
        f"/api/consumers/{made['id']}",
        {"description": "B", "filters": {"statuses": ["FILLED"]}, "enabled": False, "url": "https://b.example/2"},
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["description"] == "B" and changed.json["enabled"] is False
    assert changed.json["url"] == "https://b.example/2"
    assert changed.json["filters"]["statuses"] == ["FILLED"]
    assert _patch(db_client, f"/api/consumers/{made['id']}", {"type": "rq"}).status_code == 400
    assert _patch(db_client, f"/api/consumers/{made['id']}", {}).status_code == 400
    stream = _post(db_client, "/api/consumers", {"type": "redis_stream", "stream": "s1"}).json
    refused = _patch(db_client, f"/api/consumers/{stream['id']}", {"url": "https://x.example"})
    assert refused.status_code == 400 and "http consumers" in refused.json["error"]
    with db_services.engine.begin() as conn:
        conn.execute(
            deliveries.insert(),
            [
                {
                    "event_id": f"evt_{i}",
                    "consumer_id": made["id"],
                    "url": "https://b.example/2",
                    "status": status,
                    "attempts": 0,
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                }
                for i, status in enumerate(["pending", "pending", "delivered"])
            ],
        )
    counts = db_client.get(f"/api/consumers/{made['id']}", headers=AUTH).json["counts"]
    assert counts == {"delivered": 1, "pending": 2, "failed": 0}
    assert db_client.delete(f"/api/consumers/{made['id']}", headers=AUTH).status_code == 204
    assert db_client.get(f"/api/consumers/{made['id']}", headers=AUTH).status_code == 404
    with db_services.engine.connect() as conn:
        states = sorted(
            (r.status, r.last_error)
            for r in conn.execute(sa.select(deliveries).where(deliveries.c.consumer_id == made["id"]))
        )
    assert states == [("delivered", None), ("failed", "consumer removed"), ("failed", "consumer removed")]


def test_rotation_keeps_the_old_secret_for_a_day(db_client, db_services):
    made = _post(db_client, "/api/consumers", {"type": "http", "url": "https://a.example/1"}).json
    rotated = _post(db_client, f"/api/consumers/{made['id']}/secret", {})
    assert rotated.status_code == 200
    assert rotated.json["secret"].startswith("whsec_") and rotated.json["secret"] != made["secret"]
    shown = db_client.get(f"/api/consumers/{made['id']}", headers=AUTH).json
    assert shown["secret_rotated_at"] and shown["previous_secret_until"] > shown["secret_rotated_at"]
    from app.consumers.store import ConsumerStore

    held = ConsumerStore(db_services.config, db_services.engine).get(made["id"], secrets=True)
    assert held.secrets == (rotated.json["secret"], made["secret"])
    rq = _post(db_client, "/api/consumers", {"type": "rq", "queue": "q", "function": "a.b"}).json
    assert _post(db_client, f"/api/consumers/{rq['id']}/secret", {}).status_code == 409


def test_environment_consumers_are_listed_read_only(redis_client, redis_url, sqlite_url, tmp_path):
    from app import create_app
    from app.config import load_config
    from app.services import Services
    from tests.support.env import make_env

    url = "https://env.example/hook?token=abc"
    built = Services.build(load_config(make_env(redis_url, sqlite_url, tmp_path, FORWARD_URLS=url)))
    try:
        client = create_app(built.config, built).test_client()
        listed = client.get("/api/consumers", headers=AUTH).json["consumers"]
        assert [(c["id"], c["source"], c["url"], c["created_at"]) for c in listed] == [
            (consumer_id(url), "environment", url, None)
        ]
        cid = listed[0]["id"]
        for answer in (
            _patch(client, f"/api/consumers/{cid}", {"enabled": False}),
            client.delete(f"/api/consumers/{cid}", headers=AUTH),
            _post(client, f"/api/consumers/{cid}/secret", {}),
        ):
            assert answer.status_code == 409
            assert "FORWARD_URLS" in answer.json["error"]
        assert _post(client, f"/api/consumers/{cid}/test", {}).status_code == 202
    finally:
        built.ingestor.close()
        built.engine.dispose()


def test_test_delivery_is_queued_not_stored(client, services, redis_client):
    made = _post(client, "/api/consumers", {"type": "redis_stream", "stream": "s1"}).json
    answer = _post(client, f"/api/consumers/{made['id']}/test", {})
    assert answer.status_code == 202 and answer.json["event_id"].startswith("evt_test_")
    queued = json.loads(redis_client.lindex(CONSUMER_TESTS_KEY, 0))
    assert queued["consumer_id"] == made["id"] and queued["event"]["test"] is True
    assert client.get(f"/api/consumers/{made['id']}/test", headers=AUTH).status_code == 404


def test_replay_refusals(client):
    made = _post(client, "/api/consumers", {"type": "redis_stream", "stream": "s1"}).json
    path = f"/api/consumers/{made['id']}/replay"
    assert _post(client, path, {}).status_code == 400
    assert "ISO 8601" in _post(client, path, {"since": "yesterday"}).json["error"]
    assert _post(client, path, {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}).status_code == 400
    assert _post(client, path, {"since": "2026-01-01T00:00:00Z", "x": 1}).status_code == 400
    assert _post(client, path, {"since": "2026-01-01T00:00:00Z"}).json == {"events": 0}


def test_deliveries_are_listed_and_redriven_by_consumer_id(db_client, db_services):
    made = _post(db_client, "/api/consumers", {"type": "http", "url": "https://a.example/1"}).json
    with db_services.engine.begin() as conn:
        conn.execute(
            deliveries.insert(),
            [
                {
                    "event_id": f"evt_{i}",
                    "consumer_id": cid,
                    "url": url,
                    "status": "failed",
                    "attempts": 1,
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                }
                for i, (cid, url) in enumerate([(made["id"], "https://a.example/1"), ("c_other", "https://o.example")])
            ],
        )
    for name in (made["id"], "https://a.example/1"):
        listed = db_client.get("/api/deliveries", query_string={"consumer": name}, headers=AUTH).json["deliveries"]
        assert [(d["consumer_id"], d["consumer"]) for d in listed] == [(made["id"], "https://a.example/1")]
    counted = _post(db_client, "/api/deliveries/redrive", {"consumer": made["id"], "dry_run": True}).json
    assert counted == {"count": 1, "dry_run": True}
    done = _post(db_client, "/api/deliveries/redrive", {"consumer": made["id"]})
    assert done.status_code == 202 and done.json["count"] == 1
