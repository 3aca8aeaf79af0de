"""sender_verification in the decision itself (pure): which privileges need an authenticated sender,
when the decision asks for a verdict, and what an unverified or undecidable sender gets."""

from __future__ import annotations

from pathlib import Path

import pytest
from msgspec.structs import replace

from email2ticket.auth.verdict import Evidence, Verdict
from email2ticket.config.rule_settings import RuleSettings
from email2ticket.exits import ExitCode
from email2ticket.mail.envelope import Envelope
from email2ticket.mail.message import parse_message
from email2ticket.mail.subject import find_ticket_reference
from email2ticket.reply.extract import DEFAULT_SEPARATORS
from email2ticket.rules.chain import RULES, decide, identify_sender
from email2ticket.rules.decision import Context, Decision, Facts, TicketFacts, UserFacts

MAIL = Path(__file__).resolve().parents[1] / "fixtures" / "mail"
ALICE = UserFacts("alice@example.com")
BOB = UserFacts("bob@helpdesk.example", is_technician=True, access="normal")
TICKET = TicketFacts(1, "open", requester="alice@example.com", technician=None)
PASS = Verdict(
    "pass",
    "dkim",
    "DKIM signature d=helpdesk.example s=sel verified and aligns with the From: domain helpdesk.example",
    "helpdesk.example",
    (Evidence("dkim", "pass", "signature verified", "helpdesk.example", "sel", "rsa-sha256"),),
)
FAIL = Verdict("fail", "headers", "the message has no DKIM-Signature and no trusted Authentication-Results header")
TEMPERROR = Verdict("temperror", "dkim", "a DKIM signature could not be checked: DNS timeout")


def run(name: str, user: UserFacts | None, verdict: Verdict | None, **settings: object) -> Decision:
    message = parse_message((MAIL / name).read_bytes())
    ctx = Context(message, Envelope(), identify_sender(message, Envelope()), auth=verdict)
    rule_settings = RuleSettings(**settings)  # type: ignore[arg-type]
    reference = find_ticket_reference(message.subject, bare_numbers=True)
    facts = Facts(rule_settings, DEFAULT_SEPARATORS, user, reference, TICKET)
    return decide(ctx, facts)


def reasons(decision: Decision) -> dict[str, str]:
    return {r.name: r.why for r in decision.results}


def test_privileged_technician_needs_a_verdict_first() -> None:
    pending = run("reply_technician.eml", BOB, None)
    assert pending.auth_needed and pending.auth_pending  # the shell must verify, then decide again
    assert reasons(pending)["sender-authenticated"].startswith("not evaluated yet; needed for the right of a")
    verified = run("reply_technician.eml", BOB, PASS)
    assert verified.action == "update" and verified.author_verified and not verified.auth_pending
    assert reasons(verified)["sender-authenticated"].startswith("authenticated: DKIM signature d=helpdesk.example")


def test_unverified_technician_opens_a_flagged_ticket() -> None:
    decision = run("reply_technician.eml", BOB, FAIL)
    assert (decision.action, decision.exit_code, decision.unverified_sender) == ("create", ExitCode.OK, True)
    assert not decision.author_verified
    assert decision.subject == "Printer jam on the second floor"  # the claimed reference is dropped
    why = reasons(decision)
    assert why["sender-authenticated"].startswith("not authenticated: the message has no DKIM-Signature")
    assert "opens a new ticket flagged as from an unverified sender" in why["unverified-sender"]
    assert decision.summary() == "create new ticket flagged as from an unverified sender"


def test_assigned_technician_branch_needs_authentication_too() -> None:
    message = parse_message((MAIL / "reply_technician.eml").read_bytes())
    limited = replace(BOB, access="limited")
    assigned = replace(TICKET, technician="bob@helpdesk.example")
    for verdict, action in ((FAIL, "create"), (PASS, "update")):
        ctx = Context(message, Envelope(), identify_sender(message, Envelope()), auth=verdict)
        decision = decide(ctx, Facts(RuleSettings(), DEFAULT_SEPARATORS, limited, 1, assigned))
        assert decision.action == action
        assert "assigned technician's right" in reasons(decision)["sender-authenticated"]
    # Both technician privileges at once: the verdict is consulted (and recorded) once.
    ctx = Context(message, Envelope(), identify_sender(message, Envelope()), auth=FAIL)
    both = decide(ctx, Facts(RuleSettings(), DEFAULT_SEPARATORS, BOB, 1, assigned))
    assert [r.name for r in both.results].count("sender-authenticated") == 1
    assert both.action == "create" and both.unverified_sender


def test_requester_needs_no_verdict_unless_all() -> None:
    plain = run("reply_outlook_requester.eml", ALICE, None)
    assert plain.action == "update" and not plain.auth_needed and not plain.author_verified
    assert reasons(plain)["sender-authenticated"] == (
        "not evaluated: not needed (no privilege in this decision depends on who the sender really is)"
    )
    assert run("reply_outlook_requester.eml", ALICE, None, sender_verification="all").auth_pending
    unverified = run("reply_outlook_requester.eml", ALICE, FAIL, sender_verification="all")
    assert unverified.action == "create" and unverified.unverified_sender
    assert "a requester's reply" in reasons(unverified)["sender-authenticated"]
    assert run("reply_outlook_requester.eml", ALICE, PASS, sender_verification="all").action == "update"


def test_off_is_the_seed_rules() -> None:
    decision = run("reply_technician.eml", BOB, None, sender_verification="off")
    assert decision.action == "update" and not decision.auth_needed
    assert reasons(decision)["sender-authenticated"] == "not evaluated: not needed (sender_verification=off)"


def test_unrestricted_replies_and_verification() -> None:
    # technicians: anyone may reply, so a failed (or undecidable) verdict changes only the flag.
    for verdict in (FAIL, TEMPERROR):
        decision = run("reply_technician.eml", BOB, verdict, restrict_replies=False)
        assert decision.action == "update" and not decision.author_verified and decision.auth_needed
    stranger = run("reply_gmail_stranger.eml", None, None, restrict_replies=False)
    assert stranger.action == "update" and not stranger.auth_needed
    # all: even then every update needs an authenticated sender.
    strict = run("reply_gmail_stranger.eml", None, FAIL, restrict_replies=False, sender_verification="all")
    assert strict.action == "create" and strict.unverified_sender


def test_temperror_defers_only_when_it_decides() -> None:
    decision = run("reply_technician.eml", BOB, TEMPERROR)
    assert (decision.action, decision.exit_code) == ("defer", ExitCode.TEMPFAIL)
    assert decision.status_reason.startswith("could not verify the sender bob@helpdesk.example, on which updating")
    assert "DNS failed temporarily" in reasons(decision)["sender-authenticated"]
    # A temperror for a sender who needs no verification is never even looked at.
    assert run("reply_outlook_requester.eml", ALICE, TEMPERROR).action == "update"


def test_limited_technician_without_assignment_never_needs_dns() -> None:
    limited = replace(BOB, access="limited")
    decision = run("reply_technician.eml", limited, None)
    assert decision.action == "create" and not decision.auth_needed and not decision.unverified_sender


@pytest.mark.parametrize("name", ["sender-authenticated", "unverified-sender"])
def test_new_rules_are_in_the_table(name: str) -> None:
    assert name in {rule.name for rule in RULES}
