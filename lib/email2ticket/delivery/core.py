"""Delivery: raw bytes + envelope + store in, an outcome (decision, ticket, exit code) out.

This is the one function every entry point runs - the pipe executable today, a resident service
later - so it keeps no process-global state: everything it needs arrives as arguments. The order is
the contract: parse (pure), look up facts and decide (pure rules) inside the transaction, write the
decision and the raw message's audit record, commit. Only after the commit does the caller exit 0.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..auth.verdict import AuthPolicy
from ..auth.verify import offline_verdict, verify_sender
from ..config.model import DnsConfig
from ..config.rule_settings import RuleSettings
from ..exits import DataError, ExitCode, TemporaryFailure
from ..mail.envelope import Envelope
from ..mail.message import ParsedMessage, parse_message
from ..mail.subject import find_ticket_reference
from ..rules.chain import decide, identify_sender
from ..rules.decision import Context, Decision, Outbound, ReferenceSource
from ..signals.classify import Classification, classify

if TYPE_CHECKING:
    from ..signals.tokens import KeyringSource
    from ..store.delivery import DeliveryStore, MessageKeys, OutboxItem

# Concurrent deliveries of the same message (or the first mails of one new sender) can collide on a
# unique key; the loser retries once the winner has committed, and then sees a duplicate.
CONFLICT_RETRIES = 3
# Sender verification runs between two transactions; if an admin changes its settings in between,
# the verdict is recomputed, but not forever.
VERIFY_ROUNDS = 3


@dataclass(frozen=True)
class MailIdentity:
    """Who we are as a sender of mail: how our own notifications and tokens are recognised.

    Built by the shell from [notifications] and the key file (cli/deliver.py `mail_identity`); the
    default - no keyring, no loop id, notifications off - still classifies every other signal.
    """

    keyring: KeyringSource = None  # the keyring, or a function that loads it when a token must be checked
    instance_id: str | None = None
    outbound: Outbound = field(default_factory=Outbound)


@dataclass(frozen=True)
class Release:
    """An admin's `messages release`: the held or ignored record, and the rule it skips."""

    message_row: int
    rule: str


@dataclass(frozen=True)
class Outcome:
    """The result of one delivery, as printed by --json and logged."""

    decision: Decision
    message: ParsedMessage
    dry_run: bool = False
    message_row: int | None = None  # the audit record, when one was written
    notifications: tuple[OutboxItem, ...] = ()  # written as pending, to send after the commit
    notifications_due: int = 0  # earlier notifications waiting for a retry, as seen by this delivery

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
            "notify": [{"kind": n.kind, "recipient": n.recipient} for n in self.decision.notices],
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
    from ..store.delivery import MessageKeys

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


# How often an unexpected error may fail the same message before it is quarantined (delivery/quarantine.py).
DEFAULT_MAX_ATTEMPTS = 5


def deliver(
    raw: bytes,
    envelope: Envelope,
    store: DeliveryStore,
    *,
    max_message_bytes: int,
    dry_run: bool = False,
    max_attempts: int | None = DEFAULT_MAX_ATTEMPTS,
    dns: DnsConfig | None = None,
    identity: MailIdentity | None = None,
    release: Release | None = None,
) -> Outcome:
    """Deliver one message; raises DeliveryError subclasses for failures with a known exit code.

    An unexpected error (a bug, a value the database refuses) counts against the message: the attempt
    is recorded and deferred (75), and the `max_attempts`-th is quarantined and returned as a success
    (exit 0), so the MTA does not retry a poison message for days. None: never count (replay).
    `dns` is where sender verification asks for DKIM keys (default: the system resolver, 10 s budget).
    `identity` recognises our own mail and tokens; `release` delivers a held message past its check.
    """
    try:
        options = _Options(dns or DnsConfig(), identity or MailIdentity(), release)
        return _deliver(raw, envelope, store, max_message_bytes=max_message_bytes, dry_run=dry_run, options=options)
    except Exception as exc:
        from .quarantine import is_poison_suspect

        if dry_run or max_attempts is None or not is_poison_suspect(exc):
            raise
        return _count_failure(raw, envelope, store, exc, max_attempts)


def _count_failure(
    raw: bytes, envelope: Envelope, store: DeliveryStore, error: Exception, max_attempts: int
) -> Outcome:
    """Record a failed attempt in a fresh transaction; quarantine the message at max_attempts."""
    from .quarantine import describe, fallback_keys, quarantine_outcome, record_failure, suspect_failure

    try:
        message = parse_message(raw)
        keys, sender = message_keys(message, raw), identify_sender(message, envelope).address
    except Exception:  # the error came from parsing itself: recognise the message by its bytes
        message, keys, sender = ParsedMessage(), fallback_keys(raw), None
    try:
        attempt = record_failure(
            store,
            raw,
            envelope,
            keys,
            sender=sender,
            subject=message.subject or None,
            error=error,
            max_attempts=max_attempts,
        )
    except Exception as exc:  # the database cannot even take the record: a plain retry (75)
        error.add_note(f"email2ticket: this failed attempt could not be recorded: {describe(exc)}")
        attempt = None
    if attempt is None:
        raise error
    if attempt.quarantined:
        return quarantine_outcome(attempt, error, message)
    raise suspect_failure(attempt, error) from error


