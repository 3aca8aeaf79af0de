"""Poison messages: a message that keeps failing with an unexpected error is counted, then quarantined.

An unreachable or locked database, a timeout, a missing schema or a DNS temperror says nothing about
the message: the MTA retries it (75) for as long as it takes. But a message that trips a bug (a parser
crash, a value the database refuses) fails the same way on every retry, for days, until the MTA bounces
it. So after such an error the failed attempt is recorded in the audit trail (action `defer`, raw bytes
kept) in a fresh transaction; once `max_attempts` attempts of the same message (same idempotency key)
have failed, it is stored with action `quarantine` and the delivery exits 0: the MTA forgets it, the
admin sees it (`email2ticket quarantine list`, an error in the log, `doctor` failing) and replays it
through the then-current code and rules with `quarantine replay`, or deletes it.

Like Mailman's shunt queue, nothing is lost: the raw bytes are in the database before the MTA is told 0.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..exits import DeliveryError, ExitCode, TemporaryFailure
from ..mail.envelope import Envelope

if TYPE_CHECKING:
    from ..config.model import Config, LoggingConfig
    from ..store.delivery import DeliveryStore, MessageKeys
    from .core import Outcome

DEFER = "defer"
QUARANTINE = "quarantine"
REPLAYED = "replayed"


class SuspectedPoison(TemporaryFailure):
    """An unexpected error, counted against the message: 75 until max_attempts, then quarantine."""

    status = "4.3.0"


def is_poison_suspect(exc: BaseException) -> bool:
    """Does this failure say something about the message (count it) or about the system (just retry)?

    Counted: any unexpected Python error, and database errors the message itself provokes (a value the
    database refuses: SQLSTATE classes 22 data, 42 syntax, XX internal; integrity conflicts that did not
    go away on retry). Not counted: our own classified failures (configuration, schema, timeout, DNS,
    bad data) and operational database errors (unreachable, locked, disk full, timeouts).
    """
    from sqlalchemy import exc as sa

    if isinstance(exc, DeliveryError):
        if type(exc) is not TemporaryFailure:  # ConfigurationError, SchemaError, timeouts, DataError ...
            return False
        cause = exc.__cause__
        return isinstance(cause, sa.IntegrityError | sa.DataError | sa.ProgrammingError | sa.InternalError)
    return isinstance(exc, Exception)


def describe(exc: BaseException) -> str:
    """One line naming the error: the database's own words when it came from there."""
    if isinstance(exc, DeliveryError):
        cause = getattr(exc.__cause__, "orig", None) or exc.__cause__
        detail = (str(cause).strip().splitlines() or [""])[0] if cause is not None else ""
        return f"{exc.reason} ({detail})" if detail and detail not in exc.reason else exc.reason
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def fallback_keys(raw: bytes) -> MessageKeys:
    """Keys for a message that could not even be parsed: the raw digest (an MTA retry is byte-identical)."""
    from ..store.delivery import MessageKeys

    digest = hashlib.sha256(raw).hexdigest()
    return MessageKeys(idempotency_key=digest, body_digest=digest, raw_sha256=digest, message_id=None)


@dataclass(frozen=True)
class Attempt:
    """A recorded failed attempt: its number, whether it quarantined the message, and the audit row."""

    number: int
    max_attempts: int
    quarantined: bool
    message_row: int
    quarantine_size: int  # messages in quarantine now (only counted when this attempt quarantined)


