"""Loop protection: the rules that keep machines from talking to the help desk, and it to them.

A mailbox that answers mail will sooner or later answer an out-of-office robot, a bounce, a mailing
list or itself. signals/classify.py names the signals a message carries; the rules here decide what they
mean, each with its own name in the decision's reasons (what a hit does is the chain's table, rules/chain.py):

  own-mail        our own notification came back (loop header, or its own Message-ID is our token): ignore
  spam-flag       a trusted spam header marks the message: hold it for the admin
  bounce          a delivery failure report: a note on the ticket whose notification bounced, else ignore
  bounce-linked   ... the report names our notification for a ticket that exists
  hard-bounce     ... a permanent failure: that participant of the ticket is not notified again
  automatic-mail  auto-replies, lists, robots: a note on a ticket the sender may update, else ignore
  sender-flood    too many new tickets from one sender in an hour: hold the rest

Held and ignored mail is kept raw and exits 0: it is never bounced (a bounce to a robot is the next
loop) and `email2ticket messages release ID` delivers it as if it had just arrived, skipping exactly
the check that stopped it (Context.release): those rules are `releasable`, which rules/base.py honours
for every rule alike.
"""

from __future__ import annotations

from ..signals.classify import Classification
from .base import Finding, Found, hit, miss, required, rule
from .decision import Context, Facts


def signals(ctx: Context) -> Classification:
    """What signals/classify.py found; an unclassified message carries no signal."""
    return ctx.classification or Classification()


def suppressible(ctx: Context, facts: Facts) -> tuple[str, ...]:
    """Only the recipient of the notification the report names, and only while a participant of the linked ticket
    (its requester, technician or a Cc participant), is blocked: a report cannot silence an arbitrary address, nor
    (quoting an acknowledgement its forger received, with another failed recipient) the ticket's technician."""
    report = required(signals(ctx).bounce, "a bounce report")
    ticket = required(facts.ticket, "the ticket the bounce names")
    participants = {ticket.requester, ticket.technician, *facts.participants}
    return tuple(address for address in report.recipients if address in participants and address in facts.notified)


def not_suppressible(ctx: Context, facts: Facts) -> str:
    """Why a permanent failure blocks nobody: the failed recipient is not whom the notification went to, or not a
    participant of the ticket."""
    report = required(signals(ctx).bounce, "a bounce report")
    failed = ", ".join(report.recipients[:5]) or "no readable recipient"
    if not facts.notified:
        return f"no notification of ours was sent with the Message-ID the report names, so it cannot be about {failed}"
    if not facts.notified.intersection(report.recipients):
        return f"the notification the report names went to {', '.join(sorted(facts.notified))}, not to {failed}"
    return "no failed recipient is a participant of the ticket"


@rule(
    "own-mail",
    "our own notification came back (our loop header, or our token as its own Message-ID): `ignore`",
    releasable=True,
)
def own_mail(ctx: Context, facts: Facts, found: Found) -> Finding:
    own = signals(ctx).own
    if own is None:
        return miss("not our own mail (no loop header of ours, no Message-ID token of ours)")
    return hit(f"our own mail came back: {own.describe()}; it never opens a ticket")


@rule("spam-flag", "a trusted spam header (`spam_headers`) marks the message: `hold`", releasable=True)
def spam_flag(ctx: Context, facts: Facts, found: Found) -> Finding:
    spam = signals(ctx).spam
    if spam is None:
        return miss("no trusted spam header marks the message (spam_headers)")
    return hit(f"marked as spam: {spam.describe()}; held for the admin")


@rule(
    "bounce",
    "a delivery failure report (RFC 3464, or the non-standard forms of Exim, qmail, Exchange, Gmail, ...)",
    releasable=True,
)
def bounce(ctx: Context, facts: Facts, found: Found) -> Finding:
    report = signals(ctx).bounce
    if report is None:
        return miss("not a delivery failure report")
    return hit(f"a delivery failure report: {report.describe()}")


@rule("bounce-linked", "the report names our notification: an internal `note` on its ticket; otherwise `ignore`")
def bounce_linked(ctx: Context, facts: Facts, found: Found) -> Finding:
    ticket = signals(ctx).bounce_link
    if ticket is None:
        return miss("the report names no notification of ours (no valid token)")
    if facts.ticket is None:
        return miss(f"the report names our notification for ticket #{ticket}, gone")
    return hit(f"the report answers our notification for ticket #{ticket}")


@rule(
    "hard-bounce",
    "a permanent (5.x.x) failure: the ticket's participant that failed, if the notification the report names went "
    "to them, is not notified again",
)
def hard_bounce(ctx: Context, facts: Facts, found: Found) -> Finding:
    """A permanent failure blocks the address; one the MTA gave up on after 4.x.x retries does not: the
    mailbox may well be fine (a receiving server down for days), and blocking it is for good."""
    status = required(signals(ctx).bounce, "a bounce report").status
    if status and not status.startswith("5"):
        return miss(f"the MTA gave up after temporary failures ({status}): noted, nobody is blocked")
    participants = suppressible(ctx, facts)
    if not participants:
        return miss(f"{not_suppressible(ctx, facts)}: nobody is blocked")
    return hit(f"a permanent failure: no more notifications to {', '.join(participants)}")


@rule(
    "automatic-mail",
    "auto-replies, lists, robots (unless in `allowed_senders`): only ever a `note` on a ticket the sender may "
    "update, else `ignore`",
    releasable=True,
    see="Loop protection",
)
def automatic_mail(ctx: Context, facts: Facts, found: Found) -> Finding:
    cls = signals(ctx)
    if not cls.automatic:
        return miss("no automatic-mail signal: a person wrote it")
    described = ", ".join(signal.describe() for signal in cls.automatic)
    if cls.allow_listed:
        return miss(f"{described}; but the sender is allowed ({cls.allow_listed} in allowed_senders)")
    return hit(f"automatic mail: {described}")


@rule(
    "sender-flood",
    "more than `max_new_tickets_per_sender_per_hour` new tickets from this sender: `hold`",
    releasable=True,
)
def sender_flood(ctx: Context, facts: Facts, found: Found) -> Finding:
    limit, count = facts.settings.max_new_tickets_per_sender_per_hour, facts.sender_new_tickets_last_hour
    allowed = signals(ctx).allow_listed
    if allowed:
        return miss(f"the sender is allowed ({allowed}): no flood limit")
    if limit == 0:
        return miss("max_new_tickets_per_sender_per_hour is 0: no limit")
    if count < limit:
        return miss(f"{count} new ticket(s) from this sender in the last hour (limit {limit})")
    return hit(
        f"{ctx.sender.address} already opened {count} tickets in the last hour "
        f"(max_new_tickets_per_sender_per_hour={limit}); held for the admin"
    )
