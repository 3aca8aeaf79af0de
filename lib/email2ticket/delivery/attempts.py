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
from typing import TYPE_CHECKING

from ..errors import describe_error
from ..exits import DeliveryError, ExitCode, TemporaryFailure
from ..mail.envelope import Envelope
from ..mail.message import ParsedMessage, parse_message
from ..rules.chain import identify_sender
from ..rules.decision import Decision, RuleResult
from .core import message_keys
from .outcome import Outcome

if TYPE_CHECKING:
    from ..store.audit import Attempt, MessageKeys
    from ..store.delivery import DeliveryStore


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


def count_failure(
    raw: bytes, envelope: Envelope, store: DeliveryStore, error: Exception, max_attempts: int, *, parse: bool = True
) -> Outcome:
    """Record a failed attempt in a fresh transaction and raise the 75; at max_attempts, return the
    quarantine outcome (exit 0) instead. A failure to record is a plain retry (the error, 75).

    Without `parse` (the message already ran out of time once) it is recognised by its bytes alone."""
    try:
        if not parse:
            raise ValueError("not parsed again")
        message = parse_message(raw)
        keys, sender = message_keys(message, raw), identify_sender(message, envelope).address
    except Exception:  # the error came from parsing itself: recognise the message by its bytes
        message, keys, sender = ParsedMessage(), fallback_keys(raw), None
    try:
        attempt = store.record_failed_attempt(
            raw,
            envelope,
            keys,
            sender=sender,
            subject=message.subject or None,
            error=describe_error(error),
            max_attempts=max_attempts,
        )
    except Exception as exc:  # the database cannot even take the record: a plain retry (75)
        error.add_note(f"email2ticket: this failed attempt could not be recorded: {describe_error(exc)}")
        attempt = None
    if attempt is None:
        raise error
    if attempt.quarantined:
        return quarantine_outcome(attempt, error, message)
    raise SuspectedPoison(
        f"internal error, attempt {attempt.number} of {attempt.max_attempts} before quarantine: {describe_error(error)}"
    ) from error


def fallback_keys(raw: bytes) -> MessageKeys:
    """Keys for a message that could not even be parsed: the raw digest (an MTA retry is byte-identical)."""
    from ..store.audit import MessageKeys

    digest = hashlib.sha256(raw).hexdigest()
    return MessageKeys(idempotency_key=digest, body_digest=digest, raw_sha256=digest, message_id=None)


def quarantine_outcome(attempt: Attempt, error: BaseException, message: ParsedMessage) -> Outcome:
    """The delivery's result once a message is quarantined: kept for the admin, exit 0, action `quarantine`."""
    why = (
        f"failed {attempt.number} times with an unexpected error ({describe_error(error)}); stored as message "
        f"{attempt.message_row} for `email2ticket quarantine replay`; the quarantine holds "
        f"{attempt.quarantine_size} message(s)"
    )
    decision = Decision(
        action="hold",  # what the delivery did: kept the message, touched no ticket
        exit_code=ExitCode.OK,
        results=(RuleResult("quarantine", True, why),),
        status_reason=why,
        held_by="quarantine",
    )
    return Outcome(decision, message, message_row=attempt.message_row, quarantined=True)