def record_failure(
    store: DeliveryStore,
    raw: bytes,
    envelope: Envelope,
    keys: MessageKeys,
    *,
    sender: str | None,
    subject: str | None,
    error: BaseException,
    max_attempts: int,
) -> Attempt:
    """Write one failed attempt (or the quarantine record) in its own transaction; count earlier ones."""
    from sqlalchemy import func, insert, select

    from ..store import schema as t

    m = t.messages.c
    with store.transaction() as tx:
        earlier = tx.conn.execute(
            select(func.count()).where(m.idempotency_key == keys.idempotency_key).where(m.action == DEFER)
        ).scalar_one()
        number = int(earlier) + 1
        quarantined = number >= max_attempts
        reasons = [
            f"internal-error: {describe(error)}",
            f"attempt: {number} of {max_attempts}"
            + ("; quarantined, the MTA was told 0" if quarantined else "; the MTA will retry (75)"),
        ]
        result = tx.conn.execute(
            insert(t.messages).values(
                queue_id=envelope.queue_id,
                envelope_sender=envelope.sender,
                envelope_recipient=envelope.recipient,
                sender=sender,
                message_id=keys.message_id,
                subject=subject,
                body_digest=keys.body_digest,
                raw_sha256=keys.raw_sha256,
                idempotency_key=keys.idempotency_key,
                delivered_key=None,
                action=QUARANTINE if quarantined else DEFER,
                exit_code=int(ExitCode.OK if quarantined else ExitCode.TEMPFAIL),
                reasons=json.dumps(reasons, ensure_ascii=False),
                size=len(raw),
                raw=raw,
            )
        )
        key = result.inserted_primary_key
        row = int(key[0]) if key is not None else 0
        size = 0
        if quarantined:
            size = int(tx.conn.execute(select(func.count()).where(m.action == QUARANTINE)).scalar_one())
    return Attempt(number, max_attempts, quarantined, row, size)


def quarantine_outcome(attempt: Attempt, error: BaseException, message: Any) -> Outcome:
    """The delivery's result once a message is quarantined: exit 0, action `quarantine`."""
    from ..rules.decision import Decision, RuleResult
    from .core import Outcome

    why = (
        f"failed {attempt.number} times with an unexpected error ({describe(error)}); stored as message "
        f"{attempt.message_row} for `email2ticket quarantine replay`; the quarantine holds "
        f"{attempt.quarantine_size} message(s)"
    )
    decision = Decision(
        action="quarantine",
        exit_code=ExitCode.OK,
        results=(RuleResult("quarantine", True, why),),
        status_reason=why,
    )
    return Outcome(decision, message, message_row=attempt.message_row)


def suspect_failure(attempt: Attempt, error: BaseException) -> SuspectedPoison:
    """The 75 for a counted attempt below max_attempts; the first stderr line says how many are left."""
    return SuspectedPoison(
        f"internal error, attempt {attempt.number} of {attempt.max_attempts} before quarantine: {describe(error)}"
    )


# --- the error-level log line ----------------------------------------------------------------------


def log_error(line: str, config: LoggingConfig) -> None:
    """Like delivery_log.write_line, at error priority: a quarantined message needs a human."""
    target = config.target
    try:
        if target == "auto":
            target = "syslog" if os.path.exists("/dev/log") else ("file" if config.file else "none")
        if target == "syslog":
            import syslog

            facility = getattr(syslog, f"LOG_{config.facility.upper()}", syslog.LOG_MAIL)
            syslog.openlog("email2ticket", syslog.LOG_PID, facility)
            syslog.syslog(syslog.LOG_ERR, line)
            syslog.closelog()
        elif target == "file" and config.file:
            with open(config.file, "a", encoding="utf-8") as handle:
                stamp = datetime.now(UTC).isoformat(timespec="seconds")
                handle.write(f"{stamp} email2ticket[{os.getpid()}] error: {line}\n")
    except Exception as exc:  # logging never changes the delivery's outcome
        print(f"email2ticket: could not write the error log ({target}): {exc}", file=sys.stderr)


def quarantine_log_line(outcome: Outcome, queue_id: str | None) -> str:
    return (
        f"quarantine queue_id={queue_id or '-'} message_id={outcome.message.message_id or '-'} "
        f"row={outcome.message_row}: {outcome.decision.status_reason}; see `email2ticket quarantine list`"
    )


# --- the admin side: list, show, replay, delete -------------------------------------------------------