@dataclass(frozen=True)
class _Options:
    dns: DnsConfig
    identity: MailIdentity
    release: Release | None


def _deliver(
    raw: bytes, envelope: Envelope, store: DeliveryStore, *, max_message_bytes: int, dry_run: bool, options: _Options
) -> Outcome:
    """One delivery without failure counting; see deliver()."""
    from sqlalchemy.exc import IntegrityError

    check_size(raw, max_message_bytes)
    message = parse_message(raw)
    ctx = Context(
        message=message,
        envelope=envelope,
        sender=identify_sender(message, envelope),
        outbound=options.identity.outbound,
        release=options.release.rule if options.release else None,
    )
    keys = message_keys(message, raw)
    for _attempt in range(CONFLICT_RETRIES):
        try:
            return _deliver_verified(ctx, raw, keys, store, dry_run=dry_run, options=options)
        except IntegrityError as exc:
            last = exc
    raise TemporaryFailure("the message kept colliding with concurrent deliveries; try again") from last


def _deliver_verified(
    ctx: Context, raw: bytes, keys: MessageKeys, store: DeliveryStore, *, dry_run: bool, options: _Options
) -> Outcome:
    """One delivery; when its decision depends on a DKIM verdict, verify between two transactions.

    The first transaction finds that out and writes nothing; DNS is asked outside any transaction (a
    SQLite write lock must never wait on a resolver), over the exact bytes received; the second
    transaction looks the facts up again and decides with the verdict.
    """
    for _round in range(VERIFY_ROUNDS):
        step = _deliver_once(ctx, raw, keys, store, dry_run=dry_run, options=options)
        if isinstance(step, Outcome):
            return step
        ctx = replace(ctx, auth=verify_sender(raw, ctx.message, step, options.dns))
    raise TemporaryFailure("the sender verification settings kept changing during this delivery; try again")


def ticket_reference(
    subject: str, settings: RuleSettings, cls: Classification
) -> tuple[int | None, ReferenceSource | None]:
    """The ticket a message refers to, and how: a bounce's report, the subject, else our token."""
    if cls.bounce is not None:
        return cls.bounce_link, "bounce" if cls.bounce_link is not None else None
    reference = find_ticket_reference(subject, bare_numbers=settings.bare_number_references)
    if reference is not None:
        return reference, "subject"
    if cls.token_tickets:
        return cls.token_tickets[0], "token"
    return None, None


def _deliver_once(
    ctx: Context, raw: bytes, keys: MessageKeys, store: DeliveryStore, *, dry_run: bool, options: _Options
) -> Outcome | AuthPolicy:
    """Decide and write in one transaction; returns the AuthPolicy to verify under when DNS is needed first."""
    with store.transaction(commit=not dry_run) as tx:
        settings, separators = tx.rule_settings()
        if options.release is not None:
            tx.release(options.release.message_row)  # its idempotency key must not make this a duplicate
        identity = options.identity
        cls = classify(
            ctx.message,
            raw,
            ctx.envelope,
            settings,
            keyring=identity.keyring,
            instance_id=identity.instance_id,
            sender=ctx.sender.address,
        )
        ctx = replace(ctx, classification=cls)
        reference, source = ticket_reference(ctx.message.subject, settings, cls)
        facts = tx.facts(
            sender=ctx.sender.address,
            reference=reference,
            reference_source=source,
            keys=keys,
            settings=settings,
            separators=separators,
            notifications=ctx.outbound.enabled,
        )
        decision = decide(ctx, facts)
        policy = AuthPolicy.from_settings(settings)
        if decision.auth_needed and (ctx.auth is None or ctx.auth.policy != policy):
            verdict = offline_verdict(ctx.message, policy)  # the headers alone: no DNS, no dkimpy
            if verdict is None:
                return policy  # nothing was written; leaving the block ends an empty transaction
            ctx = replace(ctx, auth=verdict)
            decision = decide(ctx, facts)
        if decision.action == "defer" and not dry_run:
            # A DNS temperror decided the outcome: roll back and let the MTA retry.
            raise TemporaryFailure(decision.status_reason, status="4.4.3")
        if dry_run:
            return Outcome(decision, ctx.message, dry_run=True)
        written = tx.apply(decision, ctx, raw, keys, facts.ticket if decision.action == "update" else None)
    # The `with` block committed: only now is the outcome true.
    return Outcome(
        replace(decision, ticket=written.ticket),
        ctx.message,
        message_row=written.message_row,
        notifications=written.notifications,
        notifications_due=facts.notifications_due,
    )
