"""The update-or-create decision: the chain of rules as one table, read top to bottom (Mailman 3 style).

This is the functional core. `decide()` takes plain data - the parsed message, the envelope and the
facts the store looked up (settings, the sender's user row, the referenced ticket, an earlier
delivery of the same message) - and walks `CHAIN`: for each row, whether this decision consults the
rule, and what follows its verdict (go on, or stop with a decision). The `Decision` it returns records
every rule it consulted, hit or miss. Delivery acts on that decision; `--dry-run --json` and `explain`
print the same record, so what an admin reads is exactly what the real delivery did. There is no second
explain path.

The table is also the one list of rules: `RULES`, `email2ticket explain --rules` and the README's rule
table (scripts/rule_table.py) are all read from it, in this order. The order of the rows is the order
of the reasons: first what the message is (a sender, a duplicate), then loop protection stops what
must never open a ticket (rules/loop.py), then the seed rules find the ticket it refers to and whether
the sender may update it, asking for sender verification only where a privilege depends on it
(rules/ticket.py, rules/auth.py), then a new ticket or an update, then who is notified (rules/notify.py).
The few places where the chain branches (a grant consults sender-authenticated on the spot; a bounce
ends in a note) are named steps in rules/walk.py. The data all of them share lives in rules/decision.py.
"""

from __future__ import annotations

from collections.abc import Callable

from msgspec import Struct

from ..mail.envelope import Envelope
from ..mail.message import ParsedMessage
from . import auth, filters, limits, loop, notify, people, routing, ticket
from .base import Rule
from .decision import Context, Decision, Facts, Sender
from .walk import (
    Then,
    Walk,
    conclude,
    cut_reply,
    duplicate,
    go_on,
    grant,
    grant_as_participant,
    note_hard_bounce,
    note_unless_hard,
    on_hit,
    only_a_bounce_without_sender,
    refuse_unknown,
    refuse_without_sender,
    settle_gate,
    with_auth,
)

# Whether a decision consults a row's rule, from what the walk found so far.
Guard = Callable[[Walk], bool]


def always(walk: Walk) -> bool:
    return True


def has_message_id(walk: Walk) -> bool:
    return bool(walk.ctx.message.message_id)


def over_a_limit(walk: Walk) -> bool:
    """Consulted only for a message over a structural limit: ordinary mail's record stays as it was."""
    return bool(walk.ctx.message.over_limits)


def is_bounce(walk: Walk) -> bool:
    return walk.hit(loop.bounce)


def is_hard_bounce(walk: Walk) -> bool:
    report = loop.signals(walk.ctx).bounce
    return walk.hit(loop.bounce_linked) and report is not None and report.kind == "hard"


def has_reference(walk: Walk) -> bool:
    return walk.facts.reference is not None


def not_yet_granted(walk: Walk) -> bool:
    """Seed rule 2 asks its grants in turn, and stops at the first that holds."""
    return has_reference(walk) and walk.facts.ticket is not None and not walk.granted


def creating(walk: Walk) -> bool:
    return not walk.granted


def updating(walk: Walk) -> bool:
    return walk.granted


def names_a_ticket_by_token(walk: Walk) -> bool:
    """Our token named a ticket this sender may not update: the new ticket records it."""
    return creating(walk) and walk.facts.reference_source == "token" and walk.facts.ticket is not None


def withheld_from_unverified(walk: Walk) -> bool:
    return walk.withheld and walk.ctx.auth is not None


def reply_has_prefix(walk: Walk) -> bool:
    return updating(walk) and walk.hit(ticket.reply_prefix)


def involves_reply_to(walk: Walk) -> bool:
    return people.involves_reply_to(walk.ctx, walk.facts)


def names_messages(walk: Walk) -> bool:
    return ticket.names_messages(walk.ctx, walk.facts)


def has_filters(walk: Walk) -> bool:
    return bool(walk.facts.routing.filters)


def involves_plus_address(walk: Walk) -> bool:
    return routing.involves_plus_address(walk.ctx, walk.facts)


def notifying_create(walk: Walk) -> bool:
    return walk.ctx.outbound.enabled and creating(walk)


def notifying_update(walk: Walk) -> bool:
    return walk.ctx.outbound.enabled and updating(walk) and walk.facts.ticket is not None


