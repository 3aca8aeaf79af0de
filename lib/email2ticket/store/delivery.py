"""The store side of a delivery: look up the facts the rules need, then write what they decided.

Both happen in one transaction, so the ticket or comment, its attachments and the audit record with
the message's idempotency key commit together or not at all. Core statements only: this runs in a
fresh process for every mail, where importing and configuring the ORM would be a per-message cost.

Round trips are the other per-message cost, so the statements are few and built once: one query reads
the schema revision, the rule settings and the separator edits together; one query looks up every fact
the rules need; a new sender is written with INSERT ... ON CONFLICT, which also settles the race of two
first mails from the same sender without a retry. A new ticket then costs five statements and COMMIT (one more
with Cc participants).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from msgspec import Struct
from sqlalchemy import (
    Integer,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, ProgrammingError

from ..config.rule_settings import RuleSettings
from ..rules.decision import Context, Decision, Facts, ReferenceSource, TicketFacts
from . import schema as t
from .audit import (
    Attempt,
    MessageKeys,
    StoredMessage,
    insert_message,
    mark_redelivering,
    note_redelivery,
    record_failed_attempt,
    stored_message,
)
from .bounces import notified_recipients
from .dialect import upsert_user
from .engine import check_revision, ensure_schema, make_engine, normalise_url, redact
from .errors import translate_errors
from .facts import read_facts, read_preamble, revision, routing, rule_settings
from .participants import add_participants
from .placement import add_tags, ticket_insert, ticket_values

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, CursorResult, RootTransaction

    from ..mail.envelope import Envelope
    from ..rules.decision import AuditAction
    from ..rules.routing_facts import Routing
    from ..signals.bounce import BounceReport
    from .notices import OutboxItem

# Built once per process: SQLAlchemy then finds their compiled SQL in its cache on every message.


INSERT_COMMENT = insert(t.comments)
INSERT_ATTACHMENTS = insert(t.attachments)
INSERT_NOTE = insert(t.notes)
INSERT_BOUNCED = insert(t.bounced_addresses)
TOUCH_TICKET = update(t.tickets).where(t.tickets.c.id == bindparam("ticket_key", type_=Integer))


class Written(Struct, frozen=True):
    """What a delivery wrote: the ticket (new or updated), the comment, and the audit record."""

    ticket: int | None
    comment: int | None
    message_row: int
    notifications: tuple[OutboxItem, ...] = ()  # written as pending, leased to this delivery


class DeliveryStore:
    """One database, as delivery sees it; holds no per-message state, so a resident service can share it."""

    def __init__(self, url: str, *, lock_timeout: float, pool_size: int | None = None) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, lock_timeout=lock_timeout, pool_size=pool_size)

    def describe(self) -> str:
        return redact(self.url)

    @contextlib.contextmanager
    def transaction(self, *, commit: bool = True, sender: str | None = None) -> Iterator[DeliveryTransaction]:
        """One delivery's transaction; any database failure leaves as a TemporaryFailure (75).

        Its first statement checks the schema revision (with the settings, in one round trip), so a
        resident service notices an upgraded database at once; on PostgreSQL it also takes the `sender`'s
        lock, under which the per-sender limits are counted (store/facts.py PREAMBLE_LOCKED). With
        commit=False (--dry-run) everything read or written is rolled back at the end.
        """
        with translate_errors(self.describe()):
            connection, trans, preamble = self._begin(sender)
            with connection, trans:
                tx = DeliveryTransaction(connection, preamble)
                check_revision(tx.revision)
                yield tx
                if not commit:
                    trans.rollback()

    def _begin(self, sender: str | None = None) -> tuple[Connection, RootTransaction, list[tuple[Any, ...]]]:
        """Open the transaction and read its preamble; on a missing schema, run the full check once.

        Only when the preamble fails (no tables yet, or not ours) does the slower check run: it
        creates a brand-new SQLite database, or raises SchemaError naming `email2ticket init`.
        """
        for attempt in range(2):
            connection = self.connect()
            try:
                trans = connection.begin()  # on SQLite: BEGIN IMMEDIATE, which may wait for the lock
            except BaseException:
                connection.close()
                raise
            try:
                return connection, trans, read_preamble(connection, sender)
            except DBAPIError as exc:
                connection.close()  # rolls back, and returns the connection for the check to use
                if attempt or not _tables_missing(exc):  # a lock or statement timeout is no schema problem
                    raise
                ensure_schema(self.engine, self.url)
            except BaseException:
                connection.close()
                raise
        raise AssertionError("unreachable")

    def connect(self) -> Connection:
        """A connection for one transaction (the resident service's store watches it: service/worker.py)."""
        return self.engine.connect()

    def record_failed_attempt(
        self,
        raw: bytes,
        envelope: Envelope,
        keys: MessageKeys,
        *,
        sender: str | None,
        subject: str | None,
        error: str,
        max_attempts: int,
    ) -> Attempt:
        """Write one failed attempt (or, at max_attempts, the quarantine record) in its own transaction."""
        with self.transaction() as tx:
            return record_failed_attempt(
                tx.conn, raw, envelope, keys, sender=sender, subject=subject, error=error, max_attempts=max_attempts
            )

    def stored_message(self, row: int) -> StoredMessage | None:
        """The audit record `row` with its raw bytes, or None when there is none."""
        with self.transaction(commit=False) as tx:
            return stored_message(tx.conn, row)

    def dispose(self) -> None:
        self.engine.dispose()


def _tables_missing(exc: DBAPIError) -> bool:
    """Did the preamble fail for want of our tables (PostgreSQL: undefined table or column)?"""
    return isinstance(exc, ProgrammingError) or "no such table" in str(exc.orig)


class DeliveryTransaction:
    """The queries and writes of one delivery, on one connection inside one transaction."""

    def __init__(self, connection: Connection, preamble: list[tuple[Any, ...]]) -> None:
        self.conn = connection
        self._preamble = preamble
        self._user_ids: dict[str, int] = {}  # user rows this transaction already found

    # --- reading the facts ----------------------------------------------------------------------

    @property
    def revision(self) -> str | None:
        """The schema revision recorded by Alembic (None: the table is empty)."""
        return revision(self._preamble)

    def rule_settings(self) -> tuple[RuleSettings, tuple[str, ...]]:
        return rule_settings(self._preamble)

    def routing(self) -> Routing:
        return routing(self._preamble)  # read with the settings (store/facts.py)

    def notified(self, message_ids: tuple[str, ...]) -> frozenset[str]:
        """Whom the notifications sent with these Message-IDs went to (a bounce's, store/bounces.py)."""
        return notified_recipients(self.conn, message_ids)

    def facts(
        self,
        *,
        sender: str | None,
        reference: int | None,
        keys: MessageKeys,
        settings: RuleSettings,
        separators: tuple[str, ...],
        reference_source: ReferenceSource | None = None,
        notifications: bool = False,
        thread_ids: tuple[str, ...] = (),
    ) -> Facts:
        """The facts for the rules (store/facts.py); `notifications`: also what the notification rules need;
        `thread_ids`: the Message-IDs a reply names, looked up when there is no `reference`."""
        return read_facts(
            self.conn, self._user_ids, sender=sender, reference=reference, keys=keys, settings=settings,
            separators=separators, reference_source=reference_source, notifications=notifications,
            thread_ids=thread_ids, routing=self.routing(),
        )  # fmt: skip

    def redelivering(self, message_row: int, state: AuditAction) -> None:
        """An admin delivers this stored record again: it becomes `state` with this delivery."""
        mark_redelivering(self.conn, message_row, state)

    def note_redelivery(self, message_row: int, state: AuditAction, new_row: int, action: str) -> None:
        note_redelivery(self.conn, message_row, state, new_row, action)

    def apply(
        self, decision: Decision, ctx: Context, raw: bytes, keys: MessageKeys, ticket: TicketFacts | None = None
    ) -> Written:
        """Write the ticket, comment or note (with attachments), the audit record and the notifications
        to send, in this transaction. `ticket` is the updated ticket as the rules saw it."""
        ticket_id, comment_id = decision.ticket, None
        if decision.action == "create":
            ticket_id = self._create_ticket(decision, ctx)
        elif decision.action == "update" and ticket_id is not None:
            comment_id = self._add_comment(decision, ctx, ticket_id)
        row = self._audit(decision, ctx, raw, keys, ticket_id, comment_id)
        if decision.action == "note" and ticket_id is not None:
            self._add_note(decision, ctx, ticket_id, row)
        if decision.participants and ticket_id is not None:  # after the ticket's row: see store/participants.py
            add_participants(self.conn, ticket_id, decision.participants, row)
        if decision.limit_note and ticket_id is not None:
            note = dict(ticket_id=ticket_id, message_row=row, kind="limits", author=None, body=decision.limit_note)
            self.conn.execute(INSERT_NOTE, note)
        notifications: tuple[OutboxItem, ...] = ()
        if decision.notices:
            from .notices import queue_notification  # only where [notifications] is on

            notifications = tuple(
                queue_notification(self.conn, notice, decision, ctx, ticket, ticket_id, comment_id, row)
                for notice in decision.notices
            )
        return Written(ticket_id, comment_id, row, notifications)

    def _add_note(self, decision: Decision, ctx: Context, ticket_id: int, message_row: int) -> None:
        self.conn.execute(
            INSERT_NOTE,
            dict(
                ticket_id=ticket_id,
                message_row=message_row,
                kind=decision.note_kind,
                author=ctx.sender.address,
                body=decision.body,
            ),
        )
        report = ctx.classification.bounce if ctx.classification else None
        for address in decision.suppress:
            self._block(address, report, ticket_id, message_row)
        if report is not None and report.original_message_ids:
            self.conn.execute(
                update(t.notifications)
                .where(t.notifications.c.outgoing_message_id.in_(report.original_message_ids))
                .values(status="bounced", last_error=report.describe())
            )

    def _block(self, address: str, report: BounceReport | None, ticket_id: int, message_row: int) -> None:
        """A hard bounce: the address is not notified again (a concurrent block of it is fine)."""
        known = self.conn.execute(
            select(t.bounced_addresses.c.address).where(t.bounced_addresses.c.address == address)
        ).first()
        if known is not None:
            return
        self.conn.execute(
            INSERT_BOUNCED,
            dict(
                address=address,
                status=report.status if report else None,
                reason=report.describe() if report else "hard bounce",
                ticket_id=ticket_id,
                message_row=message_row,
            ),
        )

    def _sender_id(self, ctx: Context) -> int:
        """The sender's user row, created as a requester when the rules found none.

        INSERT ... ON CONFLICT DO UPDATE returns the id whether this delivery or a concurrent one
        created the row (the update changes nothing), in one statement and without a retry.
        """
        email = ctx.sender.address
        assert email is not None, "a decision to write always has a sender"
        if email in self._user_ids:
            return self._user_ids[email]
        values = {"email": email, "is_technician": False, "access": "none", "disabled": False}
        user_id = int(self.conn.execute(upsert_user(self.conn.dialect.name), values).scalar_one())
        self._user_ids[email] = user_id
        return user_id

    def _create_ticket(self, decision: Decision, ctx: Context) -> int:
        requester = self._sender_id(ctx)
        result = self.conn.execute(
            ticket_insert(decision.placement),  # queue, priority, status, technician: store/placement.py
            dict(
                subject=decision.subject,
                **ticket_values(decision.placement),
                requester_id=requester,
                description=decision.body,
                message_id=ctx.message.message_id,
                unverified_sender=decision.unverified_sender,
                refers_to=decision.refers_to,
            ),
        )
        ticket_id = _new_id(result)
        self._attachments(ctx, ticket_id, None)
        add_tags(self.conn, ticket_id, decision.placement)
        return ticket_id

    def _add_comment(self, decision: Decision, ctx: Context, ticket_id: int) -> int:
        author = self._sender_id(ctx)
        result = self.conn.execute(
            INSERT_COMMENT,
            dict(
                ticket_id=ticket_id,
                author_id=author,
                body=decision.body,
                message_id=ctx.message.message_id,
                author_verified=decision.author_verified,
            ),
        )
        comment_id = _new_id(result)
        changes: dict[str, object] = {"ticket_key": ticket_id, "updated_at": t.utcnow()}
        if decision.reopen:
            changes["status"] = "open"
        self.conn.execute(TOUCH_TICKET, changes)
        self._attachments(ctx, ticket_id, comment_id)
        add_tags(self.conn, ticket_id, decision.placement)
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
            self.conn.execute(INSERT_ATTACHMENTS, rows)

    def _audit(
        self,
        decision: Decision,
        ctx: Context,
        raw: bytes,
        keys: MessageKeys,
        ticket_id: int | None,
        comment_id: int | None,
    ) -> int:
        # Held and ignored mail is recognised on redelivery too: the MTA retrying it must not hold it twice.
        return insert_message(
            self.conn,
            envelope=ctx.envelope,
            keys=keys,
            sender=ctx.sender.address,
            subject=ctx.message.subject,
            action=decision.action,
            exit_code=int(decision.exit_code),
            reasons=decision.reasons,
            raw=raw,
            delivered=decision.action in ("create", "update", "note", "hold", "ignore"),
            keep_raw=decision.action != "duplicate",  # its body is the first copy's, stored already
            ticket_id=ticket_id,
            comment_id=comment_id,
            auth_verdict=_auth_record(decision, ctx),
            held_by=decision.held_by,
        )


def _auth_record(decision: Decision, ctx: Context) -> dict[str, Any]:
    """The sender verification verdict where the decision depended on it, "not evaluated: not needed" elsewhere."""
    from ..auth.verdict import NOT_NEEDED

    return ctx.auth.as_dict() if decision.auth_needed and ctx.auth is not None else NOT_NEEDED


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None, "an INSERT into a table with an integer primary key"
    return int(key[0])
