"""Loop protection and notification rules as pure functions: every branch, without a database or a network.

The classification is built directly (signals/classify.py has its own tests); these check what the rules make of
it: hold, ignore, note, create with an acknowledgement or without, and the reason each gives.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from msgspec.structs import replace

from email2ticket.auth.verdict import Evidence, Verdict
from email2ticket.config.rule_settings import RuleSettings
from email2ticket.mail.envelope import Envelope
from email2ticket.mail.message import parse_message
from email2ticket.mail.subject import find_ticket_reference
from email2ticket.reply.extract import DEFAULT_SEPARATORS
from email2ticket.rules.chain import RULES, decide, identify_sender
from email2ticket.rules.decision import Context, Decision, Facts, Outbound, TicketFacts, UserFacts
from email2ticket.signals.bounce import BounceReport
from email2ticket.signals.classify import Classification, Signal

MAIL = Path(__file__).resolve().parents[1] / "fixtures" / "mail"
ALICE = UserFacts("alice@example.com")
BOB = UserFacts("bob@helpdesk.example", is_technician=True, access="normal")
TICKET = TicketFacts(1, "open", requester="alice@example.com", technician="bob@helpdesk.example", subject="Printer")
UNSIGNED = Verdict("fail", "headers", "the message has no DKIM-Signature and no trusted Authentication-Results header")
SIGNED = Verdict("pass", "dkim", "DKIM signature d=example.com verified", "example.com")
FORGED = Verdict(
    "fail", "dkim", "no DKIM signature verified", "example.com", (Evidence("dkim", "fail", "body hash mismatch"),)
)
ON = Outbound(enabled=True, own_addresses=frozenset({"helpdesk@example.org"}))
REPORT = BounceReport("hard", ("alice@example.com",), (), "RFC 3464 delivery-status report", "5.1.1")
AUTO = Signal("auto-submitted", "Auto-Submitted: auto-replied")


def run(
    name: str = "new_ticket.eml",
    cls: Classification | None = None,
    *,
    user: UserFacts | None = ALICE,
    auth: Verdict | None = UNSIGNED,
    outbound: Outbound = ON,
    release: str | None = None,
    settings: RuleSettings | None = None,
    **facts: object,
) -> Decision:
    message = parse_message((MAIL / name).read_bytes())
    envelope = Envelope("alice@example.com", "helpdesk@example.org")
    ctx = Context(
        message,
        envelope,
        identify_sender(message, envelope),
        auth=auth,
        classification=cls or Classification(),
        release=release,
        outbound=outbound,
    )
    rule_settings = settings or RuleSettings()
    reference = find_ticket_reference(message.subject, bare_numbers=True)
    base = Facts(rule_settings, DEFAULT_SEPARATORS, user, reference)
    return decide(ctx, replace(base, **facts))  # type: ignore[arg-type]


def why(decision: Decision, rule: str) -> str:
    return next(r.why for r in decision.results if r.name == rule)


def hit(decision: Decision, rule: str) -> bool:
    return next(r.hit for r in decision.results if r.name == rule)


def test_every_rule_these_decisions_name_is_documented() -> None:
    documented = {rule.name for rule in RULES}
    decisions = [
        run(),
        run(cls=Classification(own=Signal("loop-header", "X-Email2ticket-Loop: example.org"))),
        run(cls=Classification(automatic=(AUTO,))),
        run(cls=Classification(bounce=REPORT)),
        run(cls=Classification(bounce=REPORT, bounce_ticket=1), ticket=TICKET),
        run("reply_outlook_requester.eml", ticket=TICKET),
    ]
    assert {r.name for d in decisions for r in d.results} <= documented


# --- what stops a message --------------------------------------------------------------------------


def test_own_mail_is_ignored_and_spam_is_held() -> None:
    own = run(cls=Classification(own=Signal("own-message-id", "a token of ours for ticket #4")))
    assert (own.action, own.held_by, int(own.exit_code)) == ("ignore", "own-mail", 0)
    spam = run(cls=Classification(spam=Signal("spam-header", "X-Spam-Flag: YES")))
    assert (spam.action, spam.held_by, spam.ticket) == ("hold", "spam-flag", None)
    released = run(cls=Classification(spam=Signal("spam-header", "X-Spam-Flag: YES")), release="spam-flag")
    assert released.action == "create" and "released by the admin" in why(released, "spam-flag")


def test_automatic_mail_is_a_note_only_for_someone_who_may_update() -> None:
    cls = Classification(automatic=(AUTO,))
    note = run("reply_outlook_requester.eml", cls, ticket=replace(TICKET, status="closed"))
    assert (note.action, note.ticket, note.note_kind, note.reopen, note.notices) == ("note", 1, "automatic", False, ())
    stranger = run("reply_gmail_stranger.eml", cls, user=None, ticket=TICKET)
    assert (stranger.action, stranger.held_by) == ("ignore", "automatic-mail")
    new = run(cls=cls)
    assert new.action == "ignore" and "auto-submitted" in why(new, "automatic-mail")
    refused = run(cls=cls, user=None, settings=RuleSettings(unknown_senders="reject"))
    assert (refused.action, int(refused.exit_code)) == ("ignore", 0)  # never 77: no bounce to a robot
    allowed = run(cls=replace(cls, allow_listed="@monitor.example"))
    assert allowed.action == "create" and not hit(allowed, "automatic-mail")
    assert run(cls=cls, release="automatic-mail").action == "create"


def test_bounces_become_notes_on_the_ticket_they_answer() -> None:
    report = BounceReport("hard", ("alice@example.com", "someone@else.example"), ("<e2t.1...>",), "report", "5.1.1")
    cls = Classification(bounce=report, bounce_ticket=1)
    both = frozenset({"alice@example.com", "someone@else.example"})  # notified: whom the named notifications went to
    note = run(cls=cls, ticket=TICKET, user=None, notified=both)
    assert (note.action, note.ticket, note.note_kind) == ("note", 1, "bounce")
    assert note.suppress == ("alice@example.com",)  # only a participant of the ticket: never an arbitrary address
    assert "5.1.1" in note.body
    # A report quoting alice's acknowledgement, with bob as the failed recipient: bob is not blocked.
    forged = run(cls=replace(cls, bounce=replace(report, recipients=("bob@helpdesk.example",))), ticket=TICKET,
                 notified=frozenset({"alice@example.com"}))  # fmt: skip
    assert forged.action == "note" and forged.suppress == ()
    why_not = "the notification the report names went to alice@example.com, not to bob@helpdesk.example"
    assert why(forged, "hard-bounce") == f"{why_not}: nobody is blocked"
    assert f"Not acted on: {why_not}: nobody is blocked" in forged.body
    unknown = run(cls=cls, ticket=TICKET)  # no notification of ours was sent with that Message-ID
    assert unknown.suppress == () and "no notification of ours was sent" in why(unknown, "hard-bounce")
    given_up = run(cls=replace(cls, bounce=replace(report, status="4.4.1")), ticket=TICKET)
    assert given_up.action == "note" and given_up.suppress == () and "gave up" in why(given_up, "hard-bounce")
    soft = run(cls=replace(cls, bounce=replace(report, kind="soft", status="4.2.2")), ticket=TICKET)
    assert soft.action == "note" and soft.suppress == ()
    unlinked = run(cls=Classification(bounce=report))
    assert (unlinked.action, unlinked.held_by) == ("ignore", "bounce")
    gone = run(cls=cls, ticket=None)
    assert gone.action == "ignore" and "gone" in why(gone, "bounce-linked")


def test_flood_limit() -> None:
    settings = RuleSettings(max_new_tickets_per_sender_per_hour=3)
    assert run(settings=settings, sender_new_tickets_last_hour=2).action == "create"
    held = run(settings=settings, sender_new_tickets_last_hour=3)
    assert (held.action, held.held_by) == ("hold", "sender-flood")
    assert run(settings=replace(settings, max_new_tickets_per_sender_per_hour=0), sender_new_tickets_last_hour=99)
    exempt = run(
        cls=Classification(allow_listed="alice@example.com"), settings=settings, sender_new_tickets_last_hour=9
    )
    assert exempt.action == "create"
    # A reply is never held: the limit counts new tickets.
    assert run("reply_outlook_requester.eml", settings=settings, ticket=TICKET, sender_new_tickets_last_hour=9)


def test_a_token_reference_the_sender_may_not_use_is_recorded_on_the_new_ticket() -> None:
    decision = run("reply_gmail_stranger.eml", user=None, ticket=TICKET, reference=1, reference_source="token")
    assert (decision.action, decision.refers_to) == ("create", 1)
    assert "refers to it" in why(decision, "refers-to")
    allowed = run("followup_without_prefix.eml", ticket=TICKET, reference=1, reference_source="token")
    assert allowed.action == "update" and "our token" in why(allowed, "ticket-reference")
    assert hit(allowed, "reply-prefix")  # answering our notification is a reply: quoted history goes


# --- acknowledgements --------------------------------------------------------------------------------


def test_a_new_ticket_is_acknowledged() -> None:
    decision = run()
    assert [(n.kind, n.recipient) for n in decision.notices] == [("acknowledgement", "alice@example.com")]
    assert decision.auth_needed and not decision.auth_pending


def test_the_acknowledgement_waits_for_the_verdict() -> None:
    pending = run(auth=None)
    assert pending.auth_pending and pending.notices == ()
    assert "waits for the sender verification" in why(pending, "acknowledge")


@pytest.mark.parametrize(
    ("overrides", "settings", "expected"),
    [
        ({}, RuleSettings(acknowledge_new_tickets=False), "acknowledge_new_tickets is off"),
        ({"bounced": frozenset({"alice@example.com"})}, None, "hard-bounced"),
        ({"acknowledgements_to_sender_last_day": 20}, None, "max_autoreplies_per_day=20"),
        ({"acknowledgements_last_hour": 200}, None, "max_autoreplies_per_hour=200"),
        ({}, RuleSettings(own_addresses=("alice@example.com",)), "one of our own addresses"),
        ({}, RuleSettings(acknowledge_unverified=False), "acknowledge_unverified is off"),
    ],
)
def test_no_acknowledgement_when(overrides: dict[str, object], settings: RuleSettings | None, expected: str) -> None:
    decision = run(settings=settings, **overrides)
    assert decision.action == "create" and decision.notices == ()
    assert expected in why(decision, "acknowledge")


def test_limits_of_zero_mean_no_limit_and_signed_senders_pass_acknowledge_unverified() -> None:
    settings = RuleSettings(max_autoreplies_per_day=0, max_autoreplies_per_hour=0, acknowledge_unverified=False)
    decision = run(settings=settings, auth=SIGNED, acknowledgements_to_sender_last_day=500)
    assert len(decision.notices) == 1


def test_no_acknowledgement_to_a_forged_sender_or_without_notifications() -> None:
    forged = run(auth=FORGED)
    assert forged.notices == () and "DKIM/DMARC verdict is fail" in why(forged, "acknowledge")
    off = run(outbound=Outbound())
    assert off.notices == () and not any(r.name == "acknowledge" for r in off.results)
    assert not off.auth_needed  # no notification: no reason to ask DNS


# --- notifications of updates ----------------------------------------------------------------------------


def test_the_technician_hears_of_a_requester_update() -> None:
    settings = RuleSettings(notify_technician_of_updates=True)
    decision = run("reply_outlook_requester.eml", settings=settings, ticket=TICKET)
    assert [(n.kind, n.recipient) for n in decision.notices] == [("technician-update", "bob@helpdesk.example")]
    off = run("reply_outlook_requester.eml", ticket=TICKET)
    assert off.notices == () and why(off, "notify-technician") == "notify_technician_of_updates is off"
    unassigned = run("reply_outlook_requester.eml", settings=settings, ticket=replace(TICKET, technician=None))
    assert unassigned.notices == () and "no assigned technician" in why(unassigned, "notify-technician")


def test_only_an_authenticated_technicians_comment_reaches_the_requester() -> None:
    settings = RuleSettings(notify_requester_of_technician_comments=True)
    verified = run("reply_technician.eml", user=BOB, auth=SIGNED, settings=settings, ticket=TICKET)
    assert verified.action == "update" and verified.author_verified
    assert [(n.kind, n.recipient) for n in verified.notices] == [("requester-comment", "alice@example.com")]
    relaxed = replace(settings, sender_verification="off")
    unverified = run("reply_technician.eml", user=BOB, auth=None, settings=relaxed, ticket=TICKET)
    assert unverified.action == "update" and unverified.notices == ()
    assert "never relayed" in why(unverified, "notify-requester")
