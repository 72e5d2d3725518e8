"""The body is stored once: events.data loses `raw`, which app/rawlog.py rebuilds from raw_postbacks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE events SET data = (data::jsonb - 'raw')::json WHERE (data::jsonb) ? 'raw'")
    else:
        op.execute("UPDATE events SET data = json_remove(data, '$.raw') WHERE json_extract(data, '$.raw') IS NOT NULL")


def downgrade() -> None:
    # The raw body is still in raw_postbacks; the API and forwards rebuild `raw` from it.
    pass
