"""What a rule is: a name, a one-line description and one check, the same for every rule (Mailman 3 style).

Every rule of the chain (rules/chain.py) is a `Rule` object, so its name is written once: the name in the
reasons, in `email2ticket explain --rules` and in the README's rule table all come from it. Every rule is
checked the same way - `check(ctx, facts, found)`: the message on its way, what the store looked up, and
what this decision found so far that a rule needs (`Found`: the reply cut, the privilege at stake) - so the
chain can be a table of rules read top to bottom instead of an if-ladder that calls each its own way.

A rule is pure: it reads, it returns a verdict with a sentence, and the chain decides what a hit does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeVar

from msgspec import Struct

from .decision import Context, Facts, RuleResult

if TYPE_CHECKING:
    from ..reply.extract import ReplyCut

# The rights seed rule 2 grants (rules/auth.py says which of them need an authenticated sender).
Privilege = Literal["requester", "assigned-technician", "privileged-technician", "unrestricted-replies"]
RELEASED = "released by the admin (`messages release`): this check is skipped"
T = TypeVar("T")


class Found(Struct, frozen=True):
    """What the chain found during one decision that a later rule reads; the chain sets it, rules only read it.

    One value passed to every rule alike, rather than a parameter list per rule.
    """

    privilege: Privilege | None = None  # the first granted privilege that needed an authenticated sender
    cut: ReplyCut | None = None  # where the reply was cut, once reply-prefix hit
    author_verified: bool = False  # seed rule 2 granted the update to an authenticated sender
    updating: bool = False  # seed rule 2 has spoken and granted the update (set with author_verified)


NOTHING_FOUND = Found()


class Finding(NamedTuple):
    """A rule's verdict before the rule object puts its name on it."""

    hit: bool
    why: str


def hit(why: str) -> Finding:
    return Finding(True, why)


def miss(why: str) -> Finding:
    return Finding(False, why)


Judge = Callable[[Context, Facts, Found], Finding]


class Rule(Struct, frozen=True):
    """A named check. `releasable`: it stops a message, and an admin's `messages release` of that message turns
    it into a MISS (see rules/loop.py). `see`: the README section that tells more (a link in the rule table)."""

    name: str  # kebab-case, as it appears in the reasons
    description: str  # one line, as `explain --rules` and the README's rule table show it
    judge: Judge
    releasable: bool = False
    see: str = ""

    def check(self, ctx: Context, facts: Facts, found: Found = NOTHING_FOUND) -> RuleResult:
        if self.releasable and ctx.release == self.name:
            return RuleResult(self.name, False, RELEASED)
        finding = self.judge(ctx, facts, found)
        return RuleResult(self.name, finding.hit, finding.why)


def rule(name: str, description: str, *, releasable: bool = False, see: str = "") -> Callable[[Judge], Rule]:
    """Make the function below a `Rule` named `name`: `@rule("has-sender", "the message has a sender")`."""

    def make(judge: Judge) -> Rule:
        return Rule(name, description, judge, releasable, see)

    return make


def required(value: T | None, what: str) -> T:
    """Something the chain finds before it consults the rule that reads it (the ticket, the reply cut)."""
    if value is None:
        raise LookupError(f"a rule was consulted before the chain found {what}")
    return value
