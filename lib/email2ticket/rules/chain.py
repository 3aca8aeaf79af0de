"""The update-or-create decision: small named rules, each returning a verdict with its reason.

This is the functional core. `decide()` takes plain data - the parsed message, the envelope and the
facts the store looked up (settings, the sender's user row, the referenced ticket, an earlier
delivery of the same message) - and returns a `Decision` that records every rule it evaluated, hit
or miss. Delivery acts on that decision; `--dry-run --json` and `explain` print the same record, so
what an admin reads is exactly what the real delivery did. There is no second explain path.

The seed rules, from the product email2ticket replaces: a message UPDATES ticket N only when the
subject ends with a reference to an existing ticket N AND (the sender is its requester or assigned
technician, OR the sender is a technician with normal/full access, OR restrict_replies is off).
Anything else opens a NEW ticket.

Sender verification (auth/) narrows the right to update: with sender_verification=technicians
(the default) the technician privileges - the assigned-technician branch of the participant rule and
the privileged-technician rule - hold only for an authenticated sender; with `all`, every update
needs one. The verdict is data on the Context, computed by the shell; `decide()` asks for it
(`Decision.auth_pending`) only when a privilege that needs it would be granted, so most mail never
costs a DNS query. A sender denied a privilege for want of authentication opens a new ticket flagged
as unverified; a DNS temperror that decides the outcome defers the message (75).

Before the seed rules, the loop protections (rules/loop.py) look at what signals/classify.py found: our own
mail coming back, spam, bounces and automatic mail never open tickets, and a sender's flood of new
tickets is held. After them, the notification rules (rules/notify.py) decide who hears of a create
or update. The data all of them share lives in rules/decision.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from ..config.rule_settings import RuleSettings
from ..exits import ExitCode
from ..mail.envelope import Envelope
from ..mail.message import ParsedMessage
from ..mail.subject import clean_subject, has_reply_prefix
from ..reply.extract import ReplyCut, extract_reply
from ..signals.classify import Classification
from .decision import (
    PRIVILEGED_ACCESS,
    Context,
    Decision,
    Facts,
    RuleResult,
    Sender,
    TicketFacts,
    UserFacts,
)
from .loop import (
    automatic_note,
    bounce_decision,
    rule_automatic_mail,
    rule_bounce,
    rule_own_mail,
    rule_sender_flood,
    rule_spam_flag,
    stop,
)
from .notify import plan_notifications

# --- the rules ----------------------------------------------------------------------------------


def identify_sender(message: ParsedMessage, envelope: Envelope) -> Sender:
    """From: first (normalised); without a usable one, the envelope sender unless it is the null sender."""
    if message.from_addresses:
        return Sender(message.from_addresses[0], "from")
    if envelope.sender:
        return Sender(envelope.sender, "envelope")
    return Sender(None, None)


def rule_has_sender(ctx: Context) -> RuleResult:
    sender = ctx.sender
    if sender.source == "from":
        return RuleResult("has-sender", True, f"sender {sender.address} taken from the From: header")
    if sender.source == "envelope":
        return RuleResult(
            "has-sender", True, f"no usable From: address; sender {sender.address} taken from the envelope"
        )
    if ctx.envelope.sender is None:
        why = "no usable From: address and no envelope sender given (--sender or $SENDER)"
    else:
        why = "no usable From: address and the envelope sender is the null sender <>"
    if ctx.classification is not None and ctx.classification.bounce is not None:
        # "From: MAILER-DAEMON (Mail Delivery System)" from <>: refusing it would bounce a bounce.
        return RuleResult("has-sender", True, f"{why}; but it is a delivery failure report: handled as a bounce")
    return RuleResult("has-sender", False, why)


def rule_already_delivered(facts: Facts) -> RuleResult:
    earlier = facts.earlier
    if earlier is None:
        return RuleResult("already-delivered", False, "no earlier delivery of this message (Message-ID and body)")
    target = f" into ticket #{earlier.ticket}" if earlier.ticket else ""
    return RuleResult(
        "already-delivered",
        True,
        f"this message was already delivered{target} (audit record {earlier.message_row}, "
        f"action {earlier.action}); nothing is stored twice",
    )


def rule_message_id_reused(ctx: Context, facts: Facts) -> RuleResult:
    mid = ctx.message.message_id
    if facts.message_id_reused:
        return RuleResult(
            "message-id-reused",
            True,
            f"another message with Message-ID {mid} but a different body was delivered before; "
            "this one is delivered as a message of its own",
        )
    return RuleResult("message-id-reused", False, "no other message with this Message-ID")


def rule_known_sender(ctx: Context, facts: Facts) -> RuleResult:
    user, policy = facts.sender_user, facts.settings.unknown_senders
    if user is not None and not user.disabled:
        kind = "technician" if user.is_technician else "requester"
        return RuleResult("known-sender", True, f"{user.email} is a known {kind}")
    state = "is a disabled user, treated as unknown" if user else "is not in the user table"
    outcome = "refused" if policy == "reject" else "accepted as a requester"
    return RuleResult("known-sender", False, f"{ctx.sender.address} {state}; unknown_senders={policy}: {outcome}")


def rule_ticket_reference(ctx: Context, facts: Facts) -> RuleResult:
    bare = "on" if facts.settings.bare_number_references else "off"
    if facts.reference is None:
        return RuleResult(
            "ticket-reference",
            False,
            f"the subject does not end with a ticket number (bare_number_references={bare})",
        )
    if facts.reference_source == "token":
        return RuleResult(
            "ticket-reference",
            True,
            f"the subject names no ticket, but In-Reply-To/References carry our token for ticket #{facts.reference}",
        )
    return RuleResult("ticket-reference", True, f"the subject ends with a reference to ticket #{facts.reference}")


def rule_ticket_exists(facts: Facts) -> RuleResult:
    if facts.ticket is None:
        return RuleResult("ticket-exists", False, f"there is no ticket #{facts.reference}")
    return RuleResult("ticket-exists", True, f"ticket #{facts.ticket.id} exists (status {facts.ticket.status})")


def rule_sender_is_participant(ctx: Context, ticket: TicketFacts, user: UserFacts | None) -> RuleResult:
    sender = ctx.sender.address
    if user is None or user.disabled:
        return RuleResult(
            "sender-is-participant", False, f"{sender} is not a (enabled) user, so neither requester nor technician"
        )
    if sender == ticket.requester:
        return RuleResult("sender-is-participant", True, f"{sender} is the requester of ticket #{ticket.id}")
    if ticket.technician is not None and sender == ticket.technician:
        return RuleResult("sender-is-participant", True, f"{sender} is the technician assigned to ticket #{ticket.id}")
    return RuleResult("sender-is-participant", False, f"{sender} is neither the requester nor the assigned technician")


def rule_sender_is_privileged_technician(ctx: Context, user: UserFacts | None) -> RuleResult:
    name = "sender-is-privileged-technician"
    if user is None or user.disabled or not user.is_technician:
        return RuleResult(name, False, f"{ctx.sender.address} is not an enabled technician")
    if user.access in PRIVILEGED_ACCESS:
        return RuleResult(name, True, f"{user.email} is a technician with {user.access} help-desk access")
    return RuleResult(name, False, f"{user.email} is a technician with only {user.access} help-desk access")


def rule_replies_unrestricted(settings: RuleSettings) -> RuleResult:
    if settings.restrict_replies:
        return RuleResult(
            "replies-unrestricted", False, "restrict_replies is on: only the requester and technicians may reply"
        )
    return RuleResult("replies-unrestricted", True, "restrict_replies is off: anyone may reply to a ticket")


def rule_reply_prefix(ctx: Context, facts: Facts) -> RuleResult:
    if has_reply_prefix(ctx.message.subject, facts.settings.reply_prefixes):
        return RuleResult("reply-prefix", True, "the subject starts with a reply prefix: quoted history is stripped")
    if facts.reference_source == "token":
        why = "no reply prefix, but it answers our notification (our token): quoted history is stripped"
        return RuleResult("reply-prefix", True, why)
    return RuleResult("reply-prefix", False, "the subject has no reply prefix: the whole body is kept")


def rule_reply_separator(cut: ReplyCut) -> RuleResult:
    skipped = "".join(f"; {note}" for note in cut.skipped)
    if cut.separator is None:
        return RuleResult("reply-separator", False, f"no reply separator cut the body{skipped}")
    return RuleResult(
        "reply-separator", True, f"kept the text above line {cut.line}, where {cut.separator!r} matched{skipped}"
    )


def rule_reopen_on_reply(ticket: TicketFacts, settings: RuleSettings) -> RuleResult:
    if ticket.status != "closed":
        return RuleResult("reopen-on-reply", False, f"ticket #{ticket.id} is {ticket.status}, nothing to reopen")
    state = "on: reopened" if settings.reopen_on_reply else "off: stays closed"
    return RuleResult(
        "reopen-on-reply", settings.reopen_on_reply, f"ticket #{ticket.id} is closed and reopen_on_reply is {state}"
    )


# --- sender verification ------------------------------------------------------------------------

Privilege = Literal["requester", "assigned-technician", "privileged-technician", "unrestricted-replies"]
PRIVILEGE_WORDS: dict[str, str] = {
    "requester": "a requester's reply",
    "assigned-technician": "the assigned technician's right to update",
    "privileged-technician": "the right of a technician with normal or full access to update any ticket",
    "unrestricted-replies": "anyone's right to reply (restrict_replies off)",
}


def needs_authentication(privilege: Privilege, settings: RuleSettings) -> bool:
    """sender_verification: `off` trusts From: alone; `technicians` guards the technician privileges; `all`, all."""
    mode = settings.sender_verification
    if mode == "all":
        return True
    return mode == "technicians" and privilege in ("assigned-technician", "privileged-technician")


def participant_privilege(ctx: Context, ticket: TicketFacts) -> Privilege:
    """Which branch of the participant rule holds: the requester's, else the assigned technician's."""
    return "requester" if ctx.sender.address == ticket.requester else "assigned-technician"


def rule_sender_authenticated(ctx: Context, privilege: Privilege, settings: RuleSettings) -> RuleResult:
    name = "sender-authenticated"
    need = f"needed for {PRIVILEGE_WORDS[privilege]} (sender_verification={settings.sender_verification})"
    if ctx.auth is None:
        return RuleResult(name, False, f"not evaluated yet; {need}")
    return RuleResult(name, ctx.auth.authenticated, f"{ctx.auth.describe()}; {need}")


def rule_sender_authentication_not_needed(settings: RuleSettings) -> RuleResult:
    if settings.sender_verification == "off":
        return RuleResult("sender-authenticated", False, "not evaluated: not needed (sender_verification=off)")
    return RuleResult(
        "sender-authenticated",
        False,
        "not evaluated: not needed (no privilege in this decision depends on who the sender really is)",
    )


def rule_unverified_sender(ctx: Context, ticket: TicketFacts, privilege: Privilege) -> RuleResult:
    return RuleResult(
        "unverified-sender",
        True,
        f"{ctx.sender.address} would have updated ticket #{ticket.id} with {PRIVILEGE_WORDS[privilege]} but is not "
        "authenticated: the message opens a new ticket flagged as from an unverified sender",
    )


# --- the chain ----------------------------------------------------------------------------------

# Every rule with its one-line description, in the order the chain consults them (for `explain --rules`
# and the README). The names are the ones that appear in reasons.
RULES: tuple[tuple[str, str], ...] = (
    (
        "has-sender",
        "The message has a sender: a From: address, else the envelope sender (else exit 65, unless it is a bounce)",
    ),
    ("already-delivered", "The same message (Message-ID and body digest) was delivered before: duplicate"),
    ("message-id-reused", "A different message reuses an earlier Message-ID: delivered as its own message"),
    ("own-mail", "Our own notification came back (our loop header, or our token as its Message-ID): ignored"),
    ("spam-flag", "A trusted spam header (spam_headers) marks the message: held"),
    ("bounce", "A delivery failure report (RFC 3464 or a known non-standard form)"),
    ("bounce-linked", "The report names our notification: an internal note on its ticket, else ignored"),
    ("hard-bounce", "A permanent failure: the ticket's participant that failed is not notified again"),
    (
        "automatic-mail",
        "Auto-Submitted, Precedence, X-Autoreply, X-Autorespond, X-Auto-Response-Suppress, List-Id, "
        "List-Unsubscribe, null sender, MAILER-DAEMON, out-of-office subject (unless in allowed_senders): "
        "only ever an internal note on a ticket the sender may update, else ignored",
    ),
    ("known-sender", "The sender is an enabled user; otherwise unknown_senders decides (reject exits 77)"),
    (
        "ticket-reference",
        "The subject ends with a ticket number (bare_number_references), else In-Reply-To/References carry our "
        "token for one",
    ),
    ("ticket-exists", "That ticket exists"),
    ("sender-is-participant", "The sender is the ticket's requester or assigned technician"),
    ("sender-is-privileged-technician", "The sender is a technician with normal or full access"),
    ("replies-unrestricted", "restrict_replies is off, so anyone may reply"),
    (
        "sender-authenticated",
        "Where a granted privilege needs it (sender_verification), the sender is authenticated: an aligned DKIM "
        "signature or a trusted Authentication-Results header; recorded as not needed otherwise",
    ),
    ("sender-flood", "More than max_new_tickets_per_sender_per_hour new tickets from the sender: held"),
    ("refers-to", "A new ticket records the ticket our token named, which the sender may not update"),
    ("unverified-sender", "A privilege was withheld from an unauthenticated sender: a new, flagged ticket"),
    ("reply-prefix", "The subject starts with a reply prefix, so quoted history is stripped"),
    ("reply-separator", "Where the earliest reply separator cuts the body"),
    ("reopen-on-reply", "A reply to a closed ticket reopens it (reopen_on_reply)"),
    (
        "acknowledge",
        "A new ticket is acknowledged to its requester, unless off, our own address, hard-bounced, DKIM/DMARC "
        "fail, unverified with acknowledge_unverified off, or over max_autoreplies_per_day/_per_hour",
    ),
    ("notify-technician", "The assigned technician hears of each update by mail (notify_technician_of_updates)"),
    (
        "notify-requester",
        "The requester gets an authenticated technician's comment (notify_requester_of_technician_comments)",
    ),
)


def decide(ctx: Context, facts: Facts) -> Decision:
    """Walk the chain and return the decision with every rule evaluated on the way.

    Every create or update records the sender verification right after the rules that grant the
    right to update: the verdict where a privilege depended on it, "not evaluated: not needed" elsewhere.
    A create or update then passes the notification rules (rules/notify.py).
    """
    results: list[RuleResult] = [rule_has_sender(ctx)]
    if not results[0].hit:
        return _refuse(results, ExitCode.DATAERR, "no sender: the message has no From: address and no envelope sender")
    results.append(rule_already_delivered(facts))
    if facts.earlier is not None:
        return Decision("duplicate", ExitCode.OK, tuple(results), ticket=facts.earlier.ticket)
    if ctx.message.message_id:
        results.append(rule_message_id_reused(ctx, facts))
    decision = _screen(ctx, facts, results)
    if decision is None and ctx.sender.address is None:  # a bounce without a sender, released by the admin
        return _refuse(results, ExitCode.DATAERR, "no sender: only a bounce may come without one")
    decision = decision or _update_or_create(ctx, facts, results)
    if decision.action not in ("create", "update"):
        return decision
    plan = plan_notifications(ctx, facts, decision)
    return replace(
        decision,
        results=decision.results + plan.results,
        notices=plan.notices,
        auth_needed=decision.auth_needed or plan.auth_needed,
        auth_pending=decision.auth_pending or plan.auth_pending,
    )


def _screen(ctx: Context, facts: Facts, results: list[RuleResult]) -> Decision | None:
    """The loop protections that stop a message before any ticket rule (rules/loop.py); None: none did."""
    cls = ctx.classification or Classification()
    own = rule_own_mail(ctx, cls)
    results.append(own)
    if own.hit:
        return stop(results, "ignore", "own-mail", "our own notification came back; it never opens a ticket")
    spam = rule_spam_flag(ctx, cls)
    results.append(spam)
    if spam.hit:
        return stop(results, "hold", "spam-flag", "marked as spam by a trusted spam header; held for the admin")
    bounce = rule_bounce(ctx, cls)
    results.append(bounce)
    if bounce.hit:
        return bounce_decision(ctx, cls, facts, results)
    return None


def _update_or_create(ctx: Context, facts: Facts, results: list[RuleResult]) -> Decision:
    """The seed rules: update the referenced ticket when the sender may, else open a new one.

    Automatic mail takes the same road but may only ever become an internal note on a ticket its sender
    may update; everything else automatic is ignored (never a new ticket, never a bounce).
    """
    cls = ctx.classification or Classification()
    automatic = rule_automatic_mail(ctx, cls)
    results.append(automatic)
    known = rule_known_sender(ctx, facts)
    results.append(known)
    if not known.hit and facts.settings.unknown_senders == "reject":
        if automatic.hit:  # refusing it would send a bounce to a robot: the next loop
            return stop(results, "ignore", "automatic-mail", "automatic mail from an unknown sender")
        return _refuse(results, ExitCode.NOPERM, f"sender {ctx.sender.address} is not a help-desk user")
    gate = _ticket_to_update(ctx, facts, results)
    if gate.auth is None:
        results.append(rule_sender_authentication_not_needed(facts.settings))
    if ctx.auth is not None and ctx.auth.result == "temperror" and gate.withheld is not None and gate.refused:
        reason = (
            f"could not verify the sender {ctx.sender.address}, on which updating ticket #{gate.refused.id} "
            f"depends: {ctx.auth.reason}; try again later"
        )
        return _with_auth(Decision("defer", ExitCode.TEMPFAIL, tuple(results), status_reason=reason), gate, ctx)
    if automatic.hit:
        if gate.ticket is not None:
            return _with_auth(automatic_note(ctx, gate.ticket, results), gate, ctx)
        reason = "automatic mail that may not update a ticket; kept, never answered"
        return _with_auth(stop(results, "ignore", "automatic-mail", reason), gate, ctx)
    create_sender = facts.sender_user is None
    if gate.ticket is not None:
        return _with_auth(_update(ctx, facts, results, gate.ticket, create_sender=create_sender), gate, ctx)
    flood = rule_sender_flood(ctx, cls, facts)
    results.append(flood)
    if flood.hit:
        reason = "too many new tickets from this sender in the last hour; held for the admin"
        return _with_auth(stop(results, "hold", "sender-flood", reason), gate, ctx)
    refers_to = facts.ticket.id if facts.reference_source == "token" and facts.ticket is not None else None
    if refers_to is not None:
        results.append(rule_refers_to(refers_to))
    unverified = gate.withheld is not None and gate.refused is not None and ctx.auth is not None
    if unverified and gate.refused is not None and gate.withheld is not None:
        results.append(rule_unverified_sender(ctx, gate.refused, gate.withheld))
    decision = _create(ctx, facts, results, create_sender=create_sender)
    return replace(_with_auth(decision, gate, ctx), unverified_sender=unverified, refers_to=refers_to)


def rule_refers_to(ticket: int) -> RuleResult:
    return RuleResult(
        "refers-to",
        True,
        f"our token names ticket #{ticket}, which this sender may not update: the new ticket records that it "
        "refers to it",
    )


def _with_auth(decision: Decision, gate: _Gate, ctx: Context) -> Decision:
    """Record how sender verification took part in a decision."""
    return replace(
        decision,
        auth_needed=gate.auth is not None,
        auth_pending=gate.auth is not None and ctx.auth is None,
        author_verified=gate.auth is not None and gate.auth.hit,
    )


@dataclass(frozen=True)
class _Gate:
    """What seed rule 2 found: the ticket the sender may update, and how sender verification took part."""

    ticket: TicketFacts | None = None  # the ticket to update, when a grant held
    auth: RuleResult | None = None  # the sender-authenticated result, when a grant consulted it
    withheld: Privilege | None = None  # a privilege refused because the sender is not authenticated
    refused: TicketFacts | None = None  # the ticket that privilege concerned


def _ticket_to_update(ctx: Context, facts: Facts, results: list[RuleResult]) -> _Gate:
    """Seed rules 1 and 2: the referenced ticket, when it exists and the sender may update it."""
    results.append(rule_ticket_reference(ctx, facts))
    if facts.reference is None:
        return _Gate()
    results.append(rule_ticket_exists(facts))
    ticket = facts.ticket
    if ticket is None:
        return _Gate()
    user, settings = facts.sender_user, facts.settings
    # Seed rule 2: any one of these grants the right to update; stop at the first that does. A grant
    # that needs an authenticated sender (sender_verification) consults the verdict, once.
    grants: tuple[Callable[[], tuple[RuleResult, Privilege]], ...] = (
        lambda: (rule_sender_is_participant(ctx, ticket, user), participant_privilege(ctx, ticket)),
        lambda: (rule_sender_is_privileged_technician(ctx, user), "privileged-technician"),
        lambda: (rule_replies_unrestricted(settings), "unrestricted-replies"),
    )
    auth: RuleResult | None = None
    withheld: Privilege | None = None
    for grant in grants:
        result, privilege = grant()
        results.append(result)
        if not result.hit:
            continue
        if not needs_authentication(privilege, settings):
            return _Gate(ticket, auth)
        if auth is None:
            auth = rule_sender_authenticated(ctx, privilege, settings)
            results.append(auth)
        if auth.hit:
            return _Gate(ticket, auth)
        withheld = withheld or privilege
    return _Gate(None, auth, withheld, ticket if withheld else None)


def _create(ctx: Context, facts: Facts, results: list[RuleResult], *, create_sender: bool) -> Decision:
    settings = facts.settings
    subject = clean_subject(
        ctx.message.subject,
        reply_prefixes=settings.reply_prefixes,
        forward_prefixes=settings.forward_prefixes,
        bare_numbers=settings.bare_number_references,
    )
    return Decision(
        "create",
        ExitCode.OK,
        tuple(results),
        subject=subject,
        body=ctx.message.text,
        create_sender=create_sender,
    )


def _update(
    ctx: Context, facts: Facts, results: list[RuleResult], ticket: TicketFacts, *, create_sender: bool
) -> Decision:
    prefix = rule_reply_prefix(ctx, facts)
    results.append(prefix)
    body = ctx.message.text
    if prefix.hit:
        cut = extract_reply(ctx.message, facts.separators)
        results.append(rule_reply_separator(cut))
        body = cut.text
    reopen = rule_reopen_on_reply(ticket, facts.settings)
    results.append(reopen)
    return Decision(
        "update",
        ExitCode.OK,
        tuple(results),
        ticket=ticket.id,
        body=body,
        reopen=reopen.hit,
        create_sender=create_sender,
    )


def _refuse(results: list[RuleResult], code: ExitCode, reason: str) -> Decision:
    return Decision("reject", code, tuple(results), status_reason=reason)
