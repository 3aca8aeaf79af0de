"""The update-or-create decision as a pure function: every branch, without a database."""

from __future__ import annotations

from pathlib import Path

import pytest
from msgspec.structs import replace

from email2ticket.config.rule_settings import RuleSettings
from email2ticket.exits import ExitCode
from email2ticket.mail.envelope import Envelope
from email2ticket.mail.message import parse_message
from email2ticket.mail.subject import find_ticket_reference
from email2ticket.reply.extract import DEFAULT_SEPARATORS
from email2ticket.rules.chain import decide, identify_sender
from email2ticket.rules.decision import Context, EarlierDelivery, Facts, TicketFacts, UserFacts

MAIL = Path(__file__).resolve().parents[1] / "fixtures" / "mail"

ALICE = UserFacts("alice@example.com")
BOB_NORMAL = UserFacts("bob@helpdesk.example", is_technician=True, access="normal")
TICKET = TicketFacts(1, "open", requester="alice@example.com", technician=None)


def ctx_for(name: str, envelope: Envelope | None = None) -> Context:
    message = parse_message((MAIL / name).read_bytes())
    envelope = envelope or Envelope()
    return Context(message, envelope, identify_sender(message, envelope))


def facts_for(ctx: Context, **overrides: object) -> Facts:
    settings = overrides.pop("settings", RuleSettings())
    assert isinstance(settings, RuleSettings)
    reference = find_ticket_reference(ctx.message.subject, bare_numbers=settings.bare_number_references)
    base = Facts(settings=settings, separators=DEFAULT_SEPARATORS, reference=reference)
    return replace(base, **overrides)  # type: ignore[arg-type]


def names(decision_results: tuple[object, ...]) -> list[str]:
    return [r.name for r in decision_results]  # type: ignore[attr-defined]


def test_requester_reply_updates_and_strips_outlook_history() -> None:
    ctx = ctx_for("reply_outlook_requester.eml")
    decision = decide(ctx, facts_for(ctx, sender_user=ALICE, ticket=TICKET))
    assert decision.action == "update" and decision.ticket == 1 and decision.exit_code == ExitCode.OK
    assert decision.body == "It works again after the restart, thank you!\n\nAlice"
    hits = {r.name: r.hit for r in decision.results}
    assert hits["sender-is-participant"] and hits["reply-prefix"] and hits["reply-separator"]
    assert "sender-is-privileged-technician" not in hits  # the chain stops at the first rule that grants


def test_stranger_reply_opens_new_ticket_with_every_rule_recorded() -> None:
    ctx = ctx_for("reply_gmail_stranger.eml")
    decision = decide(ctx, facts_for(ctx, ticket=TICKET))
    assert decision.action == "create" and decision.ticket is None and decision.create_sender
    assert decision.subject == "Printer jam on the second floor"
    assert names(decision.results) == [
        "has-sender",
        "already-delivered",
        "message-id-reused",
        "own-mail",  # the loop protections (rules/loop.py), each a miss here
        "spam-flag",
        "bounce",
        "automatic-mail",
        "known-sender",
        "ticket-reference",
        "ticket-exists",
        "sender-is-participant",
        "sender-is-privileged-technician",
        "replies-unrestricted",
        "sender-authenticated",  # recorded on every create or update: here "not evaluated: not needed"
        "sender-flood",  # only a new ticket counts against the flood limit
        "queue",
        "cc-participants",  # a new ticket or an update: who else the mail involves (rules/people.py)
    ]
    assert all(r.reason().startswith(f"{r.name}: ") for r in decision.results)
    why = {r.name: r.why for r in decision.results}
    assert "restrict_replies" in why["replies-unrestricted"]
    assert why["sender-authenticated"].startswith("not evaluated: not needed")
    assert decision.body.startswith("I have the same problem on floor 3.")  # a new ticket keeps the full body
    assert "wrote:" in decision.body


def test_stranger_reply_updates_when_replies_unrestricted() -> None:
    ctx = ctx_for("reply_gmail_stranger.eml")
    facts = facts_for(ctx, ticket=TICKET, settings=RuleSettings(restrict_replies=False))
    decision = decide(ctx, facts)
    assert decision.action == "update" and decision.create_sender
    assert decision.body == "I have the same problem on floor 3."  # Gmail's wrapped attribution cut


@pytest.mark.parametrize(
    ("user", "action"),
    [
        (BOB_NORMAL, "update"),
        (replace(BOB_NORMAL, access="full"), "update"),
        (replace(BOB_NORMAL, access="limited"), "create"),
        (replace(BOB_NORMAL, access="none"), "create"),
        (replace(BOB_NORMAL, disabled=True), "create"),  # a departed technician keeps no rights
        (UserFacts("bob@helpdesk.example"), "create"),  # a requester, not a technician
    ],
)
def test_technician_access_levels(user: UserFacts, action: str) -> None:
    # The seed rules, without sender verification (tests/test_auth_rules.py covers it).
    ctx = ctx_for("reply_technician.eml")
    seed = RuleSettings(sender_verification="off")
    assert decide(ctx, facts_for(ctx, sender_user=user, ticket=TICKET, settings=seed)).action == action


