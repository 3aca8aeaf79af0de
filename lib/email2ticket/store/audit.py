"""The audit trail's writes: every message delivered, held, failed or quarantined is one `messages` row.

The raw bytes of every message are kept here before the MTA is told 0, whatever became of it. This
module is the one place that inserts into `messages` (a delivery's record, a failed attempt's record)
and that moves a stored record on when an admin delivers it again (`messages release`, `quarantine
replay`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from msgspec import Struct
from sqlalchemy import Integer, bindparam, func, insert, select, update

from ..exits import ExitCode, TemporaryFailure
from ..mail.envelope import Envelope
from ..mail.mime.digest import body_offset
from . import schema as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from ..rules.decision import AuditAction

INSERT_MESSAGE = insert(t.messages)
_m = t.messages.c
# A held or ignored message, released: its idempotency key is freed so delivering it is no duplicate.
RELEASE = (
    update(t.messages)
    .where(_m.id == bindparam("row", type_=Integer), _m.action.in_(("hold", "ignore")))
    .values(delivered_key=None, action="released")
)
REPLAY = (
    update(t.messages)
    .where(_m.id == bindparam("row", type_=Integer), _m.action == "quarantine")
    .values(action="replayed")
)


class MessageKeys(Struct, frozen=True):
    """How a message is recognised when it arrives again."""

    idempotency_key: str
    body_digest: str
    raw_sha256: str
    message_id: str | None


FAILED: AuditAction = "defer"
QUARANTINED: AuditAction = "quarantine"


def insert_message(
    conn: Connection,
    *,
    envelope: Envelope,
    keys: MessageKeys,
    sender: str | None,
    subject: str | None,
    action: AuditAction,
    exit_code: int,
    reasons: list[str],
    raw: bytes,
    delivered: bool,
    keep_raw: bool = True,
    **extra: Any,
) -> int:
    """Write one audit record; `delivered`: its idempotency key makes a later copy a duplicate.

    Without `keep_raw` (a duplicate: the first copy is stored already) the record keeps its own header block,
    where copies of one mail differ (Return-Path, Received), with the size and digest of all its bytes, but
    not the body again: an MTA redelivering a 40 MB mail must not add another 40 MB each time.
    `duplicate_raw` puts the bytes back together from the first copy's body.
    """
    result = conn.execute(
        INSERT_MESSAGE,
        dict(
            queue_id=envelope.queue_id,
            envelope_sender=envelope.sender,
            envelope_recipient=envelope.recipient,
            loopback_tcp=envelope.loopback_tcp,
            sender=sender,
            message_id=keys.message_id,
            subject=subject,
            body_digest=keys.body_digest,
            raw_sha256=keys.raw_sha256,
            idempotency_key=keys.idempotency_key,
            delivered_key=keys.idempotency_key if delivered else None,
            action=action,
            exit_code=exit_code,
            reasons=json.dumps(reasons, ensure_ascii=False),
            size=len(raw),
            raw=raw if keep_raw else raw[: body_offset(raw)],
            **extra,
        ),
    )
    key = result.inserted_primary_key
    assert key is not None, "an INSERT into a table with an integer primary key"
    return int(key[0])


class Attempt(Struct, frozen=True):
    """A recorded failed attempt: its number, whether it quarantined the message, and the audit row."""

    number: int
    max_attempts: int
    quarantined: bool
    message_row: int
    quarantine_size: int  # messages in quarantine now (only counted when this attempt quarantined)


def record_failed_attempt(
    conn: Connection,
    raw: bytes,
    envelope: Envelope,
    keys: MessageKeys,
    *,
    sender: str | None,
    subject: str | None,
    error: str,
    max_attempts: int,
) -> Attempt:
    """Write one failed attempt (or, at max_attempts, the quarantine record); count the earlier ones."""
    earlier = conn.execute(
        select(func.count()).where(_m.idempotency_key == keys.idempotency_key).where(_m.action == FAILED)
    ).scalar_one()
    number = int(earlier) + 1
    quarantined = number >= max_attempts
    reasons = [
        f"internal-error: {error}",
        f"attempt: {number} of {max_attempts}"
        + ("; quarantined, the MTA was told 0" if quarantined else "; the MTA will retry (75)"),
    ]
    row = insert_message(
        conn,
        envelope=envelope,
        keys=keys,
        sender=sender,
        subject=subject,
        action=QUARANTINED if quarantined else FAILED,
        exit_code=int(ExitCode.OK if quarantined else ExitCode.TEMPFAIL),
        reasons=reasons,
        raw=raw,
        delivered=False,
    )
    size = 0
    if quarantined:
        size = int(conn.execute(select(func.count()).where(_m.action == QUARANTINED)).scalar_one())
    return Attempt(number, max_attempts, quarantined, row, size)


def mark_redelivering(conn: Connection, row: int, state: AuditAction) -> None:
    """The stored record being delivered again becomes `released` or `replayed`, in the same transaction."""
    if state == "released":
        if conn.execute(RELEASE, {"row": row}).rowcount != 1:
            raise TemporaryFailure(f"message {row} is no longer held or ignored (released meanwhile?)")
    elif conn.execute(REPLAY, {"row": row}).rowcount != 1:
        raise TemporaryFailure(f"message {row} is no longer in the quarantine (replayed meanwhile?)")


def note_redelivery(conn: Connection, row: int, state: AuditAction, new_row: int, action: str) -> None:
    """A replayed record says what became of it (a released one is told by its own new record)."""
    if state != "replayed":
        return
    reasons = json.loads(conn.execute(select(_m.reasons).where(_m.id == row)).scalar_one())
    reasons.append(f"quarantine-replay: replayed as message {new_row} ({action})")
    conn.execute(update(t.messages).where(_m.id == row).values(reasons=json.dumps(reasons, ensure_ascii=False)))


class StoredMessage(Struct, frozen=True):
    """A message as the audit trail kept it: enough to deliver it again exactly as it arrived."""

    row: int
    action: str
    held_by: str | None
    envelope: Envelope
    raw: bytes


def duplicate_raw(head: bytes, size: int, raw_sha256: str, first_copy: bytes) -> tuple[bytes, bool]:
    """A duplicate's bytes: its own header block, then the first copy's body; and whether that is exactly what
    arrived (the digest says so; copies whose line endings differ share a body digest but not their bytes)."""
    import hashlib

    raw = head + first_copy[body_offset(first_copy) :]
    return raw, len(raw) == size and hashlib.sha256(raw).hexdigest() == raw_sha256


def stored_message(conn: Connection, row: int) -> StoredMessage | None:
    """The audit record `row`, or None when there is none."""
    columns = (_m.id, _m.action, _m.held_by, _m.envelope_sender, _m.envelope_recipient, _m.queue_id, _m.loopback_tcp)
    found = conn.execute(select(*columns, _m.raw).where(_m.id == row)).first()
    if found is None:
        return None
    envelope = Envelope(
        found.envelope_sender, found.envelope_recipient, found.queue_id, loopback_tcp=bool(found.loopback_tcp)
    )
    return StoredMessage(found.id, found.action, found.held_by, envelope, bytes(found.raw))