class Link(Struct, frozen=True):
    """One row: a rule, whether a decision consults it here, and what follows its verdict.

    A rule is consulted at most once a decision: sender-authenticated, which a grant consults on the spot
    when it needs an authenticated sender, is only consulted at its own row ("not needed") when no grant
    did; what follows it runs on its verdict either way.
    """

    rule: Rule
    when: Guard = always
    then: Then = go_on


SPAM = "marked as spam by a trusted spam header; held for the admin"
FLOOD = "too many new tickets from this sender in the last hour; held for the admin"
OWN = "our own notification came back; it never opens a ticket"
LIMITS = "the message breaks structural limits ([limits]); held for the admin"

CHAIN: tuple[Link, ...] = (
    # What the message is: a sender (else 65), not a copy of one delivered before.
    Link(ticket.has_sender, then=refuse_without_sender),
    Link(people.requester_from_reply_to, when=involves_reply_to),
    Link(ticket.already_delivered, then=duplicate),
    Link(ticket.message_id_reused, when=has_message_id),
    # What the message costs: over a structural limit, it is held before anything else reads it whole.
    Link(limits.message_limits, when=over_a_limit, then=on_hit("hold", LIMITS)),
    # Loop protection: what must never open a ticket stops here (rules/loop.py).
    Link(loop.own_mail, then=on_hit("ignore", OWN)),
    Link(loop.spam_flag, then=on_hit("hold", SPAM)),
    Link(loop.bounce, then=only_a_bounce_without_sender),
    Link(loop.bounce_linked, when=is_bounce, then=note_unless_hard),
    Link(loop.hard_bounce, when=is_hard_bounce, then=note_hard_bounce),
    Link(loop.automatic_mail),  # a hit is acted on once seed rule 2 has spoken (settle_gate)
    # The admin's postmaster filters: each match recorded; hold and ignore stop here too (rules/filters.py).
    Link(filters.filters, when=has_filters, then=filters.apply_filters),
    # The seed rules: the ticket the message refers to, and whether the sender may update it.
    Link(ticket.known_sender, then=refuse_unknown),
    Link(ticket.ticket_reference),
    Link(routing.plus_address, when=involves_plus_address),
    Link(ticket.thread_reference, when=names_messages),
    Link(ticket.ticket_exists, when=has_reference),
    Link(ticket.sender_is_participant, when=not_yet_granted, then=grant_as_participant),
    Link(ticket.sender_is_privileged_technician, when=not_yet_granted, then=grant("privileged-technician")),
    Link(ticket.replies_unrestricted, when=not_yet_granted, then=grant("unrestricted-replies")),
    Link(auth.sender_authenticated, then=settle_gate),
    # A new ticket...
    Link(loop.sender_flood, when=creating, then=on_hit("hold", FLOOD)),
    Link(ticket.refers_to, when=names_a_ticket_by_token),
    Link(auth.unverified_sender, when=withheld_from_unverified),
    Link(routing.queue, when=creating),  # a reply never moves a ticket (rules/routing.py)
    # ... or an update.
    Link(ticket.reply_prefix, when=updating, then=cut_reply),
    Link(ticket.reply_separator, when=reply_has_prefix),
    Link(ticket.reopen_on_reply, when=updating),
    # Either way (every stop came before): who else the mail involves becomes a participant (rules/people.py).
    Link(people.cc_participants),
    # Who hears of it, where [notifications] is configured (rules/notify.py).
    Link(notify.acknowledge, when=notifying_create),
    Link(notify.notify_technician, when=notifying_update),
    Link(notify.notify_requester, when=notifying_update),
    Link(notify.notify_participants, when=notifying_update),
)

# Every rule, in the order the chain consults them.
RULES: tuple[Rule, ...] = tuple(link.rule for link in CHAIN)


def identify_sender(message: ParsedMessage, envelope: Envelope) -> Sender:
    """From: first (normalised); without a usable one, the envelope sender unless it is the null sender."""
    if message.from_addresses:
        return Sender(message.from_addresses[0], "from")
    if envelope.sender:
        return Sender(envelope.sender, "envelope")
    return Sender(None, None)


def decide(ctx: Context, facts: Facts) -> Decision:
    """Walk the chain and return the decision with every rule consulted on the way."""
    walk = Walk(ctx, facts)
    for link in CHAIN:
        result = walk.verdict(link.rule)
        if result is None and link.when(walk):
            result = walk.consult(link.rule)
        stopped = link.then(walk, result) if result is not None else None
        if stopped is not None:
            return with_auth(walk, stopped)
    return routing.placement(walk.ctx, walk.facts, conclude(walk))
