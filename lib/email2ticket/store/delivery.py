"""The store side of a delivery: look up the facts the rules need, then write what they decided.

Both happen in one transaction, so the ticket or comment, its attachments and the audit record with
the message's idempotency key commit together or not at all. Core statements only: this runs in a
fresh process for every mail, where importing and configuring the ORM would be a per-message cost.

Round trips are the other per-message cost, so the statements are few and built once: one query reads
the schema revision, the rule settings and the separator edits together; one query looks up every fact
the rules need; a new sender is written with INSERT ... ON CONFLICT, which also settles the race of two
first mails from the same sender without a retry. A new ticket then costs five statements and COMMIT.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    Text,
    bindparam,
    cast,
    column,
    func,
    insert,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy import table as lightweight_table
from sqlalchemy.exc import DBAPIError, ProgrammingError

from ..config.rule_settings import RuleSettings, settings_from_rows
from ..reply.extract import separators_from_edits
from ..rules.decision import Context, Decision, EarlierDelivery, Facts, Notice, ReferenceSource, TicketFacts, UserFacts
from . import schema as t
from .engine import check_revision, ensure_schema, make_engine, normalise_url, redact
from .errors import translate_errors

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, CursorResult, RootTransaction

    from ..outbound.render import NotificationFields
    from ..signals.bounce import BounceReport

# Built once per process: SQLAlchemy then finds their compiled SQL in its cache on every message.


def _kind(number: int) -> Any:
    return literal_column(str(number), Integer)


_alembic_version = lightweight_table("alembic_version", column("version_num", String))
_settings, _edits = t.settings.c, t.separator_edits.c
# Rows of (kind, seq, a, b): 0 = the schema revision, 1 = a setting (name, value), 2 = a separator
# edit (op, text) in the order the admin made them.
PREAMBLE = union_all(
    select(_kind(0), _kind(0), _alembic_version.c.version_num, cast(null(), Text)),
    select(_kind(1), _kind(0), _settings.name, _settings.value),
    select(_kind(2), _edits.id, _edits.op, _edits.text),
).order_by(literal_column("1"), literal_column("2"))

# Writes without bound values: the values come with each execution, so building and caching a
# statement costs nothing per message (it was a sixth of a delivery's CPU in the resident service).
INSERT_TICKET = insert(t.tickets)
INSERT_COMMENT = insert(t.comments)
INSERT_ATTACHMENTS = insert(t.attachments)
INSERT_MESSAGE = insert(t.messages)
INSERT_NOTE = insert(t.notes)
INSERT_NOTIFICATION = insert(t.notifications)
INSERT_BOUNCED = insert(t.bounced_addresses)
RELEASE = (
    update(t.messages)
    .where(t.messages.c.id == bindparam("row", type_=Integer), t.messages.c.action.in_(("hold", "ignore")))
    .values(delivered_key=None, action="released")
)
TOUCH_TICKET = update(t.tickets).where(t.tickets.c.id == bindparam("ticket_key", type_=Integer))
_UPSERT_USER: dict[str, Any] = {}  # per dialect, built on first use

# Notifications waiting for a retry are sent after a delivery; past this many attempts only an admin's
# `notifications retry` sends them again.
MAX_SEND_ATTEMPTS = 8
_sender_param = bindparam("sender", type_=String)
_hour_ago = bindparam("hour_ago", type_=DateTime(timezone=True))
_now = bindparam("now", type_=DateTime(timezone=True))
_mine, _acks, _due = t.messages.alias("mine"), t.notifications.alias("acks"), t.notifications.alias("due")
_bounced_sender, _bounced_requester, _bounced_technician = (
    t.bounced_addresses.alias("bounced_sender"),
    t.bounced_addresses.alias("bounced_requester"),
    t.bounced_addresses.alias("bounced_technician"),
)
# The counts the loop protections limit; each uses an index (messages: sender, received_at;
# notifications: recipient, created_at / created_at / status, next_attempt_at).
_SENDER_NEW_TICKETS = (
    select(func.count())
    .select_from(_mine)
    .where(_mine.c.sender == _sender_param, _mine.c.received_at >= _hour_ago, _mine.c.action == "create")
    .scalar_subquery()
)
_ACKS_TO_SENDER = (
    select(func.count())
    .select_from(_acks)
    .where(
        _acks.c.recipient == _sender_param,
        _acks.c.created_at >= bindparam("day_ago", type_=DateTime(timezone=True)),
        _acks.c.kind == "acknowledgement",
    )
    .scalar_subquery()
)
_ACKS_LAST_HOUR = (
    select(func.count())
    .select_from(_acks)
    .where(_acks.c.created_at >= _hour_ago, _acks.c.kind == "acknowledgement")
    .scalar_subquery()
)
_NOTIFICATIONS_DUE = (
    select(func.count())
    .select_from(_due)
    .where(
        _due.c.status.in_(("pending", "failed")),
        _due.c.next_attempt_at <= _now,
        _due.c.attempts < MAX_SEND_ATTEMPTS,
    )
    .scalar_subquery()
)

_sender = t.users.alias("sender")
_earlier = t.messages.alias("earlier")
_other = t.messages.alias("other")
_requester, _technician = t.users.alias("requester"), t.users.alias("technician")
_anchor = select(literal_column("1", Integer).label("one")).subquery("anchor")
# Every fact in one row: each join matches at most one row (unique email, unique delivered_key,
# primary key), and a NULL parameter (no sender, no reference) matches none.
_FACTS_COLUMNS = (
    _sender.c.id.label("user_id"),
    _sender.c.email.label("user_email"),
    _sender.c.is_technician,
    _sender.c.access,
    _sender.c.disabled,
    _earlier.c.id.label("earlier_id"),
    _earlier.c.action.label("earlier_action"),
    _earlier.c.ticket_id.label("earlier_ticket"),
    t.tickets.c.id.label("ticket_id"),
    t.tickets.c.status.label("ticket_status"),
    _requester.c.email.label("requester"),
    _technician.c.email.label("technician"),
    t.tickets.c.subject.label("ticket_subject"),
    _SENDER_NEW_TICKETS.label("sender_new_tickets"),
    select(_other.c.id)
    .where(_other.c.message_id == bindparam("message_id", type_=Text))
    .where(_other.c.delivered_key.is_not(None))
    .where(_other.c.body_digest != bindparam("body_digest", type_=String))
    .exists()
    .label("message_id_reused"),
)
_FACTS_FROM = (
    _anchor.outerjoin(_sender, _sender.c.email == _sender_param)
    .outerjoin(_earlier, _earlier.c.delivered_key == bindparam("key", type_=String))
    .outerjoin(t.tickets, t.tickets.c.id == bindparam("reference", type_=Integer))
    .outerjoin(_requester, _requester.c.id == t.tickets.c.requester_id)
    .outerjoin(_technician, _technician.c.id == t.tickets.c.technician_id)
)
FACTS = select(*_FACTS_COLUMNS).select_from(_FACTS_FROM)
# With [notifications] on, the same row also holds what the notification rules limit. Without, these
# joins and counts would only cost every delivery their compilation (about 1 ms per process).
FACTS_WITH_NOTIFICATIONS = select(
    *_FACTS_COLUMNS,
    _bounced_sender.c.address.label("sender_bounced"),
    _bounced_requester.c.address.label("requester_bounced"),
    _bounced_technician.c.address.label("technician_bounced"),
    _ACKS_TO_SENDER.label("acks_to_sender"),
    _ACKS_LAST_HOUR.label("acks_last_hour"),
    _NOTIFICATIONS_DUE.label("notifications_due"),
).select_from(
    _FACTS_FROM.outerjoin(_bounced_sender, _bounced_sender.c.address == _sender_param)
    .outerjoin(_bounced_requester, _bounced_requester.c.address == _requester.c.email)
    .outerjoin(_bounced_technician, _bounced_technician.c.address == _technician.c.email)
)


@dataclass(frozen=True)
class MessageKeys:
    """How a message is recognised when it arrives again."""

    idempotency_key: str
    body_digest: str
    raw_sha256: str
    message_id: str | None


@dataclass(frozen=True)
class OutboxItem:
    """One notification to send: its row, and what its template says (store/outbox.py, outbound/send.py)."""

    id: int
    attempts: int
    fields: NotificationFields


@dataclass(frozen=True)
class Written:
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
    def transaction(self, *, commit: bool = True) -> Iterator[DeliveryTransaction]:
        """One delivery's transaction; any database failure leaves as a TemporaryFailure (75).

        Its first statement checks the schema revision (with the settings, in one round trip), so a
        resident service notices an upgraded database at once. With commit=False (--dry-run)
        everything read or written is rolled back at the end.
        """
        with translate_errors(self.describe()):
            connection, trans, preamble = self._begin()
            with connection, trans:
                tx = DeliveryTransaction(connection, preamble)
                check_revision(tx.revision)
                yield tx
                if not commit:
                    trans.rollback()

    def _begin(self) -> tuple[Connection, RootTransaction, list[tuple[Any, ...]]]:
        """Open the transaction and read its preamble; on a missing schema, run the full check once.

        Only when the preamble fails (no tables yet, or not ours) does the slower check run: it
        creates a brand-new SQLite database, or raises SchemaError naming `email2ticket init`.
        """
        for attempt in range(2):
            connection = self.engine.connect()
            try:
                trans = connection.begin()  # on SQLite: BEGIN IMMEDIATE, which may wait for the lock
            except BaseException:
                connection.close()
                raise
            try:
                return connection, trans, [tuple(row) for row in connection.execute(PREAMBLE)]
            except DBAPIError as exc:
                connection.close()  # rolls back, and returns the connection for the check to use
                if attempt or not _tables_missing(exc):  # a lock or statement timeout is no schema problem
                    raise
                ensure_schema(self.engine, self.url)
            except BaseException:
                connection.close()
                raise
        raise AssertionError("unreachable")

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
        return next((row[2] for row in self._preamble if row[0] == 0), None)

    def rule_settings(self) -> tuple[RuleSettings, tuple[str, ...]]:
        rows = {row[2]: row[3] for row in self._preamble if row[0] == 1}
        edits = [(row[2], row[3]) for row in self._preamble if row[0] == 2]
        return settings_from_rows(rows), separators_from_edits(edits)

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
    ) -> Facts:
        """The facts for the rules; `notifications`: also what the notification rules need."""
        now = t.utcnow()
        values: dict[str, Any] = {
            "sender": sender or None,
            "key": keys.idempotency_key,
            "reference": reference,
            "message_id": keys.message_id or None,
            "body_digest": keys.body_digest,
            "hour_ago": now - timedelta(hours=1),
        }
        if notifications:
            values.update(now=now, day_ago=now - timedelta(days=1))
        row = self.conn.execute(FACTS_WITH_NOTIFICATIONS if notifications else FACTS, values).one()
        user = None
        if row.user_id is not None:
            self._user_ids[row.user_email] = int(row.user_id)
            user = UserFacts(row.user_email, bool(row.is_technician), row.access, bool(row.disabled))
        extra = row._mapping
        bounced = (extra.get("sender_bounced"), extra.get("requester_bounced"), extra.get("technician_bounced"))
        return Facts(
            settings=settings,
            separators=separators,
            sender_user=user,
            reference=reference,
            reference_source=reference_source if reference is not None else None,
            ticket=(
                TicketFacts(row.ticket_id, row.ticket_status, row.requester, row.technician, row.ticket_subject)
                if row.ticket_id is not None
                else None
            ),
            sender_new_tickets_last_hour=int(row.sender_new_tickets or 0),
            acknowledgements_to_sender_last_day=int(extra.get("acks_to_sender") or 0),
            acknowledgements_last_hour=int(extra.get("acks_last_hour") or 0),
            bounced=frozenset(address for address in bounced if address),
            notifications_due=int(extra.get("notifications_due") or 0),
            earlier=(
                EarlierDelivery(row.earlier_id, row.earlier_action, row.earlier_ticket)
                if row.earlier_id is not None
                else None
            ),
            message_id_reused=bool(row.message_id_reused),
        )

    # --- writing the decision -------------------------------------------------------------------

    def release(self, message_row: int) -> None:
        """Free a held or ignored message's idempotency key, so delivering it again is not a duplicate."""
        from ..exits import TemporaryFailure

        if self.conn.execute(RELEASE, {"row": message_row}).rowcount != 1:
            raise TemporaryFailure(f"message {message_row} is no longer held or ignored (released meanwhile?)")

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
        notifications = tuple(
            self._queue(notice, decision, ctx, ticket, ticket_id, comment_id, row) for notice in decision.notices
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

    def _queue(
        self,
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
        from ..outbound.render import NotificationFields
        from ..outbound.send import LEASE

        assert ticket_id is not None, "a notification is always about a ticket"
        result = self.conn.execute(
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
        )
        return OutboxItem(_new_id(result), 0, fields)

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
        user_id = int(self.conn.execute(_upsert_user(self.conn.dialect.name), values).scalar_one())
        self._user_ids[email] = user_id
        return user_id

    def _create_ticket(self, decision: Decision, ctx: Context) -> int:
        requester = self._sender_id(ctx)
        result = self.conn.execute(
            INSERT_TICKET,
            dict(
                subject=decision.subject,
                status="open",
                requester_id=requester,
                description=decision.body,
                message_id=ctx.message.message_id,
                unverified_sender=decision.unverified_sender,
                refers_to=decision.refers_to,
            ),
        )
        ticket_id = _new_id(result)
        self._attachments(ctx, ticket_id, None)
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
        delivered = decision.action in ("create", "update", "note", "hold", "ignore")
        result = self.conn.execute(
            INSERT_MESSAGE,
            dict(
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
                auth_verdict=_auth_record(decision, ctx),
                held_by=decision.held_by,
                size=len(raw),
                raw=raw,
            ),
        )
        return _new_id(result)


def _auth_record(decision: Decision, ctx: Context) -> dict[str, Any]:
    """The sender verification verdict where the decision depended on it, "not evaluated: not needed" elsewhere."""
    from ..auth.verdict import NOT_NEEDED

    return ctx.auth.as_dict() if decision.auth_needed and ctx.auth is not None else NOT_NEEDED


def _upsert_user(dialect: str) -> Any:
    """INSERT INTO users ... ON CONFLICT (email) DO UPDATE ... RETURNING id, in the dialect's syntax."""
    if dialect not in _UPSERT_USER:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
        statement = dialect_insert(t.users)
        _UPSERT_USER[dialect] = statement.on_conflict_do_update(
            index_elements=[t.users.c.email], set_={"email": statement.excluded.email}
        ).returning(t.users.c.id)
    return _UPSERT_USER[dialect]


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None, "an INSERT into a table with an integer primary key"
    return int(key[0])


def count_rows(connection: Connection, table: str) -> int:
    """Row count of one table (tests and `doctor` use it)."""
    return int(connection.execute(select(func.count()).select_from(t.metadata.tables[table])).scalar_one())
