"""One decision on its way down the chain, and the named steps a verdict leads to.

rules/chain.py holds the chain as a table: each row a rule, when a decision consults it, and what follows
its verdict. This module is that last column's vocabulary - stop here (refuse, duplicate, hold or ignore,
a note on a ticket, defer), grant the right to update, cut the reply - and `conclude()`, the create or update
a walk comes to when no row stopped it. `Walk` is the running record: the verdicts so far, what they found
for later rules (rules/base.py's `Found`), and whether seed rule 2 granted the update. It is mutable, and
lives only inside one `decide()`; the rules themselves stay pure.

The two places where the chain branches rather than runs straight down live here as small functions: a grant
that needs an authenticated sender consults `sender-authenticated` on the spot (once a decision, for the
first grant that needs it), and a bounce ends with bounce-linked or hard-bounce.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from msgspec import Struct, field
from msgspec.structs import replace

from ..exits import ExitCode
from ..mail.subject import clean_subject
from ..reply.extract import extract_reply
from .auth import needs_authentication, participant_privilege, sender_authenticated, unverified_sender
from .base import NOTHING_FOUND, Found, Privilege, Rule, required
from .decision import Context, Decision, Facts, RuleResult
from .limits import left_out
from .loop import automatic_mail, bounce, signals, suppressible
from .notify import acknowledge, acknowledgement_needs_verdict, notices
from .people import cc_participants, new_participants
from .ticket import refers_to, reopen_on_reply


class Walk(Struct):
    """One decision's verdicts so far and what they found."""

    ctx: Context
    facts: Facts
    results: list[RuleResult] = field(default_factory=list)
    found: Found = NOTHING_FOUND
    granted: bool = False  # seed rule 2 held: the sender may update the referenced ticket

    def verdict(self, rule: Rule) -> RuleResult | None:
        """The rule's verdict in this decision; None: not consulted (a rule is consulted at most once)."""
        return next((result for result in self.results if result.name == rule.name), None)

    def hit(self, rule: Rule) -> bool:
        result = self.verdict(rule)
        return result is not None and result.hit

    def consult(self, rule: Rule) -> RuleResult:
        result = rule.check(self.ctx, self.facts, self.found)
        self.results.append(result)
        return result

    @property
    def withheld(self) -> bool:
        """A grant held but wanted an authenticated sender, and the sender is not one (or not yet known to be)."""
        return not self.granted and self.found.privilege is not None

    @property
    def auth_needed(self) -> bool:
        """A grant consulted the sender verification verdict."""
        return self.found.privilege is not None


# What follows a verdict: a Decision ends the walk there, None goes on down the table.
Then = Callable[[Walk, RuleResult], Decision | None]


def go_on(walk: Walk, result: RuleResult) -> Decision | None:
    return None


def on_hit(action: Literal["hold", "ignore"], reason: str) -> Then:
    """A hit keeps the message raw without touching a ticket: exit 0, and `messages release` delivers it."""

    def then(walk: Walk, result: RuleResult) -> Decision | None:
        return _stop(walk, action, result.name, reason) if result.hit else None

    return then


def refuse_without_sender(walk: Walk, result: RuleResult) -> Decision | None:
    if result.hit:
        return None
    return _refuse(walk, ExitCode.DATAERR, "no sender: the message has no From: address and no envelope sender")


def duplicate(walk: Walk, result: RuleResult) -> Decision | None:
    earlier = walk.facts.earlier
    if not result.hit or earlier is None:
        return None
    return Decision("duplicate", ExitCode.OK, tuple(walk.results), ticket=earlier.ticket)


def only_a_bounce_without_sender(walk: Walk, result: RuleResult) -> Decision | None:
    """has-sender lets a bounce from <> through; past the loop protections only a released one is left."""
    if result.hit or walk.ctx.sender.address is not None:
        return None
    return _refuse(walk, ExitCode.DATAERR, "no sender: only a bounce may come without one")


def note_unless_hard(walk: Walk, result: RuleResult) -> Decision | None:
    """A report of our notification is a note on its ticket; a hard one first passes hard-bounce."""
    if not result.hit:
        reason = "a delivery failure report that answers no notification of ours"
        return _stop(walk, "ignore", bounce.name, reason)
    if required(signals(walk.ctx).bounce, "a bounce report").kind == "hard":
        return None
    return _bounce_note(walk, ())


def note_hard_bounce(walk: Walk, result: RuleResult) -> Decision | None:
    """A note on the ticket; a hit stops notifying the participants that failed."""
    if not result.hit:  # the note says why nobody was blocked (a forged report, or a real one for someone else)
        return _bounce_note(walk, (), f"Not acted on: {result.why}")
    return _bounce_note(walk, suppressible(walk.ctx, walk.facts))


def refuse_unknown(walk: Walk, result: RuleResult) -> Decision | None:
    """unknown_senders=reject refuses an unknown sender (77)."""
    if result.hit or walk.facts.settings.unknown_senders != "reject":
        return None
    if walk.hit(automatic_mail):  # refusing it would send a bounce to a robot: the next loop
        return _stop(walk, "ignore", automatic_mail.name, "automatic mail from an unknown sender")
    return _refuse(walk, ExitCode.NOPERM, f"sender {walk.ctx.sender.address} is not a help-desk user")


def grant(privilege: Privilege) -> Then:
    """Seed rule 2: a hit grants the right to update (subject to sender verification); the next grant is skipped."""

    def then(walk: Walk, result: RuleResult) -> Decision | None:
        if result.hit:
            _grant(walk, privilege)
        return None

    return then


