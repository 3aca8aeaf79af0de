"""The admin's ticket edits that go beyond one field: its Cc participants, and merging two tickets.

Merging exists because mail splits conversations apart: a colleague's reply that sender verification refused,
or a Reply-All from someone not copied on the first mail, opened a second ticket about the same thing.
`ticket merge SOURCE TARGET` puts the conversation back together in one transaction: SOURCE's opening mail
(as a comment), comments, attachments and participants move to TARGET, SOURCE is closed with a note pointing
there, and `merged_into` sends anything that later names SOURCE (a subject number, a thread reference, a
plus-address) on to TARGET (store/facts.py follows it). The audit trail stays as it was: each message still
records what its delivery did, and its Message-ID finds TARGET through SOURCE.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from . import schema as t
from .admin import AdminError
from .models import Comment, Note, Participant, Ticket, User
from .participants import add_participants
from .schema import utcnow


def _ticket(s: Session, ticket_id: int) -> Ticket:
    ticket = s.get(Ticket, ticket_id)
    if ticket is None:
        raise AdminError(f"there is no ticket #{ticket_id}")
    return ticket


def _address(text: str) -> str:
    from ..mail.message import normalise_address

    address = normalise_address(text)
    if address is None:
        raise AdminError(f"{text!r} is not an e-mail address")
    return address


def participants(s: Session, ticket_id: int) -> list[str]:
    """The ticket's participants, sorted."""
    _ticket(s, ticket_id)
    query = select(Participant.address).where(Participant.ticket_id == ticket_id).order_by(Participant.address)
    return list(s.scalars(query))


def add_participant(s: Session, ticket_id: int, email: str) -> str:
    """Make `email` a participant of the ticket (by the admin: no message added it)."""
    ticket, address = _ticket(s, ticket_id), _address(email)
    if address == ticket.requester.email:
        raise AdminError(f"{address} is the requester of ticket #{ticket_id}, not a participant")
    if s.get(Participant, (ticket_id, address)) is not None:
        return f"{address} is already a participant of ticket #{ticket_id}"
    s.add(Participant(ticket_id=ticket_id, address=address, message_row=None, created_at=utcnow()))
    return f"{address} is now a participant of ticket #{ticket_id}"


def remove_participant(s: Session, ticket_id: int, email: str) -> str:
    _ticket(s, ticket_id)
    address = _address(email)
    participant = s.get(Participant, (ticket_id, address))
    if participant is None:
        raise AdminError(f"{address} is not a participant of ticket #{ticket_id}")
    s.delete(participant)
    return f"{address} is no longer a participant of ticket #{ticket_id}"


def merge_tickets(s: Session, source_id: int, target_id: int) -> dict[str, Any]:
    """Merge SOURCE into TARGET in the session's transaction; AdminError (nothing changed) when it may not be:
    into itself, from or into a ticket merged already (which also rules out every cycle)."""
    if source_id == target_id:
        raise AdminError(f"ticket #{source_id} cannot be merged into itself")
    # Both rows locked, in id order, so two admins merging at once wait rather than cross (PostgreSQL).
    locked = {
        ticket.id: ticket
        for ticket in s.scalars(
            select(Ticket).where(Ticket.id.in_((source_id, target_id))).order_by(Ticket.id).with_for_update()
        )
    }
    source, target = locked.get(source_id) or _ticket(s, source_id), locked.get(target_id) or _ticket(s, target_id)
    if source.merged_into is not None:
        raise AdminError(f"ticket #{source_id} is already merged into ticket #{source.merged_into}")
    if target.merged_into is not None:
        raise AdminError(
            f"ticket #{target_id} is merged into ticket #{target.merged_into}: merge into that one instead"
        )
    now = utcnow()
    opening = Comment(
        ticket_id=target_id,
        author_id=source.requester_id,
        body=f"(merged from ticket #{source_id}: {source.subject})\n\n{source.description}",
        message_id=source.message_id,
        created_at=source.created_at,
        author_verified=False,
    )
    s.add(opening)
    s.flush()
    ticket_col, attachments = t.attachments.c, t.attachments
    s.execute(
        update(attachments)
        .where(ticket_col.ticket_id == source_id, ticket_col.comment_id.is_(None))
        .values(comment_id=opening.id)
    )
    s.execute(update(attachments).where(ticket_col.ticket_id == source_id).values(ticket_id=target_id))
    s.execute(update(t.comments).where(t.comments.c.ticket_id == source_id).values(ticket_id=target_id))
    moved = set(participants(s, source_id)) | {source.requester.email}
    requester = s.get(User, target.requester_id)
    moved.discard(requester.email if requester else "")
    add_participants(s.connection(), target_id, moved, None)
    s.execute(delete(t.ticket_participants).where(t.ticket_participants.c.ticket_id == source_id))
    # Anything merged into SOURCE before now goes straight to TARGET: one hop is all a lookup follows.
    s.execute(update(t.tickets).where(t.tickets.c.merged_into == source_id).values(merged_into=target_id))
    source.status, source.merged_into, source.updated_at = "closed", target_id, now
    target.updated_at = now
    s.add(Note(ticket_id=source_id, kind="merged", body=f"Merged into ticket #{target_id}.", created_at=now))
    s.add(
        Note(
            ticket_id=target_id,
            kind="merged",
            body=f"Ticket #{source_id} ({source.subject}) was merged into this ticket.",
            created_at=now,
        )
    )
    return {"source": source_id, "target": target_id, "participants_added": sorted(moved)}
