"""Filters, names, the migration of the consumers table, and secrets that do not decrypt."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from app.config import ROOT, load_config
from app.consumers.directory import ConsumerDirectory
from app.consumers.filters import BadFilters, Filters, parse_filters
from app.consumers.model import function_problem, queue_problem, stream_problem, url_problem
from app.consumers.store import ConsumerStore
from app.db import consumers, utcnow
from tests.support.env import make_env

EVENT = {"broker": "kite", "account_id": "A1", "status": "FILLED", "source": "postback"}


@pytest.mark.parametrize(
    ("filters", "matches"),
    [
        ({}, True),
        ({"brokers": ["kite"]}, True),
        ({"brokers": ["dhan"]}, False),
        ({"accounts": ["A1", "B2"], "statuses": ["FILLED"]}, True),
        ({"accounts": ["B2"], "statuses": ["FILLED"]}, False),
        ({"sources": ["websocket"]}, False),
        ({"brokers": [], "accounts": [], "statuses": [], "sources": []}, True),
    ],
)
def test_every_given_list_must_hold_the_events_value(filters, matches):
    assert parse_filters(filters).matches(EVENT) is matches


def test_filters_are_shown_with_all_four_keys_and_refused_by_name():
    assert Filters().shown() == {"brokers": [], "accounts": [], "statuses": [], "sources": []}
    with pytest.raises(BadFilters, match="filters.accounts must be a list of strings"):
        parse_filters({"accounts": [1]})
    with pytest.raises(BadFilters, match="printable"):
        parse_filters({"accounts": ["a\nb"]})
    with pytest.raises(BadFilters, match="more than 500"):
        parse_filters({"accounts": [str(n) for n in range(501)]})


def test_destination_names():
    assert not url_problem("https://user.example:8443/hook?token=x")
    assert url_problem("https://exa mple.com") and url_problem("http://:80") and url_problem("https://x:99999")
    assert not queue_problem("strategy") and queue_problem("orderhook-pipeline-0") and queue_problem("-x")
    assert not function_problem("strategy.orders.on_order")
    assert function_problem("on_order") and function_problem("a.b()") and function_problem("a..b")
    assert not stream_problem("orders:all") and stream_problem("rq:queue:x") and stream_problem("oh:ingest")


def test_the_migration_keeps_a_410_disabled_forward_url_as_the_environments(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    cfg = AlembicConfig(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "0007")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO consumers (id, url, disabled_at, disabled_reason) VALUES ('c_1', 'http://x', :t, 'g')"
            ),
            {"t": utcnow()},
        )
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        row = conn.execute(sa.select(consumers)).one()
    assert (row.source, row.type, row.enabled, row.description, row.revision) == ("environment", "http", True, "", 1)
    command.downgrade(cfg, "0007")
    command.upgrade(cfg, "head")
    engine.dispose()


def test_a_secret_that_does_not_decrypt_is_never_used_unsigned(redis_url, sqlite_url, tmp_path):
    config = load_config(make_env(redis_url, sqlite_url, tmp_path))
    engine = sa.create_engine(sqlite_url)
    made, _ = ConsumerStore(config, engine).create("http", url="https://a.example/hook")
    other = load_config(make_env(redis_url, sqlite_url, tmp_path, ADMIN_TOKEN="another-admin-token-0123456789"))
    held = ConsumerDirectory(other, engine).get(made.id)
    assert held is not None and held.secrets == ()
    from workers.sending import ConsumerSender

    sender = ConsumerSender("https://a.example/hook", [], 1.0, 1, unsigned_refused=True)
    from app.delivery import DeliveryTry

    outcome = sender.attempt(DeliveryTry(1, "evt_1", made.id, "https://a.example/hook", 0, 0, b"{}"))
    sender.close()
    assert not outcome.ok and "could not be read" in outcome.error
    engine.dispose()
