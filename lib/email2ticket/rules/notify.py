"""Who is notified of a delivery: the rules that turn a create or update into outgoing notifications.

An acknowledgement of a new ticket is an auto-reply, and an auto-reply is how a help desk ends up in
a loop with a robot or reflects spam at a forged sender. So every acknowledgement passes these rules,
each named in the decision's reasons, and what they decide is sent only after the delivery commits
(outbound/send.py); a failure to send never fails the delivery.

  acknowledge              the requester of a new ticket, unless: acknowledgements are off or not
                           configured, the address is our own, it hard-bounced before, its DKIM/DMARC
                           verdict is fail, it is unauthenticated while acknowledge_unverified is off,
                           or a rate limit is reached (per address per day, overall per hour)
  notify-technician        the assigned technician, of an update that arrived by mail (optional)
  notify-requester         the requester, of an authenticated technician's comment made by mail (optional)
  notify-participants      the Cc participants, of the same comments (optional, notify_participants)

Automatic, held, ignored and noted mail never reaches these rules: only `create` and `update` do, and only
where [notifications] is configured (the chain's table, rules/chain.py, says so).
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Finding, Found, Rule, hit, miss, required, rule
from .decision import Context, Facts, Notice
from .people import header_addresses, our_addresses


def own_addresses(ctx: Context, facts: Facts) -> frozenset[str]:
    """Our own addresses: configured, from [notifications], the queues' and the address this mail came to."""
    return our_addresses(ctx, facts)


@rule(
    "acknowledge",
    "a new ticket is acknowledged to its requester, unless a protection says no (our own address, a hard "
    "bounce, a DKIM/DMARC fail, a rate limit, ...)",
    see="Notifications",
)
def acknowledge(ctx: Context, facts: Facts, found: Found) -> Finding:
    recipient = ctx.sender.address or ""
    refused = _refusal(ctx, facts, recipient)
    if refused is not None:
        return miss(refused)
    if ctx.auth is None:
        return miss("waits for the sender verification verdict (a forged sender must not get an auto-reply)")
    failed = [e.describe() for e in ctx.auth.evidence if e.method in ("dkim", "dmarc") and e.result == "fail"]
    if failed:
        return miss(f"the sender's DKIM/DMARC verdict is fail ({'; '.join(failed)}): no backscatter to a forged sender")
    if not ctx.auth.authenticated and not facts.settings.acknowledge_unverified:
        return miss(f"{recipient} is not authenticated ({ctx.auth.reason}) and acknowledge_unverified is off")
    state = "authenticated" if ctx.auth.authenticated else "not authenticated, acknowledge_unverified is on"
    return hit(
        f"acknowledge the new ticket to {recipient} ({state}; {facts.acknowledgements_to_sender_last_day} "
        f"to this address in 24 h, {facts.acknowledgements_last_hour} in total in the last hour)"
    )


def acknowledgement_needs_verdict(ctx: Context, facts: Facts) -> bool:
    """Whether `acknowledge` gets as far as the sender verification verdict (past the checks that cost nothing)."""
    return _refusal(ctx, facts, ctx.sender.address or "") is None


def _refusal(ctx: Context, facts: Facts, recipient: str) -> str | None:
    """Why no acknowledgement goes out, from what costs nothing to check; None: it may."""
    settings = facts.settings
    if not settings.acknowledge_new_tickets:
        return "acknowledge_new_tickets is off"
    if not recipient or "@" not in recipient:
        return "the sender has no address to reply to"
    if recipient in own_addresses(ctx, facts):
        return f"{recipient} is one of our own addresses: the help desk never writes to itself"
    if recipient in facts.bounced:
        return f"{recipient} hard-bounced an earlier notification (`notifications unblock` lifts it)"
    per_day, per_hour = settings.max_autoreplies_per_day, settings.max_autoreplies_per_hour
    if per_day and facts.acknowledgements_to_sender_last_day >= per_day:
        return (
            f"{recipient} got {facts.acknowledgements_to_sender_last_day} in 24 h (max_autoreplies_per_day={per_day})"
        )
    if per_hour and facts.acknowledgements_last_hour >= per_hour:
        return f"{facts.acknowledgements_last_hour} sent in the last hour (max_autoreplies_per_hour={per_hour})"
    return None


