"""Sender verification in the decision: which privileges need an authenticated sender, and the two rules that say so.

From: is trivially forged, and seed rule 2 (rules/ticket.py) hands out the right to update by From:
address. sender_verification narrows it: with `technicians` (the default) the technician privileges - the
assigned-technician branch of the participant rule and the privileged-technician rule - hold only for an
authenticated sender; with `all`, every update needs one; `off` trusts From: alone.

The verdict itself is data on the Context, computed by the shell (auth/); the chain consults
`sender-authenticated` only when a grant that needs it holds, so most mail never costs a DNS query, and
records "not evaluated: not needed" otherwise. A sender denied a privilege for want of authentication opens a
new ticket flagged as unverified (`unverified-sender`).
"""

from __future__ import annotations

from ..config.rule_settings import RuleSettings
from .base import Finding, Found, Privilege, hit, miss, required, rule
from .decision import Context, Facts

PRIVILEGE_WORDS: dict[Privilege, str] = {
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


def participant_privilege(ctx: Context, facts: Facts) -> Privilege:
    """Which branch of the participant rule holds: the requester's, the assigned technician's, else a Cc
    participant's, who replies like the requester (the technician's comes first: it needs more)."""
    ticket, sender = required(facts.ticket, "the ticket"), ctx.sender.address
    if sender != ticket.requester and ticket.technician is not None and sender == ticket.technician:
        return "assigned-technician"
    return "requester"


@rule(
    "sender-authenticated",
    "where a granted privilege needs it (`sender_verification`), the sender is authenticated; "
    "`not evaluated: not needed` otherwise",
    see="Sender verification",
)
def sender_authenticated(ctx: Context, facts: Facts, found: Found) -> Finding:
    mode = facts.settings.sender_verification
    if found.privilege is None:  # no grant of this decision depends on who the sender really is
        if mode == "off":
            return miss("not evaluated: not needed (sender_verification=off)")
        return miss("not evaluated: not needed (no privilege in this decision depends on who the sender really is)")
    need = f"needed for {PRIVILEGE_WORDS[found.privilege]} (sender_verification={mode})"
    if ctx.auth is None:
        return miss(f"not evaluated yet; {need}")
    return Finding(ctx.auth.authenticated, f"{ctx.auth.describe()}; {need}")


@rule("unverified-sender", "a privilege was withheld from an unauthenticated sender: a new ticket, flagged")
def unverified_sender(ctx: Context, facts: Facts, found: Found) -> Finding:
    ticket = required(facts.ticket, "the ticket")
    privilege: Privilege = required(found.privilege, "the withheld privilege")
    return hit(
        f"{ctx.sender.address} would have updated ticket #{ticket.id} with {PRIVILEGE_WORDS[privilege]} but is not "
        "authenticated: the message opens a new ticket flagged as from an unverified sender"
    )
