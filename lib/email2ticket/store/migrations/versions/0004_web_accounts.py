"""The web admin: its accounts (Argon2id password hashes) and the secrets it makes for itself.

Existing data needs nothing: there is no account until `email2ticket web-user add`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _created() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "web_accounts",
        sa.Column("id", sa.Integer),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("session_version", sa.Integer, nullable=False),
        _created(),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_web_accounts"),
        sa.UniqueConstraint("name", name="uq_web_accounts_name"),
    )
    op.create_table(
        "web_secrets",
        sa.Column("name", sa.String(64)),
        sa.Column("value", sa.Text, nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("name", name="pk_web_secrets"),
    )


def downgrade() -> None:
    op.drop_table("web_secrets")
    op.drop_table("web_accounts")