def grant_as_participant(walk: Walk, result: RuleResult) -> Decision | None:
    """The participant rule grants the requester's privilege, else the assigned technician's."""
    if result.hit:
        _grant(walk, participant_privilege(walk.ctx, walk.facts))
    return None


def _grant(walk: Walk, privilege: Privilege) -> None:
    if not needs_authentication(privilege, walk.facts.settings):
        walk.granted = True
        return
    auth = walk.verdict(sender_authenticated)
    if auth is None:  # consulted once a decision, for the first grant that needs it
        walk.found = replace(walk.found, privilege=privilege)
        auth = walk.consult(sender_authenticated)
    walk.granted = auth.hit


def settle_gate(walk: Walk, result: RuleResult) -> Decision | None:
    """Seed rule 2 has spoken: a DNS temperror that decided it defers (75); automatic mail stops here, as a note
    on the ticket its sender may update, else ignored (never a new ticket, never a bounce)."""
    ctx, ticket = walk.ctx, walk.facts.ticket
    walk.found = replace(walk.found, author_verified=walk.auth_needed and result.hit, updating=walk.granted)
    if walk.withheld and ticket is not None and ctx.auth is not None and ctx.auth.result == "temperror":
        reason = (
            f"could not verify the sender {ctx.sender.address}, on which updating ticket #{ticket.id} "
            f"depends: {ctx.auth.reason}; try again later"
        )
        return Decision("defer", ExitCode.TEMPFAIL, tuple(walk.results), status_reason=reason)
    if not walk.hit(automatic_mail):
        return None
    if walk.granted and ticket is not None:
        body, results = ctx.message.text, tuple(walk.results)
        return Decision("note", ExitCode.OK, results, ticket=ticket.id, body=body, note_kind="automatic")
    reason = "automatic mail that may not update a ticket; kept, never answered"
    return _stop(walk, "ignore", automatic_mail.name, reason)


def cut_reply(walk: Walk, result: RuleResult) -> Decision | None:
    """A reply prefix: the quoted history goes, where the earliest separator cuts (reply-separator says where)."""
    if result.hit:
        walk.found = replace(walk.found, cut=extract_reply(walk.ctx.message, walk.facts.separators))
    return None


# --- how a walk ends ----------------------------------------------------------------------------


def conclude(walk: Walk) -> Decision:
    """No row stopped the message: it updates the ticket seed rule 2 granted, else opens a new one; with the
    notifications the rules decided, and whether they or the grant wait for the sender verification verdict."""
    decision = with_auth(walk, _update(walk) if walk.granted else _create(walk))
    ctx, facts = walk.ctx, walk.facts
    if ctx.message.over_limits:  # only a released message gets this far over its limits
        decision = replace(decision, limit_note=left_out(ctx.message.over_limits))
    ack_needs_auth = walk.verdict(acknowledge) is not None and acknowledgement_needs_verdict(ctx, facts)
    if walk.hit(cc_participants):
        decision = replace(decision, participants=new_participants(ctx, facts, walk.granted)[0])
    return replace(
        decision,
        notices=notices(ctx, facts, walk.hit),
        auth_needed=decision.auth_needed or ack_needs_auth,
        auth_pending=decision.auth_pending or (ack_needs_auth and ctx.auth is None),
    )


def with_auth(walk: Walk, decision: Decision) -> Decision:
    """Record how sender verification took part in a decision (nowhere, for one that stopped before seed rule 2)."""
    return replace(
        decision,
        auth_needed=walk.auth_needed,
        auth_pending=walk.auth_needed and walk.ctx.auth is None,
        author_verified=walk.found.author_verified,
    )


def _update(walk: Walk) -> Decision:
    ctx, facts, cut = walk.ctx, walk.facts, walk.found.cut
    return Decision(
        "update",
        ExitCode.OK,
        tuple(walk.results),
        ticket=required(facts.ticket, "the ticket to update").id,
        body=cut.text if cut is not None else ctx.message.text,
        reopen=walk.hit(reopen_on_reply),
        create_sender=facts.sender_user is None,
    )


def _create(walk: Walk) -> Decision:
    ctx, facts, settings = walk.ctx, walk.facts, walk.facts.settings
    subject = clean_subject(
        ctx.message.subject,
        reply_prefixes=settings.reply_prefixes,
        forward_prefixes=settings.forward_prefixes,
        bare_numbers=settings.bare_number_references,
    )
    return Decision(
        "create",
        ExitCode.OK,
        tuple(walk.results),
        subject=subject,
        body=ctx.message.text,
        create_sender=facts.sender_user is None,
        unverified_sender=walk.hit(unverified_sender),
        refers_to=facts.ticket.id if walk.hit(refers_to) and facts.ticket is not None else None,
    )


def _bounce_note(walk: Walk, suppress: tuple[str, ...], remark: str = "") -> Decision:
    report = required(signals(walk.ctx).bounce, "a bounce report")
    ticket = required(walk.facts.ticket, "the ticket the bounce names")
    remark = f"\n{remark}" if remark else ""
    body = f"Delivery failure of a notification: {report.describe()}{remark}\n\n{walk.ctx.message.text}".rstrip()
    results = tuple(walk.results)
    return Decision("note", ExitCode.OK, results, ticket=ticket.id, body=body, note_kind="bounce", suppress=suppress)


def _stop(walk: Walk, action: Literal["hold", "ignore"], held_by: str, reason: str) -> Decision:
    """Hold or ignore: kept raw, exit 0, no ticket touched."""
    return Decision(action, ExitCode.OK, tuple(walk.results), status_reason=reason, held_by=held_by)


def _refuse(walk: Walk, code: ExitCode, reason: str) -> Decision:
    return Decision("reject", code, tuple(walk.results), status_reason=reason)
