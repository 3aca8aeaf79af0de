"""Loop protection: the rules that keep machines from talking to the help desk, and it to them.

A mailbox that answers mail will sooner or later answer an out-of-office robot, a bounce, a mailing
list or itself. signals/classify.py names the signals a message carries; the rules here decide what they
mean, each with its own name in the decision's reasons:

  own-mail        our own notification came back (loop header, or its own Message-ID is our token): ignore
  spam-flag       a trusted spam header marks the message: hold it for the admin
  bounce          a delivery failure report: a note on the ticket whose notification bounced, else ignore
  automatic-mail  auto-replies, lists, robots: a note on a ticket the sender may update, else ignore
  sender-flood    too many new tickets from one sender in an hour: hold the rest

Held and ignored mail is kept raw and exits 0: it is never bounced (a bounce to a robot is the next
loop) and `email2ticket messages release ID` delivers it as if it had just arrived, skipping exactly
the check that stopped it (Context.release).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Concatenate, Literal, ParamSpec, TypeAlias

from ..exits import ExitCode
from .decision import Context, Decision, Facts, RuleResult, TicketFacts

if TYPE_CHECKING:
    from ..signals.classify import Classification

P = ParamSpec("P")
StoppingRule: TypeAlias = Callable[Concatenate[Context, P], RuleResult]


def releasable(name: str) -> Callable[[StoppingRule[P]], StoppingRule[P]]:
    """A rule that stops a message: an admin's `messages release` turns it into a MISS for that message."""

    def wrap(rule: StoppingRule[P]) -> StoppingRule[P]:
        @functools.wraps(rule)
        def checked(ctx: Context, /, *args: P.args, **kwargs: P.kwargs) -> RuleResult:
            if ctx.release == name:
                return RuleResult(name, False, "released by the admin (`messages release`): this check is skipped")
            return rule(ctx, *args, **kwargs)

        return checked

    return wrap


@releasable("own-mail")
def rule_own_mail(ctx: Context, cls: Classification) -> RuleResult:
    if cls.own is None:
        return RuleResult("own-mail", False, "not our own mail (no loop header of ours, no Message-ID token of ours)")
    return RuleResult("own-mail", True, f"our own mail came back: {cls.own.describe()}; it never opens a ticket")


@releasable("spam-flag")
def rule_spam_flag(ctx: Context, cls: Classification) -> RuleResult:
    if cls.spam is None:
        return RuleResult("spam-flag", False, "no trusted spam header marks the message (spam_headers)")
    return RuleResult("spam-flag", True, f"marked as spam: {cls.spam.describe()}; held for the admin")


@releasable("bounce")
def rule_bounce(ctx: Context, cls: Classification) -> RuleResult:
    if cls.bounce is None:
        return RuleResult("bounce", False, "not a delivery failure report")
    return RuleResult("bounce", True, f"a delivery failure report: {cls.bounce.describe()}")


@releasable("automatic-mail")
def rule_automatic_mail(ctx: Context, cls: Classification) -> RuleResult:
    signals = ", ".join(signal.describe() for signal in cls.automatic)
    if not cls.automatic:
        return RuleResult("automatic-mail", False, "no automatic-mail signal: a person wrote it")
    if cls.allow_listed:
        return RuleResult(
            "automatic-mail", False, f"{signals}; but the sender is allowed ({cls.allow_listed} in allowed_senders)"
        )
    return RuleResult("automatic-mail", True, f"automatic mail: {signals}")


@releasable("sender-flood")
def rule_sender_flood(ctx: Context, cls: Classification, facts: Facts) -> RuleResult:
    limit, count = facts.settings.max_new_tickets_per_sender_per_hour, facts.sender_new_tickets_last_hour
    if cls.allow_listed:
        return RuleResult("sender-flood", False, f"the sender is allowed ({cls.allow_listed}): no flood limit")
    if limit == 0:
        return RuleResult("sender-flood", False, "max_new_tickets_per_sender_per_hour is 0: no limit")
    if count < limit:
        return RuleResult(
            "sender-flood", False, f"{count} new ticket(s) from this sender in the last hour (limit {limit})"
        )
    return RuleResult(
        "sender-flood",
        True,
        f"{ctx.sender.address} already opened {count} tickets in the last hour "
        f"(max_new_tickets_per_sender_per_hour={limit}); held for the admin",
    )


def rule_bounce_linked(ticket: int | None, facts: Facts) -> RuleResult:
    if ticket is None:
        return RuleResult("bounce-linked", False, "the report names no notification of ours (no valid token)")
    if facts.ticket is None:
        return RuleResult("bounce-linked", False, f"the report names our notification for ticket #{ticket}, gone")
    return RuleResult("bounce-linked", True, f"the report answers our notification for ticket #{ticket}")


# --- the decisions they lead to ------------------------------------------------------------------


def stop(results: list[RuleResult], action: Literal["hold", "ignore"], held_by: str, reason: str) -> Decision:
    """Hold or ignore: kept raw, exit 0, no ticket touched."""
    return Decision(action, ExitCode.OK, tuple(results), status_reason=reason, held_by=held_by)


def bounce_decision(ctx: Context, cls: Classification, facts: Facts, results: list[RuleResult]) -> Decision:
    """A bounce of our notification becomes a note on its ticket; a hard one stops notifying the address."""
    report = cls.bounce
    assert report is not None
    linked = rule_bounce_linked(cls.bounce_link, facts)
    results.append(linked)
    if not linked.hit or facts.ticket is None:
        return stop(results, "ignore", "bounce", "a delivery failure report that answers no notification of ours")
    suppress: tuple[str, ...] = ()
    if report.kind == "hard":
        participants = _suppressible(report.recipients, facts.ticket)
        hard = rule_hard_bounce(report.status, participants)
        results.append(hard)
        suppress = participants if hard.hit else ()
    body = f"Delivery failure of a notification: {report.describe()}\n\n{ctx.message.text}".rstrip()
    return Decision(
        "note", ExitCode.OK, tuple(results), ticket=facts.ticket.id, body=body, note_kind="bounce", suppress=suppress
    )


def rule_hard_bounce(status: str | None, participants: tuple[str, ...]) -> RuleResult:
    """A permanent failure blocks the address; one the MTA gave up on after 4.x.x retries does not: the
    mailbox may well be fine (a receiving server down for days), and blocking it is for good."""
    if status and not status.startswith("5"):
        why = f"the MTA gave up after temporary failures ({status}): noted, nobody is blocked"
        return RuleResult("hard-bounce", False, why)
    if not participants:
        return RuleResult("hard-bounce", False, "no failed recipient is a participant of the ticket: nobody is blocked")
    return RuleResult("hard-bounce", True, f"a permanent failure: no more notifications to {', '.join(participants)}")


def _suppressible(recipients: tuple[str, ...], ticket: TicketFacts) -> tuple[str, ...]:
    """Only a participant of the linked ticket is blocked: a report cannot silence an arbitrary address."""
    participants = {ticket.requester, ticket.technician}
    return tuple(address for address in recipients if address in participants)


def automatic_note(ctx: Context, ticket: TicketFacts, results: list[RuleResult]) -> Decision:
    return Decision("note", ExitCode.OK, tuple(results), ticket=ticket.id, body=ctx.message.text, note_kind="automatic")
