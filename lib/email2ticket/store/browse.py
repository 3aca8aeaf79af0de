"""The reads the web admin needs beyond the commands': pages of the audit trail and of tickets, the hourly
counts of its chart, the counts an admin watches, and one attachment's bytes.

A terminal prints a whole list; a browser pages through it, newest first, with filters, and must never load
the raw bytes of fifty messages to show their subjects. The shapes are the commands' own (`message_dict`,
`ticket_dict` in store/admin.py), so a page shows exactly what `--json` prints, plus the row ids a link needs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from msgspec import Struct
from sqlalchemy import func, select
from sqlalchemy.orm import defer, selectinload

from . import schema as t
from .admin import AdminError, AdminStore, load_ticket, message_dict, ticket_dict
from .models import Attachment, Message, Ticket, User


class MessageFilter(Struct, frozen=True):
    """What the audit trail's page shows: an action, a time range [since, until) in UTC, a sender substring."""

    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    sender: str | None = None


class Page(Struct, frozen=True):
    """One page of a longer list."""

    items: list[dict[str, Any]]
    total: int
    number: int
    size: int

    @property
    def count(self) -> int:
        """How many pages there are (at least one, even when empty)."""
        return max(1, -(-self.total // self.size))


def _like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with LIKE's own wildcards in it taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def message_page(store: AdminStore, where: MessageFilter, number: int, size: int) -> Page:
    """Audit records newest first, without their raw bytes."""
    conditions = []
    if where.action:
        conditions.append(Message.action == where.action)
    if where.since:
        conditions.append(Message.received_at >= where.since)
    if where.until:
        conditions.append(Message.received_at < where.until)
    if where.sender:
        conditions.append(Message.sender.ilike(_like(where.sender.strip()), escape="\\"))
    number = max(1, number)
    with store.session() as s:
        total = int(s.scalar(select(func.count()).select_from(Message).where(*conditions)) or 0)
        query = (
            select(Message)
            .where(*conditions)
            .options(defer(Message.raw))
            .order_by(Message.id.desc())
            .offset((number - 1) * size)
            .limit(size)
        )
        return Page([message_dict(m) for m in s.scalars(query)], total, number, size)


def message_actions(store: AdminStore) -> list[str]:
    """The actions that occur in the audit trail, for the filter."""
    with store.session() as s:
        return sorted(s.scalars(select(Message.action).distinct()))


def hourly_counts(store: AdminStore, since: datetime) -> list[tuple[str, str, int]]:
    """(hour as "YYYY-MM-DD HH" in UTC, action, messages) for every hour since `since` that had any."""
    column = t.messages.c.received_at
    if store.engine.dialect.name == "sqlite":
        hour = func.substr(column, 1, 13)  # stored as "YYYY-MM-DD HH:MM:SS.ffffff", in UTC
    else:
        hour = func.to_char(func.date_trunc("hour", column), "YYYY-MM-DD HH24")  # the session's zone is UTC
    query = (
        select(hour.label("hour"), t.messages.c.action, func.count())
        .where(column >= since)
        .group_by(hour, t.messages.c.action)
    )
    with store.session() as s:
        return [(str(h), str(action), int(n)) for h, action, n in s.execute(query)]


def watch_counts(store: AdminStore) -> dict[str, int]:
    """What an admin watches: held, ignored and quarantined mail, notifications waiting or failed, blocked addresses."""
    n = t.notifications
    with store.session() as s:
        actions: dict[str, int] = dict(
            s.execute(
                select(Message.action, func.count())
                .where(Message.action.in_(("hold", "ignore", "quarantine")))
                .group_by(Message.action)
            ).all()
        )
        statuses: dict[str, int] = dict(
            s.execute(
                select(n.c.status, func.count()).where(n.c.status.in_(("pending", "failed"))).group_by(n.c.status)
            ).all()
        )
        blocked = s.scalar(select(func.count()).select_from(t.bounced_addresses)) or 0
    return {
        "held": int(actions.get("hold", 0)),
        "ignored": int(actions.get("ignore", 0)),
        "quarantined": int(actions.get("quarantine", 0)),
        "pending": int(statuses.get("pending", 0)),
        "failed": int(statuses.get("failed", 0)),
        "blocked": int(blocked),
    }


def ticket_page(store: AdminStore, status: str | None, number: int, size: int) -> Page:
    """Tickets newest first, in the shape of `tickets list --json`."""
    conditions = [Ticket.status == status] if status else []
    number = max(1, number)
    with store.session() as s:
        total = int(s.scalar(select(func.count()).select_from(Ticket).where(*conditions)) or 0)
        tickets = s.scalars(
            select(Ticket)
            .where(*conditions)
            .order_by(Ticket.id.desc())
            .offset((number - 1) * size)
            .limit(size)
            .options(selectinload(Ticket.requester), selectinload(Ticket.technician))
        )
        items = [
            {
                "id": ticket.id,
                "subject": ticket.subject,
                "status": ticket.status,
                "requester": ticket.requester.email,
                "technician": ticket.technician.email if ticket.technician else None,
            }
            for ticket in tickets
        ]
    return Page(items, total, number, size)


def ticket_detail(store: AdminStore, ticket_id: int) -> dict[str, Any]:
    """`ticket show --json`, with the ids a page links by: each attachment's and comment's, and the ticket's
    audit records."""
    with store.session() as s:
        ticket = load_ticket(s, ticket_id)
        shown = ticket_dict(ticket)
        for item, attachment in zip(shown["attachments"], ticket.attachments, strict=True):
            item["id"] = attachment.id
        for comment_item, comment in zip(shown["comments"], ticket.comments, strict=True):
            comment_item["id"] = comment.id
            for item, attachment in zip(comment_item["attachments"], comment.attachments, strict=True):
                item["id"] = attachment.id
        records = s.execute(
            select(Message.id, Message.action, Message.received_at)
            .where(Message.ticket_id == ticket_id)
            .order_by(Message.id)
        ).all()
        shown["messages"] = [{"id": row, "action": action, "received_at": at} for row, action, at in records]
    return shown


def attachment(store: AdminStore, ticket_id: int, attachment_id: int) -> tuple[str | None, str, bytes]:
    """(file name as sent, content type as sent, bytes) of one of the ticket's attachments."""
    with store.session() as s:
        found = s.get(Attachment, attachment_id)
        if found is None or found.ticket_id != ticket_id:
            raise AdminError(f"ticket #{ticket_id} has no attachment {attachment_id}")
        return found.filename, found.content_type, found.data


def technicians(store: AdminStore) -> list[str]:
    """The enabled technicians' addresses, whom a ticket can be assigned to."""
    with store.session() as s:
        query = select(User.email).where(User.is_technician, ~User.disabled).order_by(User.email)
        return list(s.scalars(query))
