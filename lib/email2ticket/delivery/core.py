"""One delivery: raw bytes + envelope + store in, an outcome (decision, ticket, exit code) out.

The heart of the delivery layer, run by every entrance through delivery/run.py (the pipe, the
service and LMTP, `explain`, `messages release`, `quarantine replay`). It keeps no process-global
state: everything it needs arrives as arguments. The order is the contract: parse (pure), look up
facts and decide (pure rules) inside the transaction, write the decision and the raw message's audit
record, commit. Only after the commit does the caller exit 0. Counting failures against a message
is delivery/attempts.py's part; this module raises.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from msgspec import Struct, field
from msgspec.structs import replace

from ..auth.verdict import AuthPolicy
from ..auth.verify import offline_verdict, verify_sender
from ..config.model import DnsConfig, Limits
from ..config.rule_settings import RuleSettings
from ..exits import DataError, TemporaryFailure
from ..mail.envelope import Envelope
from ..mail.message import ParsedMessage, parse_message
from ..mail.subject import find_ticket_reference
from ..rules.chain import decide, identify_sender
from ..rules.decision import Context, Decision, ReferenceSource, RuleResult
from ..rules.filters import match_filters
from ..rules.people import with_requester
from ..rules.routing import own_addresses, route_message
from ..rules.routing_facts import Route, Routing
from ..rules.ticket import thread_message_ids
from ..signals.classify import Classification, classify
from .deadline import message_work
from .outcome import MailIdentity, Outcome, Redelivery

if TYPE_CHECKING:
    from ..store.audit import MessageKeys
    from ..store.delivery import DeliveryStore

# Concurrent deliveries of the same message (or the first mails of one new sender) can collide on a
# unique key; the loser retries once the winner has committed, and then sees a duplicate.
CONFLICT_RETRIES = 3
# Sender verification runs between two transactions; if an admin changes its settings in between,
# the verdict is recomputed, but not forever.
VERIFY_ROUNDS = 3


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
    from ..store.audit import MessageKeys

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


class Options(Struct, frozen=True):
    """How a delivery runs, beyond the message: set by the delivery layer from the configuration."""

    max_message_bytes: int
    limits: Limits = field(default_factory=Limits)  # what the parser may be asked to build (mail/limits.py)
    dry_run: bool = False
    dns: DnsConfig = field(default_factory=DnsConfig)  # where sender verification asks for DKIM keys
    identity: MailIdentity = field(default_factory=MailIdentity)  # recognises our own mail and tokens
    redelivery: Redelivery | None = None  # an admin delivers a stored message again


class VerifyFirst(Struct, frozen=True):
    """The decision depends on who the sender really is, and only DNS can tell: verify under `policy`,
    outside any transaction, then decide again."""

    policy: AuthPolicy


def deliver(raw: bytes, envelope: Envelope, store: DeliveryStore, options: Options) -> Outcome:
    """Deliver one message; raises DeliveryError subclasses for failures with a known exit code, and
    lets anything unexpected through for delivery/attempts.py to count."""
    from sqlalchemy.exc import IntegrityError

    check_size(raw, options.max_message_bytes)
    with message_work():  # the deadline may interrupt parsing, and counts it against the message
        message = parse_message(raw, options.limits)
    redelivery = options.redelivery
    ctx = Context(
        message=message,
        envelope=envelope,
        sender=identify_sender(message, envelope),
        outbound=options.identity.outbound,
        release=redelivery.skip if redelivery else None,
    )
    keys = message_keys(message, raw)
    for _attempt in range(CONFLICT_RETRIES):
        try:
            return _deliver_verified(ctx, raw, keys, store, options)
        except IntegrityError as exc:
            last = exc
    raise TemporaryFailure("the message kept colliding with concurrent deliveries; try again") from last


def _deliver_verified(ctx: Context, raw: bytes, keys: MessageKeys, store: DeliveryStore, options: Options) -> Outcome:
    """One delivery; when its decision depends on a DKIM verdict, verify between two transactions.

    The first transaction finds that out and writes nothing; DNS is asked outside any transaction (a
    SQLite write lock must never wait on a resolver), over the exact bytes received; the second
    transaction looks the facts up again and decides with the verdict.
    """
    for _round in range(VERIFY_ROUNDS):
        step = _deliver_once(ctx, raw, keys, store, options)
        if isinstance(step, Outcome):
            return step
        ctx = replace(ctx, auth=verify_sender(raw, ctx.message, step.policy, options.dns))
    raise TemporaryFailure("the sender verification settings kept changing during this delivery; try again")


def ticket_reference(
    subject: str, settings: RuleSettings, cls: Classification, route: Route | None = None
) -> tuple[int | None, ReferenceSource | None]:
    """The ticket a message refers to, and how: a bounce's report, the subject, a plus-address, else our token."""
    if cls.bounce is not None:
        return cls.bounce_link, "bounce" if cls.bounce_link is not None else None
    reference = find_ticket_reference(subject, bare_numbers=settings.bare_number_references)
    if reference is not None:
        return reference, "subject"
    if route is not None and route.plus_ticket is not None:
        return route.plus_ticket, "plus-address"
    if cls.token_tickets:
        return cls.token_tickets[0], "token"
    return None, None