@dataclass(frozen=True)
class Quarantined:
    """One quarantined message as `quarantine list` shows it."""

    id: int
    received_at: str
    attempts: int
    envelope_sender: str | None
    envelope_recipient: str | None
    sender: str | None
    message_id: str | None
    subject: str | None
    error: str
    size: int

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class QuarantineStore:
    """Quarantine queries over the audit table; replay goes through deliver(), like any delivery."""

    def __init__(self, url: str, *, lock_timeout: float) -> None:
        from ..store.admin import AdminStore

        self.url = url
        self.lock_timeout = lock_timeout
        self.admin = AdminStore(url, lock_timeout=lock_timeout)

    def entries(self) -> list[Quarantined]:
        from sqlalchemy import func, select

        from ..store.models import Message

        with self.admin.session() as s:
            rows = s.scalars(select(Message).where(Message.action == QUARANTINE).order_by(Message.id)).all()
            counts = dict(
                s.execute(
                    select(Message.idempotency_key, func.count())
                    .where(Message.idempotency_key.in_({r.idempotency_key for r in rows}))
                    .where(Message.action.in_((DEFER, QUARANTINE)))
                    .group_by(Message.idempotency_key)
                ).all()
            )
            return [_quarantined(r, int(counts.get(r.idempotency_key, 1))) for r in rows]

    def count(self) -> int:
        from sqlalchemy import func, select

        from ..store.models import Message

        with self.admin.session() as s:
            return int(s.scalar(select(func.count()).where(Message.action == QUARANTINE)) or 0)

    def show(self, row: int) -> tuple[Quarantined, list[str], bytes]:
        with self.admin.session() as s:
            message = self._get(s, row)
            return _quarantined(message, 0), json.loads(message.reasons), message.raw

    def replay(self, row: int, config: Config) -> Outcome:
        """Deliver the stored raw bytes again with today's code and rules; on success the record
        becomes `replayed` (kept in the audit trail). A failure leaves it quarantined and is raised."""
        from sqlalchemy import update

        from ..cli.deliver import deliver_message
        from ..outbound.send import after_delivery
        from ..store import schema as t
        from ..store.delivery import DeliveryStore

        with self.admin.session() as s:
            message = self._get(s, row)
            raw = message.raw
            envelope = Envelope(message.envelope_sender, message.envelope_recipient, message.queue_id)
            reasons = json.loads(message.reasons)
        store = DeliveryStore(self.url, lock_timeout=self.lock_timeout)
        try:
            outcome = deliver_message(raw, envelope, store, config, dry_run=False, max_attempts=None)
            note = f"quarantine-replay: replayed as message {outcome.message_row} ({outcome.decision.action})"
            with store.transaction() as tx:
                tx.conn.execute(
                    update(t.messages)
                    .where(t.messages.c.id == row)
                    .values(action=REPLAYED, reasons=json.dumps([*reasons, note], ensure_ascii=False))
                )
            after_delivery(store, config, outcome)
            return outcome
        finally:
            store.dispose()

    def delete(self, row: int) -> int:
        """Drop the quarantined message and its failed attempts; returns how many records went."""
        from sqlalchemy import delete

        from ..store.models import Message

        with self.admin.session() as s:
            message = self._get(s, row)
            result = s.execute(
                delete(Message)
                .where(Message.idempotency_key == message.idempotency_key)
                .where(Message.action.in_((DEFER, QUARANTINE)))
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def ids(self) -> list[int]:
        return [q.id for q in self.entries()]

    def _get(self, s: Any, row: int) -> Any:
        from ..store.admin import AdminError
        from ..store.models import Message

        message = s.get(Message, row)
        if message is None or message.action != QUARANTINE:
            raise AdminError(f"message {row} is not in the quarantine (see `email2ticket quarantine list`)")
        return message


def _quarantined(m: Any, attempts: int) -> Quarantined:
    from ..store.admin import iso

    reasons = json.loads(m.reasons)
    error = next((r.split(": ", 1)[1] for r in reasons if r.startswith("internal-error: ")), "")
    return Quarantined(
        id=m.id,
        received_at=iso(m.received_at),
        attempts=attempts,
        envelope_sender=m.envelope_sender,
        envelope_recipient=m.envelope_recipient,
        sender=m.sender,
        message_id=m.message_id,
        subject=m.subject,
        error=error,
        size=m.size,
    )
