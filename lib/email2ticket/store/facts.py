"""What a delivery reads before the rules decide: the preamble and the one row of facts.

Round trips are the per-message cost, so the statements are few and built once per process (SQLAlchemy
then finds their compiled SQL in its cache on every message): one query reads the schema revision,
the rule settings and the separator edits together; one query looks up every fact the rules need.
"""

from __future__ import annotations

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
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy import table as lightweight_table

from ..config.rule_settings import RuleSettings, settings_from_rows
from ..reply.extract import separators_from_edits
from ..rules.decision import EarlierDelivery, Facts, ReferenceSource, TicketFacts, UserFacts
from . import schema as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .audit import MessageKeys


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
        _due.c.attempts < t.MAX_SEND_ATTEMPTS,
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




def revision(preamble: list[tuple[Any, ...]]) -> str | None:
    """The schema revision recorded by Alembic (None: the table is empty)."""
    return next((row[2] for row in preamble if row[0] == 0), None)


def rule_settings(preamble: list[tuple[Any, ...]]) -> tuple[RuleSettings, tuple[str, ...]]:
    """The rule settings and the separators in force, from the preamble's rows."""
    rows = {row[2]: row[3] for row in preamble if row[0] == 1}
    edits = [(row[2], row[3]) for row in preamble if row[0] == 2]
    return settings_from_rows(rows), separators_from_edits(edits)


def read_facts(
    conn: Connection,
    user_ids: dict[str, int],
    *,
    sender: str | None,
    reference: int | None,
    keys: MessageKeys,
    settings: RuleSettings,
    separators: tuple[str, ...],
    reference_source: ReferenceSource | None = None,
    notifications: bool = False,
) -> Facts:
    """The facts for the rules, in one query; `notifications`: also what the notification rules need.
    A sender's user row found here is remembered in `user_ids`, so writing needs no second lookup."""
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
    row = conn.execute(FACTS_WITH_NOTIFICATIONS if notifications else FACTS, values).one()
    user = None
    if row.user_id is not None:
        user_ids[row.user_email] = int(row.user_id)
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
