"""The seed rules: whether a message updates the ticket it refers to or opens a new one.

From the product email2ticket replaces: a message UPDATES ticket N only when the subject ends with a
reference to an existing ticket N AND (the sender is its requester or assigned technician, OR the sender is a
technician with normal/full access, OR restrict_replies is off). Anything else opens a NEW ticket. Around
them: the message has a sender, was not delivered before, comes from a known sender; an update strips the
quoted history and may reopen the ticket; a new ticket records the ticket our token named.

Each rule only judges and says why; which rule the chain consults when, and what a hit does, is the chain's
table (rules/chain.py). Sender verification narrows seed rule 2 (rules/auth.py).
"""

from __future__ import annotations

from ..mail.message import ParsedMessage
from ..mail.subject import has_reply_prefix
from .base import Finding, Found, hit, miss, required, rule
from .decision import PRIVILEGED_ACCESS, Context, Facts

# Hostile mail can name thousands of Message-IDs in References: only the nearest this many are looked up.
MAX_THREAD_IDS = 20

# --- the message --------------------------------------------------------------------------------


@rule(
    "has-sender",
    "the message has a sender: a From: address, else the envelope sender (else exit 65; a bounce from `<>` "
    "whose From: has no address is handled as a bounce)",
)
def has_sender(ctx: Context, facts: Facts, found: Found) -> Finding:
    sender = ctx.sender
    if sender.source in ("from", "reply-to"):  # a robot's Reply-To: person: requester-from-reply-to says so
        return hit(f"sender {sender.robot or sender.address} taken from the From: header")
    if sender.source == "envelope":
        return hit(f"no usable From: address; sender {sender.address} taken from the envelope")
    if ctx.envelope.sender is None:
        why = "no usable From: address and no envelope sender given (--sender or $SENDER)"
    else:
        why = "no usable From: address and the envelope sender is the null sender <>"
    if ctx.classification is not None and ctx.classification.bounce is not None:
        # "From: MAILER-DAEMON (Mail Delivery System)" from <>: refusing it would bounce a bounce.
        return hit(f"{why}; but it is a delivery failure report: handled as a bounce")
    return miss(why)


@rule(
    "already-delivered",
    "the same message (Message-ID and body digest) was delivered before: `duplicate`",
)
def already_delivered(ctx: Context, facts: Facts, found: Found) -> Finding:
    earlier = facts.earlier
    if earlier is None:
        return miss("no earlier delivery of this message (Message-ID and body)")
    target = f" into ticket #{earlier.ticket}" if earlier.ticket else ""
    return hit(
        f"this message was already delivered{target} (audit record {earlier.message_row}, "
        f"action {earlier.action}); nothing is stored twice"
    )


@rule("message-id-reused", "a different message reuses an earlier Message-ID: delivered as its own message")
def message_id_reused(ctx: Context, facts: Facts, found: Found) -> Finding:
    if facts.message_id_reused:
        return hit(
            f"another message with Message-ID {ctx.message.message_id} but a different body was delivered before; "
            "this one is delivered as a message of its own"
        )
    return miss("no other message with this Message-ID")


@rule("known-sender", "the sender is an enabled user; otherwise `unknown_senders` decides (reject exits 77)")
def known_sender(ctx: Context, facts: Facts, found: Found) -> Finding:
    user, policy = facts.sender_user, facts.settings.unknown_senders
    if user is not None and not user.disabled:
        kind = "technician" if user.is_technician else "requester"
        return hit(f"{user.email} is a known {kind}")
    state = "is a disabled user, treated as unknown" if user else "is not in the user table"
    outcome = "refused" if policy == "reject" else "accepted as a requester"
    return miss(f"{ctx.sender.address} {state}; unknown_senders={policy}: {outcome}")


# --- seed rule 1: the ticket it refers to -------------------------------------------------------


@rule(
    "ticket-reference",
    "the subject ends with a ticket number (`bare_number_references`); else In-Reply-To/References carry our "
    "token for one",
)
def ticket_reference(ctx: Context, facts: Facts, found: Found) -> Finding:
    if facts.reference is None or facts.reference_source in ("thread", "plus-address"):
        bare = "on" if facts.settings.bare_number_references else "off"
        return miss(f"the subject does not end with a ticket number (bare_number_references={bare})")
    if facts.reference_source == "token":
        return hit(
            f"the subject names no ticket, but In-Reply-To/References carry our token for ticket #{facts.reference}"
        )
    return hit(f"the subject ends with a reference to ticket #{facts.reference}")


def thread_message_ids(message: ParsedMessage) -> tuple[str, ...]:
    """The Message-IDs a reply names, nearest first: In-Reply-To, then References from the last. Bounded: a
    hostile References: can list thousands, and only the last MAX_THREAD_IDS are looked up."""
    ids = (*message.in_reply_to, *reversed(message.references))
    own = message.message_id
    return tuple(mid for mid in dict.fromkeys(ids) if mid != own)[:MAX_THREAD_IDS]


def names_messages(ctx: Context, facts: Facts) -> bool:
    """thread-reference has something to look at: no other reference, and In-Reply-To/References."""
    return facts.reference_source in (None, "thread") and bool(ctx.message.in_reply_to or ctx.message.references)


