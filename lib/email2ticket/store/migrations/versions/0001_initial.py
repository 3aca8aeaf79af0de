"""Initial schema: users, tickets, comments, attachments, the message audit trail, rule settings.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _created() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("is_technician", sa.Boolean, nullable=False),
        sa.Column("access", sa.String(16), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requester_id", sa.Integer, nullable=False),
        sa.Column("technician_id", sa.Integer),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text),
        _created(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
        sa.ForeignKeyConstraint(["requester_id"], ["users.id"], name="fk_tickets_requester_id_users"),
        sa.ForeignKeyConstraint(["technician_id"], ["users.id"], name="fk_tickets_technician_id_users"),
    )
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer),
        sa.Column("ticket_id", sa.Integer, nullable=False),
        sa.Column("author_id", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text),
        _created(),
        sa.PrimaryKeyConstraint("id", name="pk_comments"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name="fk_comments_ticket_id_tickets"),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name="fk_comments_author_id_users"),
    )
    op.create_index("ix_comments_ticket_id", "comments", ["ticket_id"])
    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer),
        sa.Column("ticket_id", sa.Integer, nullable=False),
        sa.Column("comment_id", sa.Integer),
        sa.Column("filename", sa.Text),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("id", name="pk_attachments"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name="fk_attachments_ticket_id_tickets"),
        sa.ForeignKeyConstraint(["comment_id"], ["comments.id"], name="fk_attachments_comment_id_comments"),
    )
    op.create_index("ix_attachments_ticket_id", "attachments", ["ticket_id"])
    op.create_index("ix_attachments_comment_id", "attachments", ["comment_id"])
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queue_id", sa.String(64)),
        sa.Column("envelope_sender", sa.Text),
        sa.Column("envelope_recipient", sa.Text),
        sa.Column("sender", sa.Text),
        sa.Column("message_id", sa.Text),
        sa.Column("subject", sa.Text),
        sa.Column("body_digest", sa.String(64), nullable=False),
        sa.Column("raw_sha256", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("delivered_key", sa.String(64)),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("ticket_id", sa.Integer),
        sa.Column("comment_id", sa.Integer),
        sa.Column("exit_code", sa.Integer, nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.UniqueConstraint("delivered_key", name="uq_messages_delivered_key"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name="fk_messages_ticket_id_tickets"),
        sa.ForeignKeyConstraint(["comment_id"], ["comments.id"], name="fk_messages_comment_id_comments"),
    )
    op.create_index("ix_messages_message_id", "messages", ["message_id"])
    op.create_index("ix_messages_idempotency_key", "messages", ["idempotency_key"])
    op.create_index("ix_messages_received_at", "messages", ["received_at"])
    op.create_table(
        "settings",
        sa.Column("name", sa.String(64)),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_settings"),
    )
    op.create_table(
        "separator_edits",
        sa.Column("id", sa.Integer),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("id", name="pk_separator_edits"),
        sa.UniqueConstraint("text", name="uq_separator_edits_text"),
    )


def downgrade() -> None:
    for table in ("separator_edits", "settings", "messages", "attachments", "comments", "tickets", "users"):
        op.drop_table(table)
