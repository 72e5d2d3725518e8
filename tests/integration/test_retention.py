"""Retention: old rows pruned in batches, pending deliveries and what they need kept, dry runs change nothing."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app import create_app
from app.config import load_config
from app.db import deliveries, delivery_attempts, events, orders, raw_postbacks, utcnow
from app.retention import prune
from app.services import Services, set_services
from app.store import persist_batch
from tests.integration.test_api_pages import update
from tests.support.env import ROOT, make_env

CONSUMER = "https://consumer.example.com/hook"


@pytest.fixture
def db_services(redis_client, redis_url, database_url, tmp_path):
    env = make_env(redis_url, database_url, tmp_path, FORWARD_URLS=CONSUMER)
    built = Services.build(load_config(env))
    set_services(built)
    yield built
    set_services(None)
    built.engine.dispose()


def age(services, order_id: str, days: int) -> None:
    """Make an order's rows (state, events, raw log, deliveries, attempts) `days` old."""
    then = utcnow() - timedelta(days=days)
    with services.engine.begin() as conn:
        ids = list(conn.execute(sa.select(events.c.id).where(events.c.order_id == order_id)).scalars())
        conn.execute(events.update().where(events.c.id.in_(ids)).values(stored_at=then))
        conn.execute(
            raw_postbacks.update()
            .where(raw_postbacks.c.event_id.in_(ids))
            .values(received_at=then.isoformat().replace("+00:00", "Z"))
        )
        conn.execute(orders.update().where(orders.c.order_id == order_id).values(updated_at=then))
        conn.execute(deliveries.update().where(deliveries.c.event_id.in_(ids)).values(created_at=then))


def settle(services, order_id: str, status: str) -> None:
    """Mark an order's deliveries delivered or failed, with one attempt each."""
    with services.engine.begin() as conn:
        ids = list(
            conn.execute(
                sa.select(deliveries.c.id).where(
                    deliveries.c.event_id.in_(sa.select(events.c.id).where(events.c.order_id == order_id))
                )
            ).scalars()
        )
        conn.execute(deliveries.update().where(deliveries.c.id.in_(ids)).values(status=status))
        conn.execute(
            delivery_attempts.insert(), [{"delivery_id": i, "attempt": 1, "attempted_at": utcnow()} for i in ids]
        )


def counts(services) -> dict[str, int]:
    with services.engine.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (delivery_attempts, deliveries, raw_postbacks, events, orders)
        }


def store(services, order_id: str, numbers) -> None:
    persist_batch(services.engine, [update(order_id, n) for n in numbers], services.config.forward_urls)


def test_old_rows_go_recent_and_pending_stay(db_services):
    store(db_services, "OLD", range(1, 6))
    settle(db_services, "OLD", "delivered")
    age(db_services, "OLD", 100)
    store(db_services, "NEW", range(1, 4))
    settle(db_services, "NEW", "failed")
    store(db_services, "WAITING", [1])  # its delivery stays pending
    age(db_services, "WAITING", 100)
    before = counts(db_services)
    would = prune(db_services.engine, 90, dry_run=True, batch=2)
    assert counts(db_services) == before  # a dry run changes nothing
    assert would == {"delivery_attempts": 5, "deliveries": 5, "raw_postbacks": 5, "events": 5, "orders": 1}
    done = prune(db_services.engine, 90, batch=2)  # batches of 2: several transactions each
    assert done == would
    with db_services.engine.connect() as conn:
        assert sorted(set(conn.execute(sa.select(orders.c.order_id)).scalars())) == ["NEW", "WAITING"]
        assert (
            conn.execute(
                sa.select(sa.func.count()).select_from(events).where(events.c.order_id == "WAITING")
            ).scalar_one()
            == 1
        )
        assert set(conn.execute(sa.select(deliveries.c.status)).scalars()) == {"failed", "pending"}
    assert prune(db_services.engine, 90) == dict.fromkeys(done, 0)  # nothing left to remove


def test_zero_days_keeps_everything(db_services):
    store(db_services, "OLD", [1])
    age(db_services, "OLD", 1000)
    assert set(prune(db_services.engine, 0).values()) == {0}
    assert counts(db_services)["events"] == 1


def test_an_orphan_raw_postback_goes_once_old(db_services):
    with db_services.engine.begin() as conn:
        conn.execute(
            raw_postbacks.insert().values(
                event_id="evt_lost",
                broker="kite",
                source="postback",
                received_at="2020-01-01T00:00:00.000000Z",
                body=b"{}",
            )
        )
    assert prune(db_services.engine, 90)["raw_postbacks"] == 1


def test_cli_prune_dry_run_both_ways(redis_client, redis_url, sqlite_url, tmp_path):
    env = make_env(redis_url, sqlite_url, tmp_path, RETENTION_DAYS="30")
    services = Services.build(load_config(env))
    store(services, "OLD", [1, 2])
    age(services, "OLD", 40)
    runner = create_app(services.config, services).test_cli_runner()
    result = runner.invoke(args=["prune", "--dry-run"])
    assert result.exit_code == 0 and "would remove (older than 30 days)" in result.output
    assert "2 events" in result.output and "1 orders" in result.output
    full_env = dict(env, PATH="/usr/bin:/bin")
    module = subprocess.run(
        [sys.executable, "-m", "app.cli", "prune", "--dry-run"],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert module.returncode == 0, module.stderr
    assert "would remove" in module.stdout and "2 events" in module.stdout
    assert counts(services)["events"] == 2
    result = runner.invoke(args=["prune"])
    assert "removed" in result.output and counts(services)["events"] == 0
    services.engine.dispose()


def test_prune_if_due_runs_once_per_period_across_processes(db_services, redis_client):
    from app.retention import prune_if_due

    store(db_services, "OLD", [1])
    settle(db_services, "OLD", "delivered")
    age(db_services, "OLD", 100)
    first = prune_if_due(db_services.engine, redis_client, 90, every_seconds=60)
    assert first is not None and first["events"] == 1
    assert prune_if_due(db_services.engine, redis_client, 90, every_seconds=60) is None  # another process, same hour
    assert 0 < redis_client.ttl("oh:retention:lease") <= 60
    assert prune_if_due(db_services.engine, redis_client, 0) is None  # RETENTION_DAYS=0: never