@rule(
    "thread-reference",
    "the subject names no ticket, but In-Reply-To/References name a message stored on one (the mail that opened "
    "it, a comment's mail, a notification we sent)",
)
def thread_reference(ctx: Context, facts: Facts, found: Found) -> Finding:
    if facts.reference_source == "thread":
        return hit(f"In-Reply-To/References name a message stored on ticket #{facts.reference}")
    count = len(thread_message_ids(ctx.message))
    return miss(
        f"none of the {count} Message-ID(s) of In-Reply-To/References looked up (at most {MAX_THREAD_IDS}, the "
        "nearest) is a message stored on a ticket"
    )


@rule("ticket-exists", "that ticket exists (one merged into another: that other)")
def ticket_exists(ctx: Context, facts: Facts, found: Found) -> Finding:
    if facts.ticket is None:
        return miss(f"there is no ticket #{facts.reference}")
    if facts.merged_from is not None:
        return hit(
            f"ticket #{facts.merged_from} was merged into ticket #{facts.ticket.id} (status {facts.ticket.status}): "
            "the message goes there"
        )
    return hit(f"ticket #{facts.ticket.id} exists (status {facts.ticket.status})")


# --- seed rule 2: who may update it (any one grant will do) ---------------------------------------


@rule(
    "sender-is-participant",
    "the sender is the ticket's requester, its assigned technician, or a Cc participant (who replies like the "
    "requester)",
)
def sender_is_participant(ctx: Context, facts: Facts, found: Found) -> Finding:
    sender, user, ticket = ctx.sender.address, facts.sender_user, required(facts.ticket, "the ticket")
    if user is not None and user.disabled:
        return miss(f"{sender} is a disabled user, so no participant")
    if user is not None and sender == ticket.requester:
        return hit(f"{sender} is the requester of ticket #{ticket.id}")
    if user is not None and ticket.technician is not None and sender == ticket.technician:
        return hit(f"{sender} is the technician assigned to ticket #{ticket.id}")
    if sender in facts.participants:
        return hit(f"{sender} is a Cc participant of ticket #{ticket.id}: replies like the requester")
    if user is None:
        return miss(f"{sender} is not an enabled user nor a Cc participant of ticket #{ticket.id}")
    return miss(f"{sender} is neither the requester, the assigned technician nor a Cc participant")


@rule("sender-is-privileged-technician", "the sender is a technician with `normal` or `full` access")
def sender_is_privileged_technician(ctx: Context, facts: Facts, found: Found) -> Finding:
    user = facts.sender_user
    if user is None or user.disabled or not user.is_technician:
        return miss(f"{ctx.sender.address} is not an enabled technician")
    if user.access in PRIVILEGED_ACCESS:
        return hit(f"{user.email} is a technician with {user.access} help-desk access")
    return miss(f"{user.email} is a technician with only {user.access} help-desk access")


@rule("replies-unrestricted", "`restrict_replies` is off, so anyone may reply")
def replies_unrestricted(ctx: Context, facts: Facts, found: Found) -> Finding:
    if facts.settings.restrict_replies:
        return miss("restrict_replies is on: only the requester and technicians may reply")
    return hit("restrict_replies is off: anyone may reply to a ticket")


# --- a new ticket -------------------------------------------------------------------------------


@rule("refers-to", "a new ticket records the ticket our token named, which this sender may not update")
def refers_to(ctx: Context, facts: Facts, found: Found) -> Finding:
    ticket = required(facts.ticket, "the ticket our token named")
    return hit(
        f"our token names ticket #{ticket.id}, which this sender may not update: the new ticket records that it "
        "refers to it"
    )


# --- an update ----------------------------------------------------------------------------------


@rule(
    "reply-prefix",
    "the subject starts with a reply prefix (or the mail answers our notification or a message of the ticket), "
    "so quoted history is stripped",
)
def reply_prefix(ctx: Context, facts: Facts, found: Found) -> Finding:
    if has_reply_prefix(ctx.message.subject, facts.settings.reply_prefixes):
        return hit("the subject starts with a reply prefix: quoted history is stripped")
    if facts.reference_source == "token":
        return hit("no reply prefix, but it answers our notification (our token): quoted history is stripped")
    if facts.reference_source == "thread":
        return hit("no reply prefix, but it answers a message of the ticket (In-Reply-To): quoted history is stripped")
    return miss("the subject has no reply prefix: the whole body is kept")


@rule("reply-separator", "where the earliest reply separator cut the body")
def reply_separator(ctx: Context, facts: Facts, found: Found) -> Finding:
    cut = required(found.cut, "the reply cut")
    skipped = "".join(f"; {note}" for note in cut.skipped)
    if cut.separator is None:
        return miss(f"no reply separator cut the body{skipped}")
    return hit(f"kept the text above line {cut.line}, where {cut.separator!r} matched{skipped}")


@rule("reopen-on-reply", "a reply to a closed ticket reopens it (`reopen_on_reply`)")
def reopen_on_reply(ctx: Context, facts: Facts, found: Found) -> Finding:
    ticket, reopen = required(facts.ticket, "the ticket"), facts.settings.reopen_on_reply
    if ticket.status != "closed":
        return miss(f"ticket #{ticket.id} is {ticket.status}, nothing to reopen")
    state = "on: reopened" if reopen else "off: stays closed"
    return Finding(reopen, f"ticket #{ticket.id} is closed and reopen_on_reply is {state}")
