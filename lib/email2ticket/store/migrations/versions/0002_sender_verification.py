"""Sender verification: verified comment authors, tickets from unverified senders, the audit verdict.

Existing comments and tickets predate verification: their authors count as not verified (false), and
their messages' verdict is NULL (unknown), never a pass they did not earn.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("comments", sa.Column("author_verified", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("tickets", sa.Column("unverified_sender", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("messages", sa.Column("auth_verdict", sa.JSON))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN: PostgreSQL, and SQLite since 3.35 (Debian 12 ships 3.40). Alembic's
    # batch mode would rebuild the tables instead, which foreign keys forbid inside the transaction.
    op.drop_column("messages", "auth_verdict")
    op.drop_column("tickets", "unverified_sender")
    op.drop_column("comments", "author_verified")
