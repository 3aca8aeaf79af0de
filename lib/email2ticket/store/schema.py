"""The database tables, as SQLAlchemy Core objects: one definition for delivery, the ORM and Alembic.

Delivery runs on every message and uses Core statements over these tables, which avoids the cost of
importing and configuring the ORM in each short-lived pipe process; the typed ORM classes in
models.py map these same tables for the admin commands. Migrations under migrations/versions freeze
their own copy, as migrations must; a test checks that they still produce exactly these tables.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

# The Alembic revision this code reads and writes. Delivery refuses (75) a database at any other
# revision and names `email2ticket init`; bump it together with a new file in migrations/versions.
SCHEMA_REVISION = "0002"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _created() -> Column[datetime]:
    return Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow)


users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200)),
    Column("is_technician", Boolean, nullable=False, default=False),
    Column("access", String(16), nullable=False, default="none"),
    Column("disabled", Boolean, nullable=False, default=False),
    _created(),
)

tickets = Table(
    "tickets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("subject", Text, nullable=False),
    Column("status", String(16), nullable=False, default="open"),
    Column("requester_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("technician_id", Integer, ForeignKey("users.id")),
    Column("description", Text, nullable=False),
    Column("message_id", Text),
    _created(),
    Column("updated_at", DateTime(timezone=True), nullable=False, default=utcnow),
    # Opened because a sender who claimed a privilege (a technician's reply) could not be authenticated.
    Column("unverified_sender", Boolean, nullable=False, default=False, server_default=false()),
)

comments = Table(
    "comments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False, index=True),
    Column("author_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("body", Text, nullable=False),
    Column("message_id", Text),
    _created(),
    # The author was authenticated (DKIM or trusted Authentication-Results) when the comment arrived;
    # nothing unverified may ever be relayed to a requester as coming from a technician.
    Column("author_verified", Boolean, nullable=False, default=False, server_default=false()),
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False, index=True),
    Column("comment_id", Integer, ForeignKey("comments.id"), index=True),
    Column("filename", Text),  # exactly as sent; None when the part had no name
    Column("content_type", String(255), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    _created(),
)

# The audit trail: every message that reached the database, raw bytes included, with its decision.
# `delivered_key` is set only for messages that created or updated a ticket, and is unique: that
# constraint, written in the same transaction as the ticket, is what makes redelivery idempotent.
messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("queue_id", String(64)),
    Column("envelope_sender", Text),  # None: not given; "": the null sender
    Column("envelope_recipient", Text),
    Column("sender", Text),
    Column("message_id", Text),
    Column("subject", Text),
    Column("body_digest", String(64), nullable=False),
    Column("raw_sha256", String(64), nullable=False),
    Column("idempotency_key", String(64), nullable=False),
    Column("delivered_key", String(64), unique=True),
    Column("action", String(16), nullable=False),
    Column("ticket_id", Integer, ForeignKey("tickets.id")),
    Column("comment_id", Integer, ForeignKey("comments.id")),
    Column("exit_code", Integer, nullable=False),
    Column("reasons", Text, nullable=False),  # JSON list of "<rule-name>: <sentence>"
    Column("size", Integer, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    # The sender verification verdict (auth.Verdict.as_dict), or {"result": "not evaluated", ...}.
    Column("auth_verdict", JSON),
    Index("ix_messages_message_id", "message_id"),
    Index("ix_messages_idempotency_key", "idempotency_key"),
    Index("ix_messages_received_at", "received_at"),
)

# Rule settings changed by the admin; absent keys take the defaults in settings.py.
settings = Table(
    "settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, default=utcnow),
)

# The admin's edits to the built-in separator list, so upgrades still bring improved defaults.
separator_edits = Table(
    "separator_edits",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("op", String(8), nullable=False),  # "add" or "remove"
    Column("text", Text, nullable=False),
    _created(),
    UniqueConstraint("text", name="uq_separator_edits_text"),
)
