"""Typed ORM classes over the tables in schema.py, for the admin commands.

The admin command runs rarely and reads object graphs (a ticket with its requester, comments and
attachments), which the ORM expresses best. Each class maps the Core table delivery writes to, via
`__table__`, so there is one schema; the `Mapped[...]` annotations give mypy the column types.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import DeclarativeBase, Mapped, relationship

from . import schema


class Base(DeclarativeBase):
    metadata = schema.metadata


class User(Base):
    __table__ = schema.users

    id: Mapped[int]
    email: Mapped[str]
    name: Mapped[str | None]
    is_technician: Mapped[bool]
    access: Mapped[str]
    disabled: Mapped[bool]
    created_at: Mapped[datetime]


class Ticket(Base):
    __table__ = schema.tickets

    id: Mapped[int]
    subject: Mapped[str]
    status: Mapped[str]
    requester_id: Mapped[int]
    technician_id: Mapped[int | None]
    description: Mapped[str]
    message_id: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    unverified_sender: Mapped[bool]
    refers_to: Mapped[int | None]
    merged_into: Mapped[int | None]
    queue_id: Mapped[int | None]
    priority: Mapped[str]

    requester: Mapped[User] = relationship(foreign_keys=[schema.tickets.c.requester_id])
    technician: Mapped[User | None] = relationship(foreign_keys=[schema.tickets.c.technician_id])
    # In the order they were written: a merge (store/merge.py) brings older comments of another ticket.
    comments: Mapped[list[Comment]] = relationship(order_by="(Comment.created_at, Comment.id)", back_populates="ticket")
    attachments: Mapped[list[Attachment]] = relationship(
        primaryjoin="and_(Attachment.ticket_id == Ticket.id, Attachment.comment_id.is_(None))",
        order_by="Attachment.id",
        viewonly=True,
    )
    notes: Mapped[list[Note]] = relationship(order_by="Note.id", viewonly=True)
    participants: Mapped[list[Participant]] = relationship(order_by="Participant.address", viewonly=True)
    # tickets.queue_id has no foreign key (schema.py says why): the join is spelt out.
    queue: Mapped[Queue | None] = relationship(primaryjoin="foreign(Ticket.queue_id) == Queue.id", viewonly=True)
    tags: Mapped[list[TicketTag]] = relationship(order_by="TicketTag.tag", viewonly=True)


class Queue(Base):
    """Where new tickets land, chosen by the address the mail was sent to (rules/routing.py)."""

    __table__ = schema.queues

    id: Mapped[int]
    name: Mapped[str]
    is_default: Mapped[bool]
    created_at: Mapped[datetime]


class TicketTag(Base):
    """A word a filter (rules/filters.py) attached to a ticket."""

    __table__ = schema.ticket_tags

    ticket_id: Mapped[int]
    tag: Mapped[str]
    created_at: Mapped[datetime]


class Participant(Base):
    """A person copied on a ticket (rules/people.py): replies like its requester."""

    __table__ = schema.ticket_participants

    ticket_id: Mapped[int]
    address: Mapped[str]
    message_row: Mapped[int | None]
    created_at: Mapped[datetime]


class Comment(Base):
    __table__ = schema.comments

    id: Mapped[int]
    ticket_id: Mapped[int]
    author_id: Mapped[int]
    body: Mapped[str]
    message_id: Mapped[str | None]
    created_at: Mapped[datetime]
    author_verified: Mapped[bool]

    ticket: Mapped[Ticket] = relationship(back_populates="comments")
    author: Mapped[User] = relationship()
    attachments: Mapped[list[Attachment]] = relationship(order_by="Attachment.id", viewonly=True)


class Attachment(Base):
    __table__ = schema.attachments

    id: Mapped[int]
    ticket_id: Mapped[int]
    comment_id: Mapped[int | None]
    filename: Mapped[str | None]
    content_type: Mapped[str]
    size: Mapped[int]
    sha256: Mapped[str]
    data: Mapped[bytes]
    created_at: Mapped[datetime]


class Message(Base):
    """One delivered message of the audit trail, raw bytes included."""

    __table__ = schema.messages

    id: Mapped[int]
    received_at: Mapped[datetime]
    queue_id: Mapped[str | None]
    envelope_sender: Mapped[str | None]
    envelope_recipient: Mapped[str | None]
    sender: Mapped[str | None]
    message_id: Mapped[str | None]
    subject: Mapped[str | None]
    body_digest: Mapped[str]
    raw_sha256: Mapped[str]
    idempotency_key: Mapped[str]
    delivered_key: Mapped[str | None]
    action: Mapped[str]
    ticket_id: Mapped[int | None]
    comment_id: Mapped[int | None]
    exit_code: Mapped[int]
    reasons: Mapped[str]
    auth_verdict: Mapped[dict[str, Any] | None]
    held_by: Mapped[str | None]
    size: Mapped[int]
    raw: Mapped[bytes]


class Note(Base):
    """An internal note: what automatic mail (an out-of-office reply, a bounce) said about a ticket."""

    __table__ = schema.notes

    id: Mapped[int]
    ticket_id: Mapped[int]
    message_row: Mapped[int | None]
    kind: Mapped[str]
    author: Mapped[str | None]
    body: Mapped[str]
    created_at: Mapped[datetime]


class Setting(Base):
    __table__ = schema.settings

    name: Mapped[str]
    value: Mapped[str]
    updated_at: Mapped[datetime]


class SeparatorEdit(Base):
    __table__ = schema.separator_edits

    id: Mapped[int]
    op: Mapped[str]
    text: Mapped[str]
    created_at: Mapped[datetime]


class WebAccount(Base):
    """An account of the web admin (`email2ticket web-user`); the password only as its Argon2id hash."""

    __table__ = schema.web_accounts

    id: Mapped[int]
    name: Mapped[str]
    password_hash: Mapped[str]
    session_version: Mapped[int]
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]


class WebSecret(Base):
    """A secret the web admin made for itself, such as the key that signs its session cookies."""

    __table__ = schema.web_secrets

    name: Mapped[str]
    value: Mapped[str]
    created_at: Mapped[datetime]
