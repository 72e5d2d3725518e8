"""consumers as data: a type and destination, filters, a switch, an encrypted secret (app/consumers/store.py).

The rows already there were made by a 410 Gone of a FORWARD_URLS consumer: they are the environment's.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs (SQLite takes each with a constant default), no table rebuild.
    for column in (
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
    ):
        op.add_column("consumers", column)
    # A consumer's counts, last error and latency are read by consumer and state (GET /api/consumers).
    op.create_index("ix_deliveries_consumer_status", "deliveries", ["consumer_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_consumer_status", table_name="deliveries")
    for name in (
        "updated_at",
        "created_at",
        "revision",
        "secret_rotated_at",
        "previous_secret_until",
        "previous_secret",
        "secret",
        "enabled",
        "filters",
        "description",
        "stream",
        "function",
        "queue",
        "type",
        "source",
    ):
        op.drop_column("consumers", name)
