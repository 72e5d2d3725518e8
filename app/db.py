"""Database schema and engine (SQLite with WAL by default, PostgreSQL via DATABASE_URL).

The schema is owned by Alembic (migrations/); these table objects mirror the latest revision.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine

from app.config import ROOT

metadata = sa.MetaData()

#: Verbatim postback log: the bytes as received, one row per stored update.
raw_postbacks = sa.Table(
    "raw_postbacks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("broker", sa.String(16), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("received_at", sa.String(40), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
)

#: Normalized events; `sequence` counts per order from 1 in arrival order, `arrival` is the ingest stream
#: entry id that order follows (docs/pipeline.md).
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("broker", sa.String(16), nullable=False),
    sa.Column("order_id", sa.String(128), nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("account_id", sa.String(128)),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("received_at", sa.String(40), nullable=False),
    sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("arrival", sa.String(40)),
    sa.UniqueConstraint("broker", "order_id", "sequence", name="uq_events_order_sequence"),
)

#: Current state per order, derived by app.state.
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("broker", sa.String(16), primary_key=True),
    sa.Column("order_id", sa.String(128), primary_key=True),
    sa.Column("account_id", sa.String(128), index=True),
    sa.Column("status", sa.String(24), nullable=False, index=True),
    sa.Column("event_count", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("data", sa.JSON, nullable=False),
)

#: Accounts added as data (app/accounts/store.py): credentials and the day's token are Fernet tokens, never clear;
#: a per-account postback path token is kept only as its SHA-256.
accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("broker", sa.String(16), nullable=False),
    # NULL until a redirect login names it (Kite's answer carries user_id): several may wait at once.
    sa.Column("account_id", sa.String(128)),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("feed", sa.Boolean, nullable=False),
    sa.Column("reconcile", sa.Boolean, nullable=False),
    sa.Column("credentials", sa.LargeBinary, nullable=False),
    sa.Column("session_token", sa.LargeBinary),
    sa.Column("session_state", sa.String(16), nullable=False),
    sa.Column("session_revision", sa.Integer, nullable=False),
    sa.Column("logged_in_at", sa.DateTime(timezone=True)),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
    sa.Column("last_error_at", sa.DateTime(timezone=True)),
    sa.Column("postback_token_hash", sa.String(64), unique=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("broker", "account_id", name="uq_accounts_broker_account"),
)

#: Forward consumers: added as data (source "api", app/consumers/store.py), or a FORWARD_URLS entry that a 410
#: Gone disabled (source "environment"). `url` is an http consumer's URL, else a description of its destination
#: (`rq://<queue>/<function>`, `redis-stream://<stream>`); `secret` and `previous_secret` are Fernet tokens.
consumers = sa.Table(
    "consumers",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("disabled_at", sa.DateTime(timezone=True)),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("source", sa.String(16), nullable=False, server_default="environment"),
    sa.Column("type", sa.String(16), nullable=False, server_default="http"),
    sa.Column("queue", sa.String(200)),
    sa.Column("function", sa.String(200)),
    sa.Column("stream", sa.String(200)),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("filters", sa.JSON),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("secret", sa.LargeBinary),
    sa.Column("previous_secret", sa.LargeBinary),
    sa.Column("previous_secret_until", sa.DateTime(timezone=True)),
    sa.Column("secret_rotated_at", sa.DateTime(timezone=True)),
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)

#: One delivery per (event, consumer): pending -> delivered | failed (dead letter).
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False, index=True),
    sa.Column("consumer_id", sa.String(32), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    #: Attempts made before the current run of the retry schedule (a redrive starts a new run).
    sa.Column("schedule_offset", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.UniqueConstraint("event_id", "consumer_id", name="uq_deliveries_event_consumer"),
    sa.Index("ix_deliveries_consumer_status", "consumer_id", "status"),
)

#: Every forward attempt: time, status code, latency, error.
delivery_attempts = sa.Table(
    "delivery_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.Integer, sa.ForeignKey("deliveries.id"), nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("latency_ms", sa.Float),
    sa.Column("error", sa.Text),
)


def utcnow() -> datetime:
    """Aware UTC now, the only clock the database sees."""
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; they were written as UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def make_engine(url: str) -> Engine:
    """An engine for DATABASE_URL; SQLite gets WAL, a busy timeout and its directory created."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30}, pool_pre_ping=True)

        @sa_event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args={"connect_timeout": 5})


def upgrade(url: str) -> None:
    """Bring the database to the latest Alembic revision (idempotent; web and worker may race to it)."""
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    # Its INFO lines (importing alembic.command logs its plugins) say nothing a user needs at every start.
    alembic_log.setLevel(logging.WARNING)
    try:
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig(str(ROOT / "alembic.ini"))
        cfg.set_main_option("script_location", str(ROOT / "migrations"))
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        cfg.attributes["configure_logger"] = False
        with _migration_lock(url):
            command.upgrade(cfg, "head")
    finally:
        alembic_log.setLevel(level)


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """One migrator at a time: a file lock beside SQLite, an advisory lock on PostgreSQL."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if not path or path == ":memory:":
            yield
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(f"{path}.migrate.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        return
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(72731901)"))
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(72731901)"))
    finally:
        engine.dispose()
