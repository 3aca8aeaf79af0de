"""Notifications and loop protection: internal notes, outgoing notifications, hard-bounced addresses,
why a message was held, and which ticket a new ticket's mail referred to.

Existing data needs nothing: no ticket referred elsewhere, no message was held, nothing was sent.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _created() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.add_column("tickets", sa.Column("refers_to", sa.Integer))
    op.add_column("messages", sa.Column("held_by", sa.String(32)))
    op.create_index("ix_messages_sender_received_at", "messages", ["sender", "received_at"])
    op.create_index("ix_messages_action", "messages", ["action"])
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer),
        sa.Column("ticket_id", sa.Integer, nullable=False),
        sa.Column("message_row", sa.Integer),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("author", sa.Text),
        sa.Column("body", sa.Text, nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("id", name="pk_notes"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name="fk_notes_ticket_id_tickets"),
        sa.ForeignKeyConstraint(["message_row"], ["messages.id"], name="fk_notes_message_row_messages"),
    )
    op.create_index("ix_notes_ticket_id", "notes", ["ticket_id"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer),
        sa.Column("ticket_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("source_message_row", sa.Integer),
        sa.Column("comment_id", sa.Integer),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("outgoing_message_id", sa.Text),
        _created(),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name="fk_notifications_ticket_id_tickets"),
        sa.ForeignKeyConstraint(
            ["source_message_row"], ["messages.id"], name="fk_notifications_source_message_row_messages"
        ),
        sa.ForeignKeyConstraint(["comment_id"], ["comments.id"], name="fk_notifications_comment_id_comments"),
    )
    op.create_index("ix_notifications_ticket_id", "notifications", ["ticket_id"])
    op.create_index("ix_notifications_recipient_created_at", "notifications", ["recipient", "created_at"])
    op.create_index("ix_notifications_created_at", "notifications", ["created_at"])
    op.create_index("ix_notifications_status_next_attempt_at", "notifications", ["status", "next_attempt_at"])
    op.create_index("ix_notifications_outgoing_message_id", "notifications", ["outgoing_message_id"])
    op.create_table(
        "bounced_addresses",
        sa.Column("address", sa.String(320)),
        sa.Column("status", sa.String(16)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("ticket_id", sa.Integer),
        sa.Column("message_row", sa.Integer),
        _created(),
        sa.PrimaryKeyConstraint("address", name="pk_bounced_addresses"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name="fk_bounced_addresses_ticket_id_tickets"),
        sa.ForeignKeyConstraint(["message_row"], ["messages.id"], name="fk_bounced_addresses_message_row_messages"),
    )


def downgrade() -> None:
    op.drop_table("bounced_addresses")
    op.drop_table("notifications")
    op.drop_table("notes")
    op.drop_index("ix_messages_action", "messages")
    op.drop_index("ix_messages_sender_received_at", "messages")
    op.drop_column("messages", "held_by")
    op.drop_column("tickets", "refers_to")
