"""The rules of participants, threading and robots, as pure functions (no database): each one's HIT and MISS.

thread-reference (rules/ticket.py), cc-participants and requester-from-reply-to (rules/people.py),
sender-is-participant for a Cc participant, notify-participants (rules/notify.py).
"""

from __future__ import annotations

from msgspec.structs import replace

from email2ticket.auth.verdict import Verdict
from email2ticket.config.rule_settings import RuleSettings
from email2ticket.mail.envelope import Envelope
from email2ticket.rules.base import Found
from email2ticket.rules.chain import decide
from email2ticket.rules.decision import Outbound, TicketFacts, UserFacts
from email2ticket.rules.notify import notify_participants
from email2ticket.rules.people import (
    MAX_NEW_PARTICIPANTS,
    MAX_PARTICIPANTS,
    base_address,
    cc_participants,
    new_participants,
    our_addresses,
    requester_from_reply_to,
    with_requester,
)
from email2ticket.rules.ticket import MAX_THREAD_IDS, thread_message_ids, thread_reference
from support.mail import mail
from support.rules import context, facts

HELPDESK = "helpdesk@example.org"
TICKET = TicketFacts(1, "open", requester="alice@example.com", technician="tech@example.org", subject="Printer")
TECH = UserFacts("tech@example.org", is_technician=True, access="normal")
PASS = Verdict("pass", "dkim", "DKIM signature verified", "example.org")


def reply_all(sender: str = "bob@example.com", cc: str = "carol@example.com", **headers: str) -> bytes:
    return mail(
        "RE: Printer",
        "Same here.\n",
        sender=sender,
        to=f"alice@example.com, Help Desk <{HELPDESK}>",
        in_reply_to="<opening@example.com>",
        headers={"Cc": cc, **headers},
    )


def reasons(decision: object) -> dict[str, str]:
    return {r.name: f"{'HIT' if r.hit else 'MISS'} - {r.why}" for r in decision.results}  # type: ignore[attr-defined]


def test_base_address_cuts_at_the_first_delimiter_character() -> None:
    assert base_address("helpdesk+7@example.org") == "helpdesk@example.org"
    assert base_address("helpdesk-7+x@example.org", "+-") == "helpdesk@example.org"
    assert base_address("helpdesk@example.org") == "helpdesk@example.org"
    assert base_address("+7@example.org") == "+7@example.org"  # no local part left: not a plus-form
    assert base_address("helpdesk+7@example.org", "") == "helpdesk+7@example.org"


def test_our_addresses_are_settings_notifications_and_the_recipient_with_its_base() -> None:
    ctx = context(
        reply_all(), Envelope(None, "helpdesk+7@example.org"), outbound=Outbound(True, frozenset({"n@x.org"}))
    )
    found = our_addresses(ctx, facts(ctx, RuleSettings(own_addresses=("own@example.org",))))
    assert found == {"helpdesk+7@example.org", HELPDESK, "n@x.org", "own@example.org"}


def test_thread_ids_are_the_nearest_first_and_bounded() -> None:
    many = " ".join(f"<r{i}@x>" for i in range(500))
    ctx = context(mail("Re: x", headers={"In-Reply-To": "<parent@x>", "References": many}, message_id="me@x"))
    ids = thread_message_ids(ctx.message)
    assert len(ids) == MAX_THREAD_IDS and ids[:3] == ("<parent@x>", "<r499@x>", "<r498@x>")


def test_thread_reference_hit_and_miss() -> None:
    ctx = context(reply_all())
    found = thread_reference.check(ctx, facts(ctx, reference=1, reference_source="thread", ticket=TICKET), Found())
    assert found.hit and found.why == "In-Reply-To/References name a message stored on ticket #1"
    missed = thread_reference.check(ctx, facts(ctx), Found())
    assert not missed.hit and missed.why.startswith("none of the 1 Message-ID(s)")


def test_a_cc_participant_updates_like_the_requester() -> None:
    ctx = context(reply_all(), Envelope(None, HELPDESK))
    known = facts(
        ctx, reference=1, reference_source="thread", ticket=TICKET, participants=frozenset({"bob@example.com"})
    )
    decision = decide(ctx, known)
    assert decision.action == "update" and decision.ticket == 1
    assert reasons(decision)["sender-is-participant"] == (
        "HIT - bob@example.com is a Cc participant of ticket #1: replies like the requester"
    )
    assert decision.participants == ("carol@example.com",)  # Alice is the requester, the help desk our own
    # under sender_verification=all a participant, like the requester, must be authenticated
    strict = replace(known, settings=RuleSettings(sender_verification="all"))
    assert decide(ctx, strict).auth_pending
    # a stranger is none: restrict_replies keeps them out, and they open a ticket of their own
    stranger = decide(context(reply_all(sender="eve@example.net"), Envelope(None, HELPDESK)), known)
    assert stranger.action == "create"
    # ... whose participants owe nothing to the ticket Eve may not update: Alice, its requester, is one of them
    assert stranger.participants == ("alice@example.com", "carol@example.com")


