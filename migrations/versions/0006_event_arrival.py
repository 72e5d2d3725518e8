"""events.arrival: the ingest stream entry id whose order `sequence` follows (docs/pipeline.md).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: events stored before it have no recorded arrival (their sequence is what it was).
    op.add_column("events", sa.Column("arrival", sa.String(40), nullable=True))


def downgrade() -> None:
    op.drop_column("events", "arrival")
