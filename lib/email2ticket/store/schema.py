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
SCHEMA_REVISION = "0005"

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
    # A new ticket whose mail carried our token for another ticket it was not allowed to update.
    Column("refers_to", Integer),
    # The queue chosen by the recipient or a filter when the ticket opened; a reply never moves it.
    # No foreign keys on the columns added to existing tickets (like refers_to): SQLite could add them
    # only by rebuilding the table its comments reference.
    Column("queue_id", Integer),
    Column("priority", String(16), nullable=False, default="normal", server_default="normal"),
    # `ticket merge SOURCE TARGET` sets this on SOURCE: anything that later names SOURCE lands on TARGET.
    Column("merged_into", Integer),
)

# Queues: where a new ticket lands, chosen by the address the mail was sent to (rules/routing).
# Exactly one is the default (a partial unique index would differ between the engines; the admin
# commands keep it so), and `default` exists from the first migration that made queues.
queues = Table(
    "queues",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("is_default", Boolean, nullable=False, default=False, server_default=false()),
    _created(),
)

# The addresses that choose a queue, stored lower-cased: a recipient matches one exactly, else by its base address
# (helpdesk+7@ -> helpdesk@; rules/routing.py), so an address with a detail can be a queue's own mailbox.
queue_addresses = Table(
    "queue_addresses",
    metadata,
    Column("address", String(320), primary_key=True),
    Column("queue_id", Integer, ForeignKey("queues.id"), nullable=False, index=True),
    _created(),
)

# People copied on a ticket (To:/Cc: of the mail that opened it, later authorised replies, the admin):
# they may reply like the requester, and receive its update notifications when notify_participants is on.
ticket_participants = Table(
    "ticket_participants",
    metadata,
    Column("ticket_id", Integer, ForeignKey("tickets.id"), primary_key=True),
    Column("address", String(320), primary_key=True),  # lower-cased
    Column("message_row", Integer, ForeignKey("messages.id")),  # the mail that added it; None: an admin
    _created(),
)

# Words a filter (or an admin) attached to a ticket.
ticket_tags = Table(
    "ticket_tags",
    metadata,
    Column("ticket_id", Integer, ForeignKey("tickets.id"), primary_key=True),
    Column("tag", String(64), primary_key=True),
    _created(),
)

# The admin's postmaster filters, checked in `position` order after the loop rules. `conditions` is a
# list of {"field", "op", "value"}; `actions` a list of {"action", "value"} (rules/filters).
filters = Table(
    "filters",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("position", Integer, nullable=False),
    Column("conditions", JSON, nullable=False),
    Column("actions", JSON, nullable=False),
    _created(),
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
# `delivered_key` is set for messages that created, updated or noted on a ticket or were held or
# ignored, and is unique: that constraint, written in the same transaction as the ticket, is what makes
# redelivery idempotent.
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
    # The rule that held or ignored the message (spam-flag, sender-flood, automatic-mail, own-mail,
    # bounce): `messages release` skips exactly that check.
    Column("held_by", String(32)),
    # It came over LMTP on loopback TCP, where any local user can connect: its Authentication-Results were
    # not honoured, and a release or replay must not honour them either.
    Column("loopback_tcp", Boolean, nullable=False, default=False, server_default=false()),
    Index("ix_messages_message_id", "message_id"),
    Index("ix_messages_idempotency_key", "idempotency_key"),
    Index("ix_messages_received_at", "received_at"),
    Index("ix_messages_sender_received_at", "sender", "received_at"),  # the flood limit's count
    Index("ix_messages_action", "action"),
)

# Internal notes: what automatic mail (an out-of-office reply, a bounce of our notification) says about
# a ticket. Kept apart from comments, which are the conversation with the requester: a note never
# reopens a ticket and never triggers a notification.
notes = Table(
    "notes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False, index=True),
    Column("message_row", Integer, ForeignKey("messages.id")),
    Column("kind", String(16), nullable=False),  # "bounce", "automatic", or "limits" (a released message)
    Column("author", Text),  # the sender's address as given; not a user row (MAILER-DAEMON is nobody)
    Column("body", Text, nullable=False),
    _created(),
)

# Outgoing notifications: written as `pending` in the delivery's transaction, sent after it commits.
# A failed send is kept and retried (next delivery, `notifications retry`); the counts of recent
# acknowledgements are the rate limits (rules/notify.py).
# Notifications waiting for a retry are sent after a delivery; past this many attempts only an admin's
# `notifications retry` sends them again.
MAX_SEND_ATTEMPTS = 8
notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False, index=True),
    Column("kind", String(24), nullable=False),  # acknowledgement, technician-update, requester-comment
    Column("recipient", String(320), nullable=False),
    Column("source_message_row", Integer, ForeignKey("messages.id")),
    Column("comment_id", Integer, ForeignKey("comments.id")),
    Column("status", String(16), nullable=False, default="pending"),  # pending, sent, failed, bounced
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("last_error", Text),
    Column("outgoing_message_id", Text),  # the Message-ID we sent it with (a bounce names it)
    _created(),
    Column("sent_at", DateTime(timezone=True)),
    Index("ix_notifications_recipient_created_at", "recipient", "created_at"),
    Index("ix_notifications_created_at", "created_at"),
    Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
    Index("ix_notifications_outgoing_message_id", "outgoing_message_id"),
)

# Addresses that hard-bounced a notification: never notified again until an admin clears them.
bounced_addresses = Table(
    "bounced_addresses",
    metadata,
    Column("address", String(320), primary_key=True),
    Column("status", String(16)),  # the enhanced status code, e.g. 5.1.1
    Column("reason", Text, nullable=False),
    Column("ticket_id", Integer, ForeignKey("tickets.id")),
    Column("message_row", Integer, ForeignKey("messages.id")),
    _created(),
)

# Rule settings changed by the admin; absent keys take the defaults in config/rule_settings.py.
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

# The web admin's accounts (`email2ticket web-user`): Argon2id hashes, never passwords (store/accounts.py).
# Raising `session_version` (a new password, a removed account) ends every session signed for the old one.
web_accounts = Table(
    "web_accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("session_version", Integer, nullable=False, default=1),
    _created(),
    Column("password_changed_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("last_login_at", DateTime(timezone=True)),
)

# Secrets the web admin makes for itself on first start (the key that signs its session cookies), so that it
# needs no configuration beyond the database and every process on that database signs alike.
web_secrets = Table(
    "web_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    _created(),
)
