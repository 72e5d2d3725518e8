"""`flask consumers ...`: the same consumers and checks as /api/consumers."""

from __future__ import annotations

import json

from app.consumers.store import ConsumerStore
from app.redis_keys import CONSUMER_TESTS_KEY


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=["consumers", *args])


def test_add_list_change_rotate_remove(app, services):
    added = run(app, "add", "http", "--url", "https://a.example/hook", "--accounts", "A1,A2", "--description", "A")
    assert added.exit_code == 0, added.output
    cid = added.output.split()[1]
    secret = added.output.strip().splitlines()[-1].split()[-1]
    assert secret.startswith("whsec_")
    held = ConsumerStore(services.config, services.engine).get(cid, secrets=True)
    assert held.secrets == (secret,) and held.filters.accounts == {"A1", "A2"}
    listed = run(app, "list")
    assert cid in listed.output and "accounts=A1,A2" in listed.output and secret not in listed.output
    as_json = json.loads(run(app, "list", "--json").output)
    assert as_json["consumers"][0]["id"] == cid
    changed = run(app, "change", cid, "--disable", "--statuses", "FILLED")
    assert changed.exit_code == 0 and "off" in changed.output
    held = ConsumerStore(services.config, services.engine).get(cid)
    assert not held.enabled and held.filters.statuses == {"FILLED"} and held.filters.accounts == {"A1", "A2"}
    rotated = run(app, "rotate", cid)
    assert rotated.exit_code == 0 and "whsec_" in rotated.output and secret not in rotated.output
    removed = run(app, "remove", cid, "--yes")
    assert removed.exit_code == 0 and "0 pending deliveries" in removed.output
    assert run(app, "remove", cid, "--yes").exit_code == 1


def test_refusals_are_one_line(app):
    bad = run(app, "add", "rq", "--queue", "q", "--function", "nodots")
    assert bad.exit_code == 1 and "function must be a dotted path" in bad.output
    assert "no consumer 'con_x'" in run(app, "test", "con_x", "--wait", "0").output
    bad_filter = run(app, "add", "redis_stream", "--stream", "s", "--brokers", "nyse")
    assert bad_filter.exit_code == 1 and "unknown ['nyse']" in bad_filter.output


def test_test_and_replay(app, redis_client):
    cid = run(app, "add", "redis_stream", "--stream", "s").output.split()[1]
    queued = run(app, "test", cid, "--wait", "0")
    assert queued.exit_code == 0 and "queued" in queued.output
    assert json.loads(redis_client.lindex(CONSUMER_TESTS_KEY, 0))["consumer_id"] == cid
    replayed = run(app, "replay", cid, "--since", "2026-01-01T00:00Z")
    assert replayed.exit_code == 0 and "0 events replayed" in replayed.output
    assert run(app, "replay", cid, "--since", "2026-01-02", "--until", "2026-01-01").exit_code == 2


def test_redrive_takes_a_consumer_id(app, services):
    from app.db import deliveries, utcnow

    cid = run(app, "add", "redis_stream", "--stream", "s").output.split()[1]
    with services.engine.begin() as conn:
        conn.execute(
            deliveries.insert(),
            [
                {
                    "event_id": f"evt_{n}",
                    "consumer_id": who,
                    "url": "redis-stream://s",
                    "status": "failed",
                    "attempts": 1,
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                }
                for n, who in enumerate([cid, cid, "con_other"])
            ],
        )
    counted = app.test_cli_runner().invoke(args=["redrive", "--consumer", cid, "--dry-run"])
    assert counted.exit_code == 0 and "2 failed deliveries would be redriven" in counted.output
