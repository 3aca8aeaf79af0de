"""Routing and threading: queues and their addresses, participants, priority and tags, filters, merge;
and the messages that came over LMTP on loopback TCP are marked as such.

Existing data: every ticket moves into the `default` queue (created here, the default from the start)
at priority `normal`; nothing else changes, no row is lost.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _created() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    queues = op.create_table(
        "queues",
        sa.Column("id", sa.Integer),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
        _created(),
        sa.PrimaryKeyConstraint("id", name="pk_queues"),
        sa.UniqueConstraint("name", name="uq_queues_name"),
    )
    op.create_table(
        "queue_addresses",
        sa.Column("address", sa.String(320)),
        sa.Column("queue_id", sa.Integer, nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("address", name="pk_queue_addresses"),
        sa.ForeignKeyConstraint(["queue_id"], ["queues.id"], name="fk_queue_addresses_queue_id_queues"),
    )
    op.create_index("ix_queue_addresses_queue_id", "queue_addresses", ["queue_id"])
    op.create_table(
        "ticket_participants",
        sa.Column("ticket_id", sa.Integer),
        sa.Column("address", sa.String(320)),
        sa.Column("message_row", sa.Integer),
        _created(),
        sa.PrimaryKeyConstraint("ticket_id", "address", name="pk_ticket_participants"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name="fk_ticket_participants_ticket_id_tickets"),
        sa.ForeignKeyConstraint(["message_row"], ["messages.id"], name="fk_ticket_participants_message_row_messages"),
    )
    op.create_table(
        "ticket_tags",
        sa.Column("ticket_id", sa.Integer),
        sa.Column("tag", sa.String(64)),
        _created(),
        sa.PrimaryKeyConstraint("ticket_id", "tag", name="pk_ticket_tags"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name="fk_ticket_tags_ticket_id_tickets"),
    )
    op.create_table(
        "filters",
        sa.Column("id", sa.Integer),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("conditions", sa.JSON, nullable=False),
        sa.Column("actions", sa.JSON, nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("id", name="pk_filters"),
        sa.UniqueConstraint("name", name="uq_filters_name"),
    )
    # Messages that came over LMTP on loopback TCP: a release or replay must not honour their
    # Authentication-Results either (earlier records came through a pipe, the socket or LMTP alike: false).
    op.add_column("messages", sa.Column("loopback_tcp", sa.Boolean, nullable=False, server_default=sa.false()))
    # Plain columns: SQLite could add foreign keys only by rebuilding tickets, which comments reference.
    op.add_column("tickets", sa.Column("queue_id", sa.Integer))
    op.add_column("tickets", sa.Column("priority", sa.String(16), nullable=False, server_default="normal"))
    op.add_column("tickets", sa.Column("merged_into", sa.Integer))
    now = sa.func.current_timestamp()
    # No explicit id: on PostgreSQL that would leave the queues' sequence behind, and the next `queue add` would
    # collide with it. The first row of a new table is id 1 on both engines anyway.
    op.execute(queues.insert().values(name="default", is_default=True, created_at=now))
    tickets = sa.table("tickets", sa.column("queue_id", sa.Integer))
    default = sa.select(queues.c.id).where(queues.c.name == "default").scalar_subquery()
    op.execute(tickets.update().values(queue_id=default))


def downgrade() -> None:
    op.drop_column("messages", "loopback_tcp")
    op.drop_column("tickets", "merged_into")
    op.drop_column("tickets", "priority")
    op.drop_column("tickets", "queue_id")
    op.drop_table("filters")
    op.drop_table("ticket_tags")
    op.drop_table("ticket_participants")
    op.drop_index("ix_queue_addresses_queue_id", table_name="queue_addresses")
    op.drop_table("queue_addresses")
    op.drop_table("queues")
