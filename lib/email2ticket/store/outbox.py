"""The notifications table as the sender sees it: claim what to send, then record how it went.

Delivery writes notifications as `pending` inside its own transaction (store/delivery.py), leased to
itself for a few minutes. Sending happens after the commit and outside any transaction (a SQLite
write lock must never wait on an MTA): `claim` takes rows and pushes their next attempt out by the
lease so a concurrent process does not send them too, `finish` records the result. A row whose send
failed waits with a growing back-off; `MAX_SEND_ATTEMPTS` failures leave it for the admin.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, or_, select, true, update

from . import schema as t
from .delivery import DeliveryStore
from .notices import BACKOFF, MAX_SEND_ATTEMPTS, NotificationFields, OutboxItem, acknowledged_subject

_requester, _technician, _author = t.users.alias("requester"), t.users.alias("technician"), t.users.alias("author")
_n = t.notifications
_ITEMS = select(
    _n.c.id,
    _n.c.kind,
    _n.c.recipient,
    _n.c.attempts,
    t.tickets.c.id.label("ticket"),
    t.tickets.c.subject,
    t.tickets.c.status,
    _requester.c.email.label("requester"),
    _technician.c.email.label("technician"),
    t.comments.c.body.label("comment"),
    _author.c.email.label("author"),
    t.messages.c.message_id.label("in_reply_to"),
    t.messages.c.auth_verdict,
).select_from(
    _n.join(t.tickets, t.tickets.c.id == _n.c.ticket_id)
    .join(_requester, _requester.c.id == t.tickets.c.requester_id)
    .outerjoin(_technician, _technician.c.id == t.tickets.c.technician_id)
    .outerjoin(t.comments, t.comments.c.id == _n.c.comment_id)
    .outerjoin(_author, _author.c.id == t.comments.c.author_id)
    .outerjoin(t.messages, t.messages.c.id == _n.c.source_message_row)
)


def claim(
    store: DeliveryStore, *, ids: Sequence[int] = (), due: int = 0, lease: timedelta, force: bool = False
) -> list[OutboxItem]:
    """Take the rows `ids` (this delivery's own) and up to `due` rows waiting for a retry.

    `force` (an admin's `notifications retry ID`) takes the given rows whatever their state.

    Each row is claimed once: on PostgreSQL the rows are locked as they are read (FOR UPDATE SKIP LOCKED: a
    concurrent claim passes over them instead of reading them too), and their lease is pushed out before the
    lock is released, so a claim that reads them afterwards finds them not due. SQLite has no row locks and
    needs none: the transaction began with BEGIN IMMEDIATE (store/engine.py), so claims take turns.
    """
    now = t.utcnow()
    conditions = []
    if ids:
        conditions.append(_n.c.id.in_(list(ids)) if force else _n.c.id.in_(list(ids)) & (_n.c.status == "pending"))
    with store.transaction() as tx:
        rows: list[Any] = list(tx.conn.execute(_locked(_ITEMS.where(or_(*conditions))))) if conditions else []
        if due:
            waiting = _ITEMS.where(
                _n.c.status.in_(("pending", "failed")),
                _n.c.next_attempt_at <= now,
                _n.c.attempts < MAX_SEND_ATTEMPTS,
                _n.c.id.not_in([row.id for row in rows]) if rows else true(),
            )
            rows += list(tx.conn.execute(_locked(waiting.order_by(_n.c.id).limit(due))))
        for row in rows:
            tx.conn.execute(update(_n).where(_n.c.id == row.id).values(next_attempt_at=now + lease))
        settings = tx.rule_settings()[0]
    delimiter = settings.recipient_delimiter[:1] if settings.reply_to_ticket_address else ""
    return [_item(row, delimiter) for row in rows]


def _locked(query: Select[Any]) -> Select[Any]:
    """Lock the notification rows read (not the tickets, users and comments joined for their text); a row
    another claim holds is skipped. SQLAlchemy leaves this out on SQLite, which locks the whole database."""
    return query.with_for_update(of=_n, skip_locked=True)


def finish(store: DeliveryStore, results: list[tuple[OutboxItem, str | None, str | None]]) -> None:
    """Record sends in one transaction: (item, Message-ID used, None) is `sent`; (item, _, reason) is
    `failed`, with the next attempt after a growing back-off."""
    now = t.utcnow()
    with store.transaction() as tx:
        for item, message_id, error in results:
            attempts = item.attempts + 1
            if error is None:
                values: dict[str, Any] = dict(
                    status="sent", sent_at=now, attempts=attempts, outgoing_message_id=message_id
                )
            else:
                wait = BACKOFF[min(attempts, len(BACKOFF)) - 1]
                values = dict(status="failed", attempts=attempts, last_error=error[:2000], next_attempt_at=now + wait)
            tx.conn.execute(update(_n).where(_n.c.id == item.id).values(**values))


def note_unsent(store: DeliveryStore, ids: Sequence[int], reason: str) -> None:
    """Record why pending rows could not even be tried (no key file, a broken template): the admin's to fix,
    so no attempt is counted and the rows stay `pending`, due again when their lease ends."""
    if ids:
        with store.transaction() as tx:
            pending = update(_n).where(_n.c.id.in_(list(ids)), _n.c.status == "pending")
            tx.conn.execute(pending.values(last_error=reason[:2000]))


def list_notifications(store: DeliveryStore, *, status: str | None, limit: int) -> list[dict[str, Any]]:
    query = select(_n).order_by(_n.c.id.desc()).limit(limit)
    if status:
        query = query.where(_n.c.status == status)
    with store.transaction() as tx:
        return [_row_dict(row._mapping) for row in tx.conn.execute(query)]


def blocked_addresses(store: DeliveryStore) -> list[dict[str, Any]]:
    with store.transaction() as tx:
        rows = tx.conn.execute(select(t.bounced_addresses).order_by(t.bounced_addresses.c.created_at))
        return [_row_dict(row._mapping) for row in rows]


def unblock(store: DeliveryStore, address: str) -> bool:
    with store.transaction() as tx:
        result = tx.conn.execute(delete(t.bounced_addresses).where(t.bounced_addresses.c.address == address))
        return bool(result.rowcount)


def _item(row: Any, reply_delimiter: str = "") -> OutboxItem:
    fields = NotificationFields(
        kind=row.kind,
        ticket=row.ticket,
        recipient=row.recipient,
        subject=acknowledged_subject(row.kind, row.subject, row.auth_verdict),
        requester=row.requester,
        technician=row.technician,
        status=row.status,
        comment=row.comment or "",
        author=row.author or "",
        in_reply_to=row.in_reply_to,
        reply_delimiter=reply_delimiter,
    )
    return OutboxItem(row.id, row.attempts, fields)


def _row_dict(mapping: Any) -> dict[str, Any]:
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in mapping.items()}
