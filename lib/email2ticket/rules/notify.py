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

Automatic, held, ignored and noted mail never reaches these rules: only `create` and `update` do.
"""

from __future__ import annotations

from dataclasses import dataclass

from .decision import Context, Decision, Facts, Notice, RuleResult, TicketFacts


@dataclass(frozen=True)
class Plan:
    """The notification rules' verdicts and the notices they decided."""

    results: tuple[RuleResult, ...] = ()
    notices: tuple[Notice, ...] = ()
    auth_pending: bool = False  # the acknowledgement depends on a verdict the Context does not hold yet
    auth_needed: bool = False  # ... or on the one it holds


def own_addresses(ctx: Context, facts: Facts) -> frozenset[str]:
    """Our own addresses: configured, from [notifications], and the address this mail came to."""
    extra = {ctx.envelope.recipient.lower()} if ctx.envelope.recipient else set()
    return frozenset(facts.settings.own_addresses) | ctx.outbound.own_addresses | extra


def plan_notifications(ctx: Context, facts: Facts, decision: Decision) -> Plan:
    """The notifications a create or update sends; nothing for any other action, and no rule at all
    (no line in the reasons) where [notifications] is not configured."""
    if not ctx.outbound.enabled:
        return Plan()
    if decision.action == "create":
        return _acknowledge(ctx, facts)
    if decision.action == "update" and facts.ticket is not None:
        return _update_notices(ctx, facts, decision, facts.ticket)
    return Plan()


def _acknowledge(ctx: Context, facts: Facts) -> Plan:
    name, settings, recipient = "acknowledge", facts.settings, ctx.sender.address or ""
    refused = _refusal(ctx, facts, recipient)
    if refused is not None:
        return Plan((RuleResult(name, False, refused),))
    if ctx.auth is None:
        why = "waits for the sender verification verdict (a forged sender must not get an auto-reply)"
        return Plan((RuleResult(name, False, why),), auth_pending=True, auth_needed=True)
    failed = [e.describe() for e in ctx.auth.evidence if e.method in ("dkim", "dmarc") and e.result == "fail"]
    if failed:
        why = f"the sender's DKIM/DMARC verdict is fail ({'; '.join(failed)}): no backscatter to a forged sender"
        return Plan((RuleResult(name, False, why),), auth_needed=True)
    if not ctx.auth.authenticated and not settings.acknowledge_unverified:
        why = f"{recipient} is not authenticated ({ctx.auth.reason}) and acknowledge_unverified is off"
        return Plan((RuleResult(name, False, why),), auth_needed=True)
    state = "authenticated" if ctx.auth.authenticated else "not authenticated, acknowledge_unverified is on"
    why = (
        f"acknowledge the new ticket to {recipient} ({state}; {facts.acknowledgements_to_sender_last_day} "
        f"to this address in 24 h, {facts.acknowledgements_last_hour} in total in the last hour)"
    )
    return Plan((RuleResult(name, True, why),), (Notice("acknowledgement", recipient),), auth_needed=True)


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


def _update_notices(ctx: Context, facts: Facts, decision: Decision, ticket: TicketFacts) -> Plan:
    results = (_rule_notify_technician(ctx, facts, ticket), _rule_notify_requester(ctx, facts, decision, ticket))
    notices = (
        Notice("technician-update", ticket.technician or "") if results[0].hit else None,
        Notice("requester-comment", ticket.requester) if results[1].hit else None,
    )
    return Plan(results, tuple(n for n in notices if n is not None))


def _rule_notify_technician(ctx: Context, facts: Facts, ticket: TicketFacts) -> RuleResult:
    name, technician = "notify-technician", ticket.technician
    if not facts.settings.notify_technician_of_updates:
        return RuleResult(name, False, "notify_technician_of_updates is off")
    why = _unreachable(ctx, facts, technician, "the assigned technician")
    if why is None and technician == ctx.sender.address:
        why = "the technician wrote this update"
    if why is not None:
        return RuleResult(name, False, why)
    return RuleResult(name, True, f"notify the assigned technician {technician} of this update")


def _rule_notify_requester(ctx: Context, facts: Facts, decision: Decision, ticket: TicketFacts) -> RuleResult:
    name, user = "notify-requester", facts.sender_user
    if not facts.settings.notify_requester_of_technician_comments:
        return RuleResult(name, False, "notify_requester_of_technician_comments is off")
    if user is None or not user.is_technician or ctx.sender.address == ticket.requester:
        return RuleResult(name, False, "the comment is not a technician's")
    if not decision.author_verified:
        return RuleResult(
            name, False, "the technician is not authenticated: an unverified comment is never relayed as theirs"
        )
    why = _unreachable(ctx, facts, ticket.requester, "the requester")
    if why is not None:
        return RuleResult(name, False, why)
    return RuleResult(name, True, f"send the authenticated technician's comment to the requester {ticket.requester}")


def _unreachable(ctx: Context, facts: Facts, address: str | None, who: str) -> str | None:
    if not address:
        return f"the ticket has no {who.removeprefix('the ')}"
    if address in own_addresses(ctx, facts):
        return f"{who} {address} is one of our own addresses"
    if address in facts.bounced:
        return f"{who} {address} hard-bounced an earlier notification"
    return None
