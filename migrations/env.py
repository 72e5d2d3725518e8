"""Alembic environment: the URL comes from the caller (app.db.upgrade) or DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from app.config import load_config
from app.db import make_engine, metadata

config = context.config
url = config.get_main_option("sqlalchemy.url") or load_config().database_url


def run_migrations_offline() -> None:
    """Emit SQL without a connection."""
    context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply migrations over a connection."""
    engine = make_engine(url)
    engine.pool = pool.NullPool(engine.pool._creator)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
