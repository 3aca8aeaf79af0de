"""Delivery: raw bytes + envelope + store in, an outcome (decision, ticket, exit code) out.

This is the one function every entry point runs - the pipe executable today, a resident service
later - so it keeps no process-global state: everything it needs arrives as arguments. The order is
the contract: parse (pure), look up facts and decide (pure rules) inside the transaction, write the
decision and the raw message's audit record, commit. Only after the commit does the caller exit 0.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .envelope import Envelope
from .exits import DataError, ExitCode, TemporaryFailure
from .message import ParsedMessage, parse_message
from .rules import Context, Decision, decide, identify_sender
from .subject import find_ticket_reference

if TYPE_CHECKING:
    from .store.delivery import DeliveryStore, MessageKeys

# Concurrent deliveries of the same message (or the first mails of one new sender) can collide on a
# unique key; the loser retries once the winner has committed, and then sees a duplicate.
CONFLICT_RETRIES = 3


@dataclass(frozen=True)
class Outcome:
    """The result of one delivery, as printed by --json and logged."""

    decision: Decision
    message: ParsedMessage
    dry_run: bool = False
    message_row: int | None = None  # the audit record, when one was written

    @property
    def exit_code(self) -> ExitCode:
        return self.decision.exit_code

    @property
    def ticket(self) -> int | None:
        if self.dry_run and self.decision.action == "create":
            return None  # with --dry-run no ticket is opened, so there is no number to report
        return self.decision.ticket

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.decision.action,
            "ticket": self.ticket,
            "reasons": self.decision.reasons,
            "exit_code": int(self.exit_code),
        }


def check_size(raw: bytes, max_message_bytes: int) -> None:
    """Refuse what can never be delivered before spending anything on it."""
    if not raw:
        raise DataError("no message on standard input")
    if len(raw) > max_message_bytes:
        raise DataError(f"message larger than max_message_bytes ({max_message_bytes} bytes)", status="5.3.4")


# Without a Message-ID the body alone would make every empty-bodied alert ("Subject: disk full on
# srv1", "... srv2") a duplicate of the first: these headers, which a relay never changes, join it.
STABLE_HEADERS = ("from", "to", "cc", "subject", "date")


def message_keys(message: ParsedMessage, raw: bytes) -> MessageKeys:
    """The idempotency key: the Message-ID with the body digest (copies differ in Received: headers),
    or, without a Message-ID, the body digest with the headers relays leave alone."""
    from .store.delivery import MessageKeys

    if message.message_id:
        basis = f"{message.message_id}\n{message.body_digest}"
    else:
        stable = "\n".join(f"{name}: {message.header(name) or ''}" for name in STABLE_HEADERS)
        basis = f"{stable}\n{message.body_digest}"
    return MessageKeys(
        idempotency_key=hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest(),
        body_digest=message.body_digest,
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        message_id=message.message_id,
    )


def deliver(
    raw: bytes,
    envelope: Envelope,
    store: DeliveryStore,
    *,
    max_message_bytes: int,
    dry_run: bool = False,
) -> Outcome:
    """Deliver one message; raises DeliveryError subclasses for failures with a known exit code."""
    from sqlalchemy.exc import IntegrityError

    check_size(raw, max_message_bytes)
    message = parse_message(raw)
    ctx = Context(message=message, envelope=envelope, sender=identify_sender(message, envelope))
    keys = message_keys(message, raw)
    for _attempt in range(CONFLICT_RETRIES):
        try:
            return _deliver_once(ctx, raw, keys, store, dry_run=dry_run)
        except IntegrityError as exc:
            last = exc
    raise TemporaryFailure("the message kept colliding with concurrent deliveries; try again") from last


def _deliver_once(ctx: Context, raw: bytes, keys: MessageKeys, store: DeliveryStore, *, dry_run: bool) -> Outcome:
    with store.transaction(commit=not dry_run) as tx:
        settings, separators = tx.rule_settings()
        reference = find_ticket_reference(ctx.message.subject, bare_numbers=settings.bare_number_references)
        facts = tx.facts(
            sender=ctx.sender.address, reference=reference, keys=keys, settings=settings, separators=separators
        )
        decision = decide(ctx, facts)
        if dry_run:
            return Outcome(decision, ctx.message, dry_run=True)
        written = tx.apply(decision, ctx, raw, keys)
    # The `with` block committed: only now is the outcome true.
    return Outcome(replace(decision, ticket=written.ticket), ctx.message, message_row=written.message_row)