def test_cc_participants_hit_miss_and_our_own_left_out() -> None:
    ctx = context(
        reply_all(cc="Helpdesk <helpdesk+3@example.org>, own@example.org, dan@example.com"), Envelope(None, HELPDESK)
    )
    known = facts(ctx, RuleSettings(own_addresses=("own@example.org",)))
    result = cc_participants.check(ctx, known, Found())
    assert result.hit and result.why == (
        "alice@example.com, dan@example.com become participants of the ticket (left out as our own: "
        "helpdesk+3@example.org, helpdesk@example.org, own@example.org)"
    )
    off = cc_participants.check(ctx, replace(known, settings=RuleSettings(cc_participants=False)), Found())
    assert not off.hit and off.why == "cc_participants is off"
    ticket_known = replace(known, ticket=TICKET, participants=frozenset({"dan@example.com"}))
    nobody = cc_participants.check(ctx, ticket_known, Found(updating=True))
    assert not nobody.hit and nobody.why.startswith("no To:/Cc: address that is not already on the ticket")


def test_a_reply_all_to_hundreds_adds_at_most_the_cap() -> None:
    many = ", ".join(f"p{i}@example.com" for i in range(300))
    ctx = context(reply_all(cc=many), Envelope(None, HELPDESK))
    new, _ = new_participants(ctx, facts(ctx), updating=False)
    assert len(new) == MAX_NEW_PARTICIPANTS
    # a ticket holds at most MAX_PARTICIPANTS: a reply adds only what room is left
    crowded = frozenset(f"old{i}@example.com" for i in range(MAX_PARTICIPANTS - 1))
    known = facts(ctx, reference=1, ticket=TICKET, participants=crowded)
    result = cc_participants.check(ctx, known, Found(updating=True))
    assert result.hit and result.why.startswith("p0@example.com become participants of the ticket (at most 50")
    full = cc_participants.check(ctx, replace(known, participants=crowded | {"x@example.com"}), Found(updating=True))
    assert not full.hit and full.why.endswith(f"the ticket has its {MAX_PARTICIPANTS} participants")


def test_requester_from_reply_to_only_for_listed_robots() -> None:
    form = mail(
        "Contact form", "Order 10042 never arrived.\n", sender="no-reply@shop.example",
        headers={"Reply-To": "Erin <erin@customer.example>"},
    )  # fmt: skip
    settings = RuleSettings(reply_to_senders=("@shop.example",))
    ctx = with_requester(context(form), settings)
    assert (ctx.sender.address, ctx.sender.source, ctx.sender.robot) == (
        "erin@customer.example",
        "reply-to",
        "no-reply@shop.example",
    )
    result = requester_from_reply_to.check(ctx, facts(ctx, settings), Found())
    assert result.hit and "the sender and requester is its Reply-To: address erin@customer.example" in result.why
    to_us = context(form.replace(b"erin@customer.example", HELPDESK.encode()), Envelope(None, HELPDESK))
    assert with_requester(to_us, settings) is to_us  # a robot answering to the desk itself names nobody
    plain = context(form)
    assert with_requester(plain, RuleSettings()) is plain  # Reply-To from anyone else changes nothing
    missed = requester_from_reply_to.check(plain, facts(plain), Found())
    assert not missed.hit and "is not in reply_to_senders (Reply-To: is trivially forged)" in missed.why
    decision = decide(ctx, facts(ctx, settings))
    assert decision.action == "create" and decision.create_sender


def test_notify_participants_hit_and_miss() -> None:
    technician_comment = mail("Re: Printer [Ticket #1]", "New toner is in.\n", sender="tech@example.org", to=HELPDESK)
    ctx = context(
        technician_comment, Envelope(None, HELPDESK), outbound=Outbound(True, frozenset({HELPDESK})), auth=PASS
    )
    settings = RuleSettings(notify_requester_of_technician_comments=True, notify_participants=True)
    people = frozenset({"bob@example.com", "carol@example.com", HELPDESK})
    known = facts(
        ctx, settings, sender_user=TECH, ticket=TICKET, participants=people, bounced=frozenset({"carol@example.com"})
    )
    verified = Found(author_verified=True)
    result = notify_participants.check(ctx, known, verified)
    assert (
        result.hit and result.why == "send the authenticated technician's comment to the participants bob@example.com"
    )
    decision = decide(ctx, known)
    assert [(n.kind, n.recipient) for n in decision.notices] == [
        ("requester-comment", "alice@example.com"),
        ("participant-comment", "bob@example.com"),
    ]
    off = notify_participants.check(
        ctx, replace(known, settings=replace(settings, notify_participants=False)), verified
    )
    assert not off.hit and off.why == "notify_participants is off"
    unverified = notify_participants.check(ctx, known, Found())
    assert not unverified.hit and "not authenticated" in unverified.why
    # a participant's own reply is never echoed back to them, and never acknowledged to the Cc list
    on = Outbound(True, frozenset({HELPDESK}))
    participant = context(reply_all(cc="carol@example.com"), Envelope(None, HELPDESK), outbound=on, auth=PASS)
    by_bob = decide(participant, replace(known, sender_user=None, reference_source="thread"))
    assert by_bob.action == "update" and not any(n.kind == "participant-comment" for n in by_bob.notices)
    new_ticket = decide(participant, facts(participant, settings))
    assert [(n.kind, n.recipient) for n in new_ticket.notices] == [("acknowledgement", "bob@example.com")]