@rule(
    "notify-technician",
    "the assigned technician hears of each update by mail (`notify_technician_of_updates`)",
)
def notify_technician(ctx: Context, facts: Facts, found: Found) -> Finding:
    technician = required(facts.ticket, "the ticket").technician
    if not facts.settings.notify_technician_of_updates:
        return miss("notify_technician_of_updates is off")
    why = _unreachable(ctx, facts, technician, "the assigned technician")
    if why is None and technician == ctx.sender.address:
        why = "the technician wrote this update"
    if why is not None:
        return miss(why)
    return hit(f"notify the assigned technician {technician} of this update")


@rule(
    "notify-requester",
    "the requester gets an authenticated technician's comment (`notify_requester_of_technician_comments`)",
)
def notify_requester(ctx: Context, facts: Facts, found: Found) -> Finding:
    user, ticket = facts.sender_user, required(facts.ticket, "the ticket")
    if not facts.settings.notify_requester_of_technician_comments:
        return miss("notify_requester_of_technician_comments is off")
    if user is None or not user.is_technician or ctx.sender.address == ticket.requester:
        return miss("the comment is not a technician's")
    if not found.author_verified:
        return miss("the technician is not authenticated: an unverified comment is never relayed as theirs")
    why = _unreachable(ctx, facts, ticket.requester, "the requester")
    if why is not None:
        return miss(why)
    return hit(f"send the authenticated technician's comment to the requester {ticket.requester}")


@rule(
    "notify-participants",
    "the Cc participants get the comments the requester gets (`notify_participants`), never the acknowledgement",
)
def notify_participants(ctx: Context, facts: Facts, found: Found) -> Finding:
    if not facts.settings.notify_participants:
        return miss("notify_participants is off")
    if not facts.participants:
        return miss("the ticket has no Cc participants")
    if not facts.settings.notify_requester_of_technician_comments:
        return miss("the requester gets no comments (notify_requester_of_technician_comments is off), so nor do they")
    user, ticket = facts.sender_user, required(facts.ticket, "the ticket")
    if user is None or not user.is_technician or ctx.sender.address == ticket.requester:
        return miss("the comment is not a technician's")
    if not found.author_verified:
        return miss("the technician is not authenticated: an unverified comment is never relayed as theirs")
    recipients = participant_recipients(ctx, facts)
    if not recipients:
        return miss("every participant is the sender, one of our own addresses, got this mail already, or bounced")
    return hit(f"send the authenticated technician's comment to the participants {', '.join(recipients)}")


def participant_recipients(ctx: Context, facts: Facts) -> tuple[str, ...]:
    """The participants to notify, sorted: never our own addresses, never the sender of the mail notified about,
    nor whoever it was sent to already (To:/Cc:), nor an address that hard-bounced."""
    skip = our_addresses(ctx, facts) | facts.bounced | set(header_addresses(ctx.message)) | {ctx.sender.address}
    ticket = facts.ticket
    requester = ticket.requester if ticket is not None else None
    return tuple(sorted(a for a in facts.participants if a not in skip and a != requester))


def _unreachable(ctx: Context, facts: Facts, address: str | None, who: str) -> str | None:
    if not address:
        return f"the ticket has no {who.removeprefix('the ')}"
    if address in own_addresses(ctx, facts):
        return f"{who} {address} is one of our own addresses"
    if address in facts.bounced:
        return f"{who} {address} hard-bounced an earlier notification"
    return None


def notices(ctx: Context, facts: Facts, hits: Callable[[Rule], bool]) -> tuple[Notice, ...]:
    """The notifications the rules that hit decided, in the chain's order, to send once the delivery commits."""
    ticket = facts.ticket
    planned = (
        (acknowledge, Notice("acknowledgement", ctx.sender.address or "")),
        (notify_technician, Notice("technician-update", (ticket.technician or "") if ticket else "")),
        (notify_requester, Notice("requester-comment", ticket.requester if ticket else "")),
    )
    chosen = tuple(notice for rule_, notice in planned if hits(rule_))
    if hits(notify_participants):
        chosen += tuple(Notice("participant-comment", a) for a in participant_recipients(ctx, facts))
    return chosen