def test_assigned_technician_with_limited_access_may_update() -> None:
    ctx = ctx_for("reply_technician.eml")
    limited = replace(BOB_NORMAL, access="limited")
    ticket = replace(TICKET, technician="bob@helpdesk.example")
    seed = RuleSettings(sender_verification="off")
    decision = decide(ctx, facts_for(ctx, sender_user=limited, ticket=ticket, settings=seed))
    assert decision.action == "update"
    assert "assigned" in next(r.why for r in decision.results if r.name == "sender-is-participant")


def test_disabled_requester_is_treated_as_unknown() -> None:
    ctx = ctx_for("reply_outlook_requester.eml")
    decision = decide(ctx, facts_for(ctx, sender_user=replace(ALICE, disabled=True), ticket=TICKET))
    assert decision.action == "create" and not decision.create_sender  # the user row exists already


def test_reference_to_missing_ticket_creates() -> None:
    ctx = ctx_for("reply_outlook_requester.eml")
    decision = decide(ctx, facts_for(ctx, sender_user=ALICE, ticket=None))
    assert decision.action == "create"
    assert next(r for r in decision.results if r.name == "ticket-exists").why == "there is no ticket #1"


def test_no_reply_prefix_keeps_whole_body() -> None:
    ctx = ctx_for("followup_without_prefix.eml")
    decision = decide(ctx, facts_for(ctx, sender_user=ALICE, ticket=TICKET))
    assert decision.action == "update"
    assert "This line is kept" in decision.body
    assert not next(r for r in decision.results if r.name == "reply-prefix").hit


def test_german_outlook_reply_stripped() -> None:
    ctx = ctx_for("reply_aw_german_outlook.eml")
    juergen = UserFacts("juergen@example.de")
    ticket = replace(TICKET, requester="juergen@example.de")
    decision = decide(ctx, facts_for(ctx, sender_user=juergen, ticket=ticket))
    assert decision.action == "update"
    assert decision.body == "Danke, jetzt funktioniert es wieder.\n\nGrüße\nJürgen"


@pytest.mark.parametrize(("reopen", "expected"), [(True, True), (False, False)])
def test_reply_to_closed_ticket_reopens_per_setting(reopen: bool, expected: bool) -> None:
    ctx = ctx_for("reply_outlook_requester.eml")
    facts = facts_for(
        ctx,
        sender_user=ALICE,
        ticket=replace(TICKET, status="closed"),
        settings=RuleSettings(reopen_on_reply=reopen),
    )
    decision = decide(ctx, facts)
    assert decision.action == "update" and decision.reopen is expected
    assert "reopen_on_reply" in next(r.why for r in decision.results if r.name == "reopen-on-reply")


def test_bare_number_setting() -> None:
    ctx = ctx_for("room_101.eml")
    assert facts_for(ctx).reference == 1
    strict = facts_for(ctx, settings=RuleSettings(bare_number_references=False))
    assert strict.reference is None
    decision = decide(ctx, strict)
    assert "bare_number_references=off" in next(r.why for r in decision.results if r.name == "ticket-reference")


def test_duplicate_short_circuits() -> None:
    ctx = ctx_for("new_ticket.eml")
    decision = decide(ctx, facts_for(ctx, earlier=EarlierDelivery(7, "create", 3)))
    assert decision.action == "duplicate" and decision.ticket == 3 and decision.exit_code == ExitCode.OK
    assert names(decision.results) == ["has-sender", "already-delivered"]


def test_message_id_reuse_is_reported_and_delivered() -> None:
    ctx = ctx_for("new_ticket.eml")
    decision = decide(ctx, facts_for(ctx, message_id_reused=True))
    assert decision.action == "create"
    assert next(r for r in decision.results if r.name == "message-id-reused").hit


def test_unknown_sender_rejected_by_policy() -> None:
    ctx = ctx_for("new_ticket.eml")
    decision = decide(ctx, facts_for(ctx, settings=RuleSettings(unknown_senders="reject")))
    assert decision.action == "reject" and decision.exit_code == ExitCode.NOPERM
    assert "unknown_senders=reject" in decision.results[-1].why
    known = decide(ctx, facts_for(ctx, sender_user=ALICE, settings=RuleSettings(unknown_senders="reject")))
    assert known.action == "create"


@pytest.mark.parametrize(
    ("envelope", "address", "source"),
    [
        (Envelope(sender="monitor@example.com"), "monitor@example.com", "envelope"),
        (Envelope(sender=""), None, None),  # the null sender is no sender
        (Envelope(), None, None),
    ],
)
def test_sender_falls_back_to_envelope(envelope: Envelope, address: str | None, source: str | None) -> None:
    ctx = ctx_for("no_from_header.eml", envelope)
    assert (ctx.sender.address, ctx.sender.source) == (address, source)
    decision = decide(ctx, facts_for(ctx))
    if address is None:
        assert decision.action == "reject" and decision.exit_code == ExitCode.DATAERR
        assert names(decision.results) == ["has-sender"]  # exits before any other rule
        assert ("null sender" in decision.results[0].why) == (envelope.sender == "")
    else:
        assert decision.action == "create"


def test_from_header_wins_over_envelope() -> None:
    ctx = ctx_for("new_ticket.eml", Envelope(sender="bounce-123@lists.example"))
    assert ctx.sender.address == "alice@example.com" and ctx.sender.source == "from"
