"""What a delivery reads before the rules decide: the preamble and the one row of facts.

Round trips are the per-message cost, so the statements are few and built once per process (SQLAlchemy
then finds their compiled SQL in its cache on every message): one query reads the schema revision,
the rule settings and the separator edits together; one query looks up every fact the rules need.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    String,
    Text,
    bindparam,
    case,
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
from ..rules.routing_facts import Queue, Routing
from . import schema as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .audit import MessageKeys


def _kind(number: int) -> Any:
    return literal_column(str(number), Integer)


_alembic_version = lightweight_table("alembic_version", column("version_num", String))
_settings, _edits = t.settings.c, t.separator_edits.c
_queues, _queue_addresses, _filters = t.queues.c, t.queue_addresses.c, t.filters.c
# Routing (rules/routing.py, rules/filters.py), read with the settings so that it costs no round trip of its own:
# 4 = a queue (id, name, "default" or NULL), 5 = a queue address (queue id, address), 6 and 7 = a filter's
# conditions and actions as JSON text (position, name, JSON).
_ROUTING_ROWS = (
    select(_kind(4), _queues.id, _queues.name, cast(case((_queues.is_default, "default"), else_=null()), Text)),
    select(_kind(5), _queue_addresses.queue_id, _queue_addresses.address, cast(null(), Text)),
    select(_kind(6), _filters.position, _filters.name, cast(_filters.conditions, Text)),
    select(_kind(7), _filters.position, _filters.name, cast(_filters.actions, Text)),
)
# Rows of (kind, seq, a, b): 0 = the schema revision, 1 = a setting (name, value), 2 = a separator
# edit (op, text) in the order the admin made them; 4 to 7 routing.
PREAMBLE = union_all(
    select(_kind(0), _kind(0), _alembic_version.c.version_num, cast(null(), Text)),
    select(_kind(1), _kind(0), _settings.name, _settings.value),
    select(_kind(2), _edits.id, _edits.op, _edits.text),
    *_ROUTING_ROWS,
).order_by(literal_column("1"), literal_column("2"))

# The limits count rows that concurrent deliveries write (new tickets and acknowledgements per sender): on
# PostgreSQL two deliveries from one sender could both count 4 against a limit of 5 and both go on. So the
# preamble of a delivery with a sender also takes a transaction-scoped advisory lock on that address (kind 3,
# a row nobody reads): the deliveries of one sender queue behind each other until commit, and the facts query,
# a later statement with a later snapshot, counts what the one before committed. No extra round trip, nothing
# session-scoped (PgBouncer's transaction mode keeps working), released by COMMIT or ROLLBACK. SQLite needs
# none of it: BEGIN IMMEDIATE already serialises every delivery.
_lock_key = bindparam("lock_key", type_=BigInteger)
PREAMBLE_LOCKED = union_all(
    select(_kind(0), _kind(0), _alembic_version.c.version_num, cast(null(), Text)),
    select(_kind(1), _kind(0), _settings.name, _settings.value),
    select(_kind(2), _edits.id, _edits.op, _edits.text),
    select(_kind(3), _kind(0), cast(null(), String), cast(func.pg_advisory_xact_lock(_lock_key), Text)),
    *_ROUTING_ROWS,
).order_by(literal_column("1"), literal_column("2"))
# The overall acknowledgements per hour are one count for every sender: its lock is taken only by a delivery
# about to acknowledge while max_autoreplies_per_hour is set, just before it writes, and the count is read again
# under it (a statement of its own, for the same snapshot reason).
TAKE_LOCK = select(func.pg_advisory_xact_lock(_lock_key))


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for `name` (an address, or a limit shared by all), stable across hosts
    and releases: a prefix keeps email2ticket's keys apart from other users of advisory locks on the database."""
    digest = hashlib.blake2b(f"email2ticket limits: {name}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


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

# Threading (rules/ticket.py thread-reference): the ticket of the newest message stored on a ticket (the mail that
# opened it or a comment's) or notification we sent whose Message-ID the reply names; both columns are indexed.
# The caller passes the ids only when the subject named no ticket (COALESCE evaluates this only then), at most
# MAX_THREAD_IDS of them; otherwise an empty list, which the databases fold to false.
_thread_ids = bindparam("thread_ids", type_=Text, expanding=True)
_stored, _sent = t.messages.alias("stored"), t.notifications.alias("sent")
_THREAD_CANDIDATES = union_all(
    select(_stored.c.ticket_id.label("ticket_id"), _stored.c.received_at.label("at")).where(
        _stored.c.message_id.in_(_thread_ids),
        _stored.c.ticket_id.is_not(None),
        _stored.c.action.in_(("create", "update")),
    ),
    select(_sent.c.ticket_id, _sent.c.created_at).where(_sent.c.outgoing_message_id.in_(_thread_ids)),
).subquery("thread")
_THREAD_TICKET = (
    select(_THREAD_CANDIDATES.c.ticket_id).order_by(_THREAD_CANDIDATES.c.at.desc()).limit(1).scalar_subquery()
)
# The ticket the message names (subject, token, bounce, else the thread), and the one it lands on: a ticket merged
# into another (`ticket merge`) sends everything on to it. Merging flattens chains, so one hop is all there is.
_named = t.tickets.alias("named")
_NAMED_TICKET = func.coalesce(bindparam("reference", type_=Integer), _THREAD_TICKET)
# The ticket's Cc participants, one string (the databases' string aggregate; an address holds no line break).
_participant, _participant_bounced = t.ticket_participants.alias("participant"), t.bounced_addresses.alias("pb")
_PARTICIPANTS = (
    select(func.aggregate_strings(_participant.c.address, "\n"))
    .where(_participant.c.ticket_id == t.tickets.c.id)
    .scalar_subquery()
)
_BOUNCED_PARTICIPANTS = (
    select(func.aggregate_strings(_participant_bounced.c.address, "\n"))
    .select_from(_participant.join(_participant_bounced, _participant_bounced.c.address == _participant.c.address))
    .where(_participant.c.ticket_id == t.tickets.c.id)
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
    _named.c.id.label("named_id"),
    _named.c.merged_into.label("named_merged_into"),
    _PARTICIPANTS.label("participants"),
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
    .outerjoin(_named, _named.c.id == _NAMED_TICKET)
    .outerjoin(t.tickets, t.tickets.c.id == func.coalesce(_named.c.merged_into, _named.c.id))
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
    _BOUNCED_PARTICIPANTS.label("participants_bounced"),
).select_from(
    _FACTS_FROM.outerjoin(_bounced_sender, _bounced_sender.c.address == _sender_param)
    .outerjoin(_bounced_requester, _bounced_requester.c.address == _requester.c.email)
    .outerjoin(_bounced_technician, _bounced_technician.c.address == _technician.c.email)
)


def read_preamble(conn: Connection, sender: str | None) -> list[tuple[Any, ...]]:
    """A delivery's first statement: the preamble, with the lock of the sender's limits on PostgreSQL."""
    if sender and conn.dialect.name == "postgresql":
        rows = conn.execute(PREAMBLE_LOCKED, {"lock_key": lock_key(f"sender {sender}")})
    else:
        rows = conn.execute(PREAMBLE)
    return [tuple(row) for row in rows]


def acknowledgements_last_hour_locked(conn: Connection) -> int | None:
    """The acknowledgements of the last hour, counted again under the lock of max_autoreplies_per_hour: deliveries
    about to acknowledge queue there until the one before commits, so none overshoots the limit. None on SQLite,
    where BEGIN IMMEDIATE already serialises deliveries and the facts' count stands."""
    if conn.dialect.name != "postgresql":
        return None
    conn.execute(TAKE_LOCK, {"lock_key": lock_key("acknowledgements per hour")})
    return int(conn.execute(select(_ACKS_LAST_HOUR), {"hour_ago": t.utcnow() - timedelta(hours=1)}).scalar_one())


def revision(preamble: list[tuple[Any, ...]]) -> str | None:
    """The schema revision recorded by Alembic (None: the table is empty)."""
    return next((row[2] for row in preamble if row[0] == 0), None)


def rule_settings(preamble: list[tuple[Any, ...]]) -> tuple[RuleSettings, tuple[str, ...]]:
    """The rule settings and the separators in force, from the preamble's rows."""
    rows = {row[2]: row[3] for row in preamble if row[0] == 1}
    edits = [(row[2], row[3]) for row in preamble if row[0] == 2]
    return settings_from_rows(rows), separators_from_edits(edits)


def routing(preamble: list[tuple[Any, ...]]) -> Routing:
    """The queues, their addresses and the filters in position order, from the preamble's rows."""
    from ..rules.filters import stored_filter

    queues = tuple(Queue(int(row[1]), row[2], row[3] == "default") for row in preamble if row[0] == 4)
    addresses = tuple((row[2], int(row[1])) for row in preamble if row[0] == 5)
    conditions = {row[2]: (int(row[1]), row[3]) for row in preamble if row[0] == 6}
    actions = {row[2]: row[3] for row in preamble if row[0] == 7}
    filters = tuple(
        stored_filter(name, position, text, actions.get(name, "[]"))
        for name, (position, text) in sorted(conditions.items(), key=lambda item: item[1][0])
    )
    return Routing(queues, addresses, filters)


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
    thread_ids: tuple[str, ...] = (),
    routing: Routing | None = None,
) -> Facts:
    """The facts for the rules, in one query; `notifications`: also what the notification rules need.
    A sender's user row found here is remembered in `user_ids`, so writing needs no second lookup.
    `thread_ids`: the Message-IDs a reply names (rules/ticket.py thread_message_ids), looked up only
    without a `reference`."""
    now = t.utcnow()
    values: dict[str, Any] = {
        "sender": sender or None,
        "key": keys.idempotency_key,
        "reference": reference,
        "thread_ids": list(thread_ids) if reference is None else [],
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
    bounced = [extra.get("sender_bounced"), extra.get("requester_bounced"), extra.get("technician_bounced")]
    bounced += (extra.get("participants_bounced") or "").split("\n")
    if reference is None and row.named_id is not None:  # the thread lookup found it
        reference, reference_source = int(row.named_id), "thread"
    return Facts(
        settings=settings,
        separators=separators,
        routing=routing or Routing(),
        sender_user=user,
        reference=reference,
        reference_source=reference_source if reference is not None else None,
        participants=frozenset(filter(None, (row.participants or "").split("\n"))),
        merged_from=int(row.named_id) if row.named_merged_into is not None and row.ticket_id is not None else None,
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
