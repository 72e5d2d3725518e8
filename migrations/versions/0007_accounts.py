"""accounts: one login at one broker per row, credentials and session encrypted (app/accounts/store.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("broker", sa.String(16), nullable=False),
        # NULL until a redirect login names it: several accounts may wait for their first login at once.
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


def downgrade() -> None:
    op.drop_table("accounts")
