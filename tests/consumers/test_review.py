"""What a black-box review of consumers found (issue 17): latency, removed consumers, bodies, wording, masked
URLs, PATCH filters, and the CLI's stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from app.db import deliveries, delivery_attempts, events, utcnow
from app.times import utc_iso
from tests.support.env import ADMIN_TOKEN, make_env

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ROOT = Path(__file__).resolve().parents[2]


def _post(client, path, body=None, raw=None):
    data = raw if raw is not None else json.dumps(body)
    return client.post(path, data=data, headers=AUTH, content_type="application/json")


def _patch(client, path, body):
    return client.patch(path, data=json.dumps(body), headers=AUTH, content_type="application/json")


def _event_row(number: int, received, stored) -> dict:
    return {
        "id": f"evt_r{number}",
        "broker": "kite",
        "order_id": f"o{number}",
        "sequence": 1,
        "account_id": "A1",
        "status": "FILLED",
        "source": "postback",
        "received_at": utc_iso(received),
        "stored_at": stored,
        "data": {},
    }


def _delivery(number: int, cid: str, created, *, attempts: int, delivered_at) -> dict:
    return {
        "event_id": f"evt_r{number}",
        "consumer_id": cid,
        "url": "https://a.example/1",
        "status": "delivered",
        "attempts": attempts,
        "created_at": created,
        "updated_at": delivered_at,
        "delivered_at": delivered_at,
    }


def test_latency_is_the_first_success_of_the_original_delivery(db_client, db_services):
    cid = _post(db_client, "/api/consumers", {"type": "http", "url": "https://a.example/1"}).json["id"]
    now = utcnow()
    received = now - timedelta(minutes=40)
    stored = received + timedelta(milliseconds=50)
    runs = len(db_services.config.forward_retry_schedule) + 1
    with db_services.engine.begin() as conn:
        conn.execute(events.insert(), [_event_row(i, received, stored) for i in range(3)])
        # 0: delivered at once (200 ms), replayed 39 minutes later: counts 200 ms, not 39 minutes.
        # 1: made by a replay (not with its event): left out. 2: first delivered after a redrive: left out.
        ids = [
            conn.execute(deliveries.insert().values(**row)).inserted_primary_key[0]
            for row in (
                _delivery(0, cid, stored, attempts=2, delivered_at=now - timedelta(minutes=1)),
                _delivery(1, cid, now - timedelta(minutes=2), attempts=1, delivered_at=now - timedelta(minutes=2)),
                _delivery(2, cid, stored, attempts=runs + 1, delivered_at=now - timedelta(minutes=3)),
            )
        ]

        def attempt(delivery_id, number, at, error=None):
            return {
                "delivery_id": delivery_id,
                "attempt": number,
                "attempted_at": at,
                "status_code": 500 if error else 200,
                "latency_ms": 150.0,
                "error": error,
            }

        rows = [
            attempt(ids[0], 1, received + timedelta(milliseconds=50)),
            attempt(ids[0], 2, now - timedelta(minutes=1)),
            attempt(ids[1], 1, now - timedelta(minutes=2)),
        ]
        rows += [attempt(ids[2], n, received + timedelta(seconds=n), "answered 500") for n in range(1, runs + 1)]
        rows.append(attempt(ids[2], runs + 1, now - timedelta(minutes=3)))
        conn.execute(delivery_attempts.insert(), rows)
    shown = db_client.get(f"/api/consumers/{cid}", headers=AUTH).json["latency_ms"]
    assert shown == {"p50": 200.0, "p99": 200.0}


def _failed_delivery(services, cid: str, url: str) -> int:
    with services.engine.begin() as conn:
        return conn.execute(
            deliveries.insert().values(
                event_id="evt_gone",
                consumer_id=cid,
                url=url,
                status="failed",
                attempts=1,
                created_at=utcnow(),
                updated_at=utcnow(),
                last_error="consumer removed",
            )
        ).inserted_primary_key[0]


def test_deliveries_of_a_removed_consumer_are_not_retried(client, services):
    made = _post(client, "/api/consumers", {"type": "http", "url": "https://a.example/1"}).json
    number = _failed_delivery(services, made["id"], "https://a.example/1")
    assert client.delete(f"/api/consumers/{made['id']}", headers=AUTH).status_code == 204
    retried = _post(client, f"/api/deliveries/{number}/retry", {})
    assert retried.status_code == 409
    assert retried.json["error"] == f"consumer {made['id']} was removed; its deliveries cannot be retried"
    named = _post(client, "/api/deliveries/redrive", {"consumer": made["id"]})
    assert named.status_code == 409 and "was removed" in named.json["error"]
    ranged = _post(client, "/api/deliveries/redrive", {"since": "2020-01-01T00:00:00Z"})
    assert ranged.status_code == 202 and ranged.json == {"count": 0, "dry_run": False, "skipped_removed": 1}
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(deliveries.c.status).where(deliveries.c.id == number)).scalar_one() == "failed"


def test_secret_and_test_take_no_fields(client, services):
    made = _post(client, "/api/consumers", {"type": "http", "url": "https://a.example/1"}).json
    for path in (f"/api/consumers/{made['id']}/secret", f"/api/consumers/{made['id']}/test"):
        refused = _post(client, path, {"secret": "whsec_mine"})
        assert refused.status_code == 400 and "unknown fields ['secret']" in refused.json["error"]
        assert _post(client, path, {}).status_code in (200, 202)
        assert _post(client, path, raw=b"").status_code in (200, 202)
    assert _post(client, f"/api/consumers/{made['id']}/secret", raw=b"[1]").status_code == 400


def test_api_wording(client):
    needs = _post(client, "/api/consumers", {"type": "http"}).json["error"]
    assert needs == 'an http consumer needs "url"'
    rq = _post(client, "/api/consumers", {"type": "rq"}).json["error"]
    assert rq == 'an rq consumer needs "queue" and "function"'
    big = _post(client, "/api/consumers", raw=b'{"d": "' + b"x" * 70_000 + b'"}')
    assert big.status_code == 413 and big.json["error"] == "body is larger than the 64 KiB limit for a request body"
    postback = client.post("/postbacks/kite", data=b"x" * 70_000, content_type="application/json")
    assert postback.status_code == 413 and "for an order update" in postback.json["error"]


def test_url_credentials_are_masked_in_views(client, services):
    url = "http://user:pw@host.example/x"
    made = _post(client, "/api/consumers", {"type": "http", "url": url}).json
    assert made["url"] == "http://user:***@host.example/x"
    _failed_delivery(services, made["id"], url)
    shown = json.dumps(
        [
            client.get("/api/consumers", headers=AUTH).json,
            client.get(f"/api/consumers/{made['id']}", headers=AUTH).json,
            client.get("/api/deliveries", headers=AUTH).json,
        ]
    )
    assert ":pw@" not in shown and "user:***@host.example" in shown
    cli = services_cli(client.application, "list")
    assert ":pw@" not in cli.output and "user:***@" in cli.output
    from app.consumers.store import ConsumerStore

    assert ConsumerStore(services.config, services.engine).get(made["id"]).url == url
    # A form that sends the view's (masked) URL back with another change keeps the stored password.
    changed = _patch(client, f"/api/consumers/{made['id']}", {"url": made["url"], "description": "d"})
    assert changed.status_code == 200 and changed.json["url"] == made["url"]
    assert ConsumerStore(services.config, services.engine).get(made["id"]).url == url


def services_cli(app, *args: str):
    return app.test_cli_runner().invoke(args=["consumers", *args])


def test_patch_filters_replace_only_the_lists_named(client):
    body = {"type": "http", "url": "https://a.example/1", "filters": {"brokers": ["kite"], "accounts": ["A1"]}}
    made = _post(client, "/api/consumers", body).json
    path = f"/api/consumers/{made['id']}"
    changed = _patch(client, path, {"filters": {"statuses": ["FILLED"]}}).json["filters"]
    assert changed == {"brokers": ["kite"], "accounts": ["A1"], "statuses": ["FILLED"], "sources": []}
    cleared = _patch(client, path, {"filters": {"accounts": []}}).json["filters"]
    assert cleared == {"brokers": ["kite"], "accounts": [], "statuses": ["FILLED"], "sources": []}
    assert _patch(client, path, {"filters": {"brokers": ["nyse"]}}).status_code == 400


def test_cli_change_keeps_other_filters_and_names_options(app):
    added = services_cli(app, "add", "http", "--url", "https://a.example/1", "--brokers", "kite")
    cid = added.output.split()[1]
    assert services_cli(app, "change", cid, "--statuses", "FILLED").exit_code == 0
    listed = services_cli(app, "list").output
    assert "brokers=kite" in listed and "statuses=FILLED" in listed
    bare = services_cli(app, "change", cid)
    assert bare.exit_code == 2 and "--statuses" in bare.output and "'filters'" not in bare.output


def test_cli_logs_go_to_stderr(redis_url, tmp_path):
    env = make_env(redis_url, f"sqlite:///{tmp_path / 'cli.sqlite3'}", tmp_path)
    env.pop("FEEDS_SECRET_KEY", None)  # the derived-key warning is logged
    full = {**os.environ, **env}
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    subprocess.run([*flask, "db-upgrade"], env=full, cwd=ROOT, capture_output=True, timeout=120)
    done = subprocess.run(
        [*flask, "consumers", "add", "http", "--url", "https://a.example/1"],
        env=full,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("added con_") and lines[1].startswith("secret (shown this once): whsec_")
    assert len(lines) == 2
    assert "FEEDS_SECRET_KEY is not set, so a key derived from ADMIN_TOKEN encrypts consumers'" in done.stderr


def test_cli_redrive_skips_a_removed_consumers_deliveries(app, services):
    cid = services_cli(app, "add", "redis_stream", "--stream", "s").output.split()[1]
    _failed_delivery(services, cid, "redis-stream://s")
    assert services_cli(app, "remove", cid, "--yes").exit_code == 0
    named = app.test_cli_runner().invoke(args=["redrive", "--consumer", cid])
    assert named.exit_code == 1 and f"consumer {cid} was removed" in named.output
    ranged = app.test_cli_runner().invoke(args=["redrive", "--since", "2020-01-01"])
    assert ranged.exit_code == 0 and "redrove 0 failed deliveries (1 of removed consumers skipped)" in ranged.output
