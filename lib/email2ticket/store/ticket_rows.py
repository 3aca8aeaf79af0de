"""How the admin commands list tickets, and what routing adds to a ticket's shape: its queue, priority and tags.

Kept beside store/admin.py (which shows one ticket) so that `tickets list` and `ticket show` print the same
routing fields from one function.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from .models import Queue, Ticket

# What `tickets list` prints of each ticket, loaded in one query per relationship.
LISTING = (
    selectinload(Ticket.requester),
    selectinload(Ticket.technician),
    selectinload(Ticket.queue),
    selectinload(Ticket.tags),
)


def routing_dict(ticket: Ticket) -> dict[str, Any]:
    """A ticket's queue (its name), priority and tags, as `ticket show --json` and `tickets list --json` print them."""
    return {
        "queue": ticket.queue.name if ticket.queue else None,
        "priority": ticket.priority,
        "tags": [tag.tag for tag in ticket.tags],
    }


def ticket_head(ticket: Ticket) -> dict[str, Any]:
    """What every shape of a ticket starts with: `tickets list --json`, and `ticket show --json` before its detail."""
    return {
        "id": ticket.id,
        "subject": ticket.subject,
        "status": ticket.status,
        "requester": ticket.requester.email,
        "technician": ticket.technician.email if ticket.technician else None,
    }


def ticket_row(ticket: Ticket) -> dict[str, Any]:
    """One ticket as `tickets list --json` prints it."""
    return {**ticket_head(ticket), **routing_dict(ticket)}


def queue_id_of(s: Session, name: str) -> int | None:
    found = s.scalars(select(Queue.id).where(Queue.name == name)).first()
    return None if found is None else int(found)
