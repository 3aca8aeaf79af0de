"""A notification as the queue holds it: what its template says, its row, and the queue's timing rules.

The store writes notifications in the delivery's own transaction (`queue_notification`) and hands them
out again for sending (store/outbox.py); outbound/ renders and sends them. These types and limits are
the queue's, so they live here, below the code that sends.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from msgspec import Struct
from sqlalchemy import insert

from ..rules.decision import NoticeKind
from . import schema as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, CursorResult

    from ..rules.decision import Context, Decision, Notice, TicketFacts

INSERT_NOTIFICATION = insert(t.notifications)

# How long the process that claimed a notification owns it before another may retry it.
LEASE = timedelta(minutes=5)
MAX_SEND_ATTEMPTS = t.MAX_SEND_ATTEMPTS  # the table's (store/schema.py), named here with the queue's rules
# Back-off after the n-th failed attempt (the last value repeats).
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4))


# What an acknowledgement to an unauthenticated sender calls the ticket: From: may be forged, so the mail
# must not carry the sender's words back to whoever the address belongs to (spam reflected by auto-reply).
NEUTRAL_SUBJECT = "Your request"


def acknowledged_subject(kind: str, subject: str, auth_verdict: object) -> str:
    """The subject an acknowledgement may quote: the ticket's for an authenticated sender (the audit record's
    verdict is pass), else NEUTRAL_SUBJECT. Other kinds quote the ticket's subject."""
    if kind != "acknowledgement":
        return subject
    verdict = auth_verdict if isinstance(auth_verdict, dict) else {}
    return subject if verdict.get("result") == "pass" else NEUTRAL_SUBJECT


class NotificationFields(Struct, frozen=True):
    """What one notification says; every text here reaches the mail only through a template placeholder."""

    kind: NoticeKind
    ticket: int
    recipient: str  # addr-spec
    subject: str  # the ticket's subject
    requester: str
    technician: str | None = None
    status: str = "open"
    comment: str = ""  # comment kinds only
    author: str = ""
    in_reply_to: str | None = None  # the Message-ID of the mail that triggered it (threading)
    # reply_to_ticket_address: Reply-To: the From: address with this delimiter and the ticket ("": no Reply-To).
    reply_delimiter: str = ""


class OutboxItem(Struct, frozen=True):
    """One notification to send: its row, and what its template says (store/outbox.py, outbound/send.py)."""

    id: int
    attempts: int
    fields: NotificationFields


def queue_notification(
    conn: Connection,
    notice: Notice,
    decision: Decision,
    ctx: Context,
    ticket: TicketFacts | None,
    ticket_id: int | None,
    comment_id: int | None,
    message_row: int,
) -> OutboxItem:
    """A pending notification, leased to this delivery: it sends it right after the commit, and
    nobody retries it before the lease runs out (outbound/send.py). Returned with what its template
    needs, so sending it reads nothing back."""
    assert ticket_id is not None, "a notification is always about a ticket"
    result = conn.execute(
        INSERT_NOTIFICATION,
        dict(
            ticket_id=ticket_id,
            kind=notice.kind,
            recipient=notice.recipient,
            source_message_row=message_row,
            comment_id=comment_id if notice.kind != "acknowledgement" else None,
            status="pending",
            attempts=0,
            next_attempt_at=t.utcnow() + LEASE,
        ),
    )
    sender = ctx.sender.address or ""
    if ticket is None:  # a new ticket: the sender is its requester
        subject, status, requester, technician = decision.subject, "open", sender, None
    else:
        subject, requester, technician = ticket.subject, ticket.requester, ticket.technician
        status = "open" if decision.reopen else ticket.status
    comment = decision.body if notice.kind != "acknowledgement" else ""
    if notice.kind == "acknowledgement" and not (ctx.auth is not None and ctx.auth.authenticated):
        subject = NEUTRAL_SUBJECT
    fields = NotificationFields(
        kind=notice.kind,
        ticket=ticket_id,
        recipient=notice.recipient,
        subject=subject,
        requester=requester,
        technician=technician,
        status=status,
        comment=comment,
        author=sender if comment else "",
        in_reply_to=ctx.message.message_id,
        reply_delimiter=decision.placement.reply_delimiter if decision.placement else "",
    )
    return OutboxItem(_new_id(result), 0, fields)


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None, "an INSERT into a table with an integer primary key"
    return int(key[0])