def with_routing(ctx: Context, routing: Routing, settings: RuleSettings) -> Context:
    """Where the mail was sent and what the admin's filters say of it, found once before the rules, like the
    classification (rules/routing.py, rules/filters.py): the plus-address names the ticket the facts look up."""
    route = route_message(ctx.message, ctx.envelope, routing, settings, own_addresses(ctx, settings))
    with message_work():  # a filter may search the body: interruptible like parsing
        filtered = match_filters(routing.filters, ctx.message, ctx.envelope, ctx.release)
    return replace(ctx, route=route, filtered=filtered)


def with_envelope_notes(decision: Decision, envelope: Envelope) -> Decision:
    """What was wrong with the envelope's bytes (mail/envelope.py) leads the record, so the audit trail and
    `--json` say what the MTA really handed over, not only what we read it as."""
    if not envelope.notes:
        return decision
    notes = tuple(RuleResult("envelope", True, note) for note in envelope.notes)
    return replace(decision, results=notes + decision.results)


def _acknowledges_within_hourly_limit(decision: Decision, settings: RuleSettings) -> bool:
    """Whether the decision acknowledges a new ticket while max_autoreplies_per_hour limits them all."""
    return bool(settings.max_autoreplies_per_hour) and any(n.kind == "acknowledgement" for n in decision.notices)


def _deliver_once(
    ctx: Context, raw: bytes, keys: MessageKeys, store: DeliveryStore, options: Options
) -> Outcome | VerifyFirst:
    """Decide and write in one transaction, or say that the sender must be verified first."""
    dry_run = options.dry_run
    with store.transaction(commit=not dry_run, sender=ctx.sender.address) as tx:  # and the sender's limits lock
        settings, separators = tx.rule_settings()
        if options.redelivery is not None:
            # its idempotency key must not make this a duplicate, and it changes state with this delivery
            tx.redelivering(options.redelivery.message_row, options.redelivery.state)
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
        # A robot of reply_to_senders writes for the person in its Reply-To: (classified as the robot it is).
        ctx = with_requester(replace(ctx, classification=cls), settings)
        ctx = with_routing(ctx, tx.routing(), settings)
        reference, source = ticket_reference(ctx.message.subject, settings, cls, ctx.route)
        facts = tx.facts(
            sender=ctx.sender.address,
            reference=reference,
            reference_source=source,
            keys=keys,
            settings=settings,
            separators=separators,
            notifications=ctx.outbound.enabled,
            thread_ids=thread_message_ids(ctx.message) if reference is None else (),
        )
        if cls.bounce_tokens:  # a bounce may block only whom the notification it names went to (rules/loop.py)
            facts = replace(facts, notified=tx.notified(cls.bounce_tokens))
        with message_work():  # deciding cuts the reply: interruptible like parsing
            decision = decide(ctx, facts)
        policy = AuthPolicy.from_settings(settings, honour_results=not ctx.envelope.loopback_tcp)
        if decision.auth_needed and (ctx.auth is None or ctx.auth.policy != policy):
            verdict = offline_verdict(ctx.message, policy)  # the headers alone: no DNS, no dkimpy
            if verdict is None:
                return VerifyFirst(policy)  # nothing was written; leaving the block ends an empty transaction
            ctx = replace(ctx, auth=verdict)
            with message_work():
                decision = decide(ctx, facts)
        if not dry_run and _acknowledges_within_hourly_limit(decision, settings):
            # The overall hourly count is every sender's: counted again under its lock, just before writing.
            from ..store.facts import acknowledgements_last_hour_locked

            recount = acknowledgements_last_hour_locked(tx.conn)
            if recount is not None and recount != facts.acknowledgements_last_hour:
                facts = replace(facts, acknowledgements_last_hour=recount)
                with message_work():
                    decision = decide(ctx, facts)
        decision = with_envelope_notes(decision, ctx.envelope)
        if decision.action == "defer" and not dry_run:
            # A DNS temperror decided the outcome: roll back and let the MTA retry.
            raise TemporaryFailure(decision.status_reason, status="4.4.3")
        if dry_run:
            return Outcome(decision, ctx.message, dry_run=True)
        written = tx.apply(decision, ctx, raw, keys, facts.ticket if decision.action == "update" else None)
        if options.redelivery is not None:
            redelivery = options.redelivery
            tx.note_redelivery(redelivery.message_row, redelivery.state, written.message_row, decision.action)
    # The `with` block committed: only now is the outcome true.
    return Outcome(
        replace(decision, ticket=written.ticket),
        ctx.message,
        message_row=written.message_row,
        notifications=written.notifications,
        notifications_due=facts.notifications_due,
    )
