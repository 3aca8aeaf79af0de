"""The store side of a delivery: look up the facts the rules need, then write what they decided.

Both happen in one transaction, so the ticket or comment, its attachments and the audit record with
the message's idempotency key commit together or not at all. Core statements only: this runs in a
fresh process for every mail, where importing and configuring the ORM would be a per-message cost.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, insert, select, update

from ..reply import effective_separators
from ..rules import Context, Decision, EarlierDelivery, Facts, TicketFacts, UserFacts
from ..settings import RuleSettings, settings_from_rows
from . import schema as t
from .engine import ensure_schema, make_engine, normalise_url, redact
from .errors import translate_errors

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, CursorResult


@dataclass(frozen=True)
class MessageKeys:
    """How a message is recognised when it arrives again."""

    idempotency_key: str
    body_digest: str
    raw_sha256: str
    message_id: str | None


@dataclass(frozen=True)
class Written:
    """What a delivery wrote: the ticket (new or updated), the comment, and the audit record."""

    ticket: int | None
    comment: int | None
    message_row: int


class DeliveryStore:
    """One database, as delivery sees it; holds no per-message state, so a resident service can share it."""

    def __init__(self, url: str, *, lock_timeout: float) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, lock_timeout=lock_timeout)
        self._schema_ok = False

    def describe(self) -> str:
        return redact(self.url)

    @contextlib.contextmanager
    def transaction(self, *, commit: bool = True) -> Iterator[DeliveryTransaction]:
        """One delivery's transaction; any database failure leaves as a TemporaryFailure (75).

        With commit=False (--dry-run) everything read or written is rolled back at the end.
        """
        with translate_errors(self.describe()):
            if not self._schema_ok:
                ensure_schema(self.engine, self.url)
                self._schema_ok = True
            with self.engine.connect() as connection, connection.begin() as trans:
                yield DeliveryTransaction(connection)
                if not commit:
                    trans.rollback()

    def dispose(self) -> None:
        self.engine.dispose()


class DeliveryTransaction:
    """The queries and writes of one delivery, on one connection inside one transaction."""

    def __init__(self, connection: Connection) -> None:
        self.conn = connection

    # --- reading the facts ----------------------------------------------------------------------

    def rule_settings(self) -> tuple[RuleSettings, tuple[str, ...]]:
        rows = {name: value for name, value in self.conn.execute(select(t.settings.c.name, t.settings.c.value))}
        edits = self.conn.execute(
            select(t.separator_edits.c.op, t.separator_edits.c.text).order_by(t.separator_edits.c.id)
        ).all()
        added = [text for op, text in edits if op == "add"]
        removed = [text for op, text in edits if op == "remove"]
        return settings_from_rows(rows), effective_separators(added, removed)

    def facts(
        self,
        *,
        sender: str | None,
        reference: int | None,
        keys: MessageKeys,
        settings: RuleSettings,
        separators: tuple[str, ...],
    ) -> Facts:
        return Facts(
            settings=settings,
            separators=separators,
            sender_user=self._user(sender) if sender else None,
            reference=reference,
            ticket=self._ticket(reference) if reference is not None else None,
            earlier=self._earlier(keys.idempotency_key),
            message_id_reused=self._message_id_reused(keys),
        )

    def _user(self, email: str) -> UserFacts | None:
        u = t.users.c
        row = self.conn.execute(select(u.email, u.is_technician, u.access, u.disabled).where(u.email == email)).first()
        return UserFacts(row.email, bool(row.is_technician), row.access, bool(row.disabled)) if row else None

    def _ticket(self, ticket_id: int) -> TicketFacts | None:
        requester, technician = t.users.alias("requester"), t.users.alias("technician")
        tk = t.tickets.c
        row = self.conn.execute(
            select(tk.id, tk.status, requester.c.email, technician.c.email.label("tech"))
            .select_from(
                t.tickets.join(requester, requester.c.id == tk.requester_id).outerjoin(
                    technician, technician.c.id == tk.technician_id
                )
            )
            .where(tk.id == ticket_id)
        ).first()
        return TicketFacts(row.id, row.status, row.email, row.tech) if row else None

    def _earlier(self, key: str) -> EarlierDelivery | None:
        m = t.messages.c
        row = self.conn.execute(select(m.id, m.action, m.ticket_id).where(m.delivered_key == key)).first()
        return EarlierDelivery(row.id, row.action, row.ticket_id) if row else None

    def _message_id_reused(self, keys: MessageKeys) -> bool:
        if not keys.message_id:
            return False
        m = t.messages.c
        other = self.conn.execute(
            select(m.id)
            .where(and_(m.message_id == keys.message_id, m.delivered_key.is_not(None)))
            .where(m.body_digest != keys.body_digest)
            .limit(1)
        ).first()
        return other is not None

    # --- writing the decision -------------------------------------------------------------------

    def apply(self, decision: Decision, ctx: Context, raw: bytes, keys: MessageKeys) -> Written:
        """Write the ticket or comment (with attachments) and the audit record, in this transaction."""
        ticket_id, comment_id = decision.ticket, None
        if decision.action == "create":
            ticket_id = self._create_ticket(decision, ctx)
        elif decision.action == "update" and ticket_id is not None:
            comment_id = self._add_comment(decision, ctx, ticket_id)
        row = self._audit(decision, ctx, raw, keys, ticket_id, comment_id)
        return Written(ticket_id, comment_id, row)

    def _sender_id(self, ctx: Context) -> int:
        """The sender's user row, created as a requester when the rules found none."""
        email = ctx.sender.address
        assert email is not None, "a decision to write always has a sender"
        u = t.users.c
        found = self.conn.execute(select(u.id).where(u.email == email)).scalar()
        if found is not None:
            return int(found)
        result = self.conn.execute(
            insert(t.users).values(email=email, is_technician=False, access="none", disabled=False)
        )
        return _new_id(result)

    def _create_ticket(self, decision: Decision, ctx: Context) -> int:
        requester = self._sender_id(ctx)
        result = self.conn.execute(
            insert(t.tickets).values(
                subject=decision.subject,
                status="open",
                requester_id=requester,
                description=decision.body,
                message_id=ctx.message.message_id,
            )
        )
        ticket_id = _new_id(result)
        self._attachments(ctx, ticket_id, None)
        return ticket_id

    def _add_comment(self, decision: Decision, ctx: Context, ticket_id: int) -> int:
        author = self._sender_id(ctx)
        result = self.conn.execute(
            insert(t.comments).values(
                ticket_id=ticket_id, author_id=author, body=decision.body, message_id=ctx.message.message_id
            )
        )
        comment_id = _new_id(result)
        changes: dict[str, object] = {"updated_at": t.utcnow()}
        if decision.reopen:
            changes["status"] = "open"
        self.conn.execute(update(t.tickets).where(t.tickets.c.id == ticket_id).values(**changes))
        self._attachments(ctx, ticket_id, comment_id)
        return comment_id

    def _attachments(self, ctx: Context, ticket_id: int, comment_id: int | None) -> None:
        rows = [
            {
                "ticket_id": ticket_id,
                "comment_id": comment_id,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "data": a.data,
            }
            for a in ctx.message.attachments
        ]
        if rows:
            self.conn.execute(insert(t.attachments), rows)

    def _audit(
        self,
        decision: Decision,
        ctx: Context,
        raw: bytes,
        keys: MessageKeys,
        ticket_id: int | None,
        comment_id: int | None,
    ) -> int:
        delivered = decision.action in ("create", "update")
        result = self.conn.execute(
            insert(t.messages).values(
                queue_id=ctx.envelope.queue_id,
                envelope_sender=ctx.envelope.sender,
                envelope_recipient=ctx.envelope.recipient,
                sender=ctx.sender.address,
                message_id=keys.message_id,
                subject=ctx.message.subject,
                body_digest=keys.body_digest,
                raw_sha256=keys.raw_sha256,
                idempotency_key=keys.idempotency_key,
                delivered_key=keys.idempotency_key if delivered else None,
                action=decision.action,
                ticket_id=ticket_id,
                comment_id=comment_id,
                exit_code=int(decision.exit_code),
                reasons=json.dumps(decision.reasons, ensure_ascii=False),
                size=len(raw),
                raw=raw,
            )
        )
        return _new_id(result)


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None, "an INSERT into a table with an integer primary key"
    return int(key[0])


def count_rows(connection: Connection, table: str) -> int:
    """Row count of one table (tests and `doctor` use it)."""
    return int(connection.execute(select(func.count()).select_from(t.metadata.tables[table])).scalar_one())
