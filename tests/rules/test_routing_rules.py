"""Queues, plus-addresses and postmaster filters as pure functions: every rule's HIT and MISS, without a database.

rules/routing.py reads where a mail was sent (the envelope recipient, else Delivered-To:, To:, Cc:), rules/filters.py
what the admin's filters say of it; the chain (rules/chain.py) records both. The same decisions through the real
executable, on SQLite and PostgreSQL: tests/delivery/test_routing.py.
"""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from email2ticket.config.rule_settings import RuleSettings
from email2ticket.mail.envelope import Envelope
from email2ticket.rules.chain import decide
from email2ticket.rules.decision import Decision, Outbound, TicketFacts, UserFacts
from email2ticket.rules.filters import InvalidFilter, check_actions, parse_action, parse_condition, stored_filter
from email2ticket.rules.routing import MAX_FIELDS, detail, header_addresses, route_message
from email2ticket.rules.routing_facts import Condition, Filter, FilterAction, Queue, Routing
from support.mail import mail
from support.rules import context, facts

ALICE = UserFacts("alice@example.com")
TICKET = TicketFacts(7, "open", requester="alice@example.com", subject="Printer")
DEFAULT, SALES = Queue(1, "default", True), Queue(2, "sales")
ROUTING = Routing((DEFAULT, SALES), (("sales@helpdesk.example", 2), ("billing+vip@helpdesk.example", 2)))
OWN = Outbound(enabled=False, own_addresses=frozenset({"helpdesk@helpdesk.example"}))


def why(decision: Decision, rule: str) -> tuple[bool, str]:
    result = next(r for r in decision.results if r.name == rule)
    return result.hit, result.why


def run(raw: bytes, recipient: str | None = None, *, routing: Routing = ROUTING, **fields: object) -> Decision:
    ctx = context(raw, Envelope("alice@example.com", recipient), outbound=OWN)
    found = facts(ctx, routing=routing, sender_user=ALICE, **fields)
    return decide(ctx, found)


def plus(raw: bytes, recipient: str | None = None, settings: RuleSettings | None = None) -> Decision:
    """As the delivery does it: the route names the ticket the facts then look up (delivery/core.py)."""
    ctx = context(raw, Envelope("alice@example.com", recipient), outbound=OWN)
    settings = settings or RuleSettings()
    route = route_message(ctx.message, ctx.envelope, ROUTING, settings, OWN.own_addresses)
    found = facts(ctx, settings, routing=ROUTING, sender_user=ALICE)
    if found.reference is None and route.plus_ticket is not None:
        found = replace(found, reference=route.plus_ticket, reference_source="plus-address")
    elif found.reference is not None:
        found = replace(found, reference_source="subject")
    if found.reference == TICKET.id:
        found = replace(found, ticket=TICKET)
    return decide(replace(ctx, route=route), found)


# --- plus-address -------------------------------------------------------------------------------


def test_the_detail_of_a_plus_address_with_one_or_several_delimiters() -> None:
    assert detail("helpdesk+7@x.example", "+") == "7"
    assert detail("helpdesk-7@x.example", "+-") == "7"
    assert detail("help-desk+7@x.example", "+") == "7"
    assert detail("helpdesk@x.example", "+") is None
    assert detail("+7@x.example", "+") is None  # a local part that starts with the delimiter has no base


def test_plus_address_in_the_envelope_recipient_updates_that_ticket() -> None:
    decision = plus(mail("More about it", "Still jammed.\n"), "helpdesk+7@helpdesk.example")
    assert why(decision, "plus-address") == (True, "the envelope recipient helpdesk+7@helpdesk.example names ticket #7")
    assert why(decision, "ticket-reference")[0] is False
    assert (decision.action, decision.ticket) == ("update", 7)


def test_any_base_address_counts_in_the_envelope_but_only_our_own_in_the_headers() -> None:
    assert plus(mail("More"), "anything+7@elsewhere.example").ticket == 7
    ours = mail("More", to="Help Desk <helpdesk+7@helpdesk.example>")
    assert why(plus(ours), "plus-address") == (True, "the To: helpdesk+7@helpdesk.example names ticket #7")
    foreign = plus(mail("More", to="someone+7@elsewhere.example"))
    assert "plus-address" not in [r.name for r in foreign.results] and foreign.action == "create"


def test_the_subject_reference_wins_over_a_plus_address() -> None:
    decision = plus(mail("Printer [Ticket #7]"), "helpdesk+9@helpdesk.example")
    hit, text = why(decision, "plus-address")
    assert not hit and text == (
        "the envelope recipient helpdesk+9@helpdesk.example names ticket #9, but the subject names ticket #7, "
        "which wins"
    )
    assert decision.ticket == 7


def test_a_detail_that_is_no_ticket_number_or_a_queue_address_names_no_ticket() -> None:
    decision = plus(mail("Question"), "helpdesk+sales@helpdesk.example")
    assert why(decision, "plus-address") == (
        False,
        "the plus-detail 'sales' of helpdesk+sales@helpdesk.example is no ticket number (recipient_delimiter='+')",
    )
    assert decision.action == "create"
    queue_mailbox = plus(mail("Question"), "billing+vip@helpdesk.example")  # itself a queue address
    assert "plus-address" not in [r.name for r in queue_mailbox.results]
    off = plus(mail("More"), "helpdesk+7@helpdesk.example", RuleSettings(recipient_delimiter=""))
    assert off.action == "create" and "plus-address" not in [r.name for r in off.results]


# --- queue --------------------------------------------------------------------------------------


def test_the_envelope_recipient_chooses_the_queue_also_as_a_plus_address() -> None:
    decision = run(mail("Order"), "Sales@Helpdesk.example")
    queue = "the envelope recipient sales@helpdesk.example is an address of queue sales"
    assert why(decision, "queue") == (True, queue)
    assert decision.placement is not None and (decision.placement.queue_id, decision.placement.queue) == (2, "sales")
    assert decision.summary() == "create new ticket in queue sales"
    hit, text = why(run(mail("Order"), "sales+x@helpdesk.example"), "queue")
    assert hit and text.endswith("(as sales@helpdesk.example)")


def test_without_an_envelope_recipient_the_first_queue_address_in_delivered_to_to_cc() -> None:
    raw = mail("Order", to="a@example.com", headers={"Cc": "Sales <sales@helpdesk.example>"})
    assert why(run(raw), "queue") == (True, "the Cc: sales@helpdesk.example is an address of queue sales")
    delivered = mail("Order", to="helpdesk@helpdesk.example", headers={"Delivered-To": "sales@helpdesk.example"})
    assert why(run(delivered), "queue")[1].startswith("the Delivered-To: sales@helpdesk.example")


def test_no_queue_address_lands_in_the_default_queue_and_a_reply_never_moves_a_ticket() -> None:
    decision = run(mail("Order"), "helpdesk@helpdesk.example")
    assert why(decision, "queue") == (
        False,
        "the envelope recipient helpdesk@helpdesk.example is no queue address: the default queue (default)",
    )
    assert decision.placement is not None and decision.placement.queue_id == 1
    hit, text = why(run(mail("Order", to="x@example.com")), "queue")
    assert not hit and text.startswith("no envelope recipient and no queue address")
    reply = run(mail("Re: Printer [Ticket #7]"), "sales@helpdesk.example", ticket=TICKET)
    assert reply.action == "update" and "queue" not in [r.name for r in reply.results] and reply.placement is None


def test_the_header_scan_is_bounded_and_linear() -> None:
    many = "".join(f"To: person{i}@example.com\n" for i in range(100))
    raw = mail("x", headers={"X-Pad": "y"}).replace(b"To: ", many.encode() + b"To: ", 1)
    assert len(header_addresses(context(raw).message)) == MAX_FIELDS  # of the 101 To: fields
    hostile = mail("x", to="a" * 200_000)  # no @ at all: one pass, no backtracking
    assert header_addresses(context(hostile).message) == []


# --- filters ------------------------------------------------------------------------------------


def flt(name: str, conditions: list[str], actions: list[str], position: int = 1) -> Filter:
    return Filter(name, position, tuple(map(parse_condition, conditions)), tuple(map(parse_action, actions)))


def with_filters(*filters: Filter) -> Routing:
    return replace(ROUTING, filters=filters)


def test_a_matching_filter_is_recorded_and_places_a_new_ticket() -> None:
    urgent = flt("urgent", ["Subject contains URGENT", "From is alice@example.com"], ["priority=high", "tag=vip"])
    other = flt("lists", ["List-Id exists"], ["tag=list"], 2)
    decision = run(mail("urgent: printer down"), routing=with_filters(urgent, other))
    assert why(decision, "filters") == (True, "1 of the 2 filter(s) checked matched: urgent")
    hit, text = why(decision, "filter urgent")
    assert hit and text.startswith("Subject contains 'URGENT' and From is 'alice@example.com': priority=high, tag=vip")
    assert decision.placement is not None
    assert (decision.placement.priority, decision.placement.tags) == ("high", ("vip",))


def test_no_filter_matching_is_a_miss_and_no_filters_consult_nothing() -> None:
    decision = run(mail("hello"), routing=with_filters(flt("lists", ["List-Id exists"], ["hold"])))
    assert why(decision, "filters") == (False, "none of the 1 filter(s) checked matched")
    assert decision.action == "create"
    assert "filters" not in [r.name for r in run(mail("hello")).results]


def test_hold_stops_the_message_like_the_loop_rules_and_a_release_skips_that_filter() -> None:
    held = with_filters(flt("lists", ["List-Id exists"], ["hold"]), flt("later", ["Subject exists"], ["tag=x"], 2))
    raw = mail("digest", headers={"List-Id": "<users.lists.example>"})
    decision = run(raw, routing=held)
    assert (decision.action, decision.held_by, decision.exit_code) == ("hold", "filter lists", 0)
    assert "filter later" not in [r.name for r in decision.results]  # nothing after the stop is evaluated
    ctx = context(raw, Envelope("alice@example.com"), release="filter lists")
    released = decide(ctx, facts(ctx, routing=held, sender_user=ALICE))
    assert released.action == "create"
    assert why(released, "filter lists") == (False, "released by the admin (`messages release`): this check is skipped")
    assert why(released, "filter later")[0] is True


def test_the_fields_and_operators() -> None:
    raw = mail(
        "Invoice 2026-17",
        "Please pay within 30 days.\n",
        headers={"X-Spam-Flag": "NO", "Subject-Extra": "=?utf-8?q?Gr=C3=BC=C3=9Fe?="},
    )
    ctx = context(raw, Envelope("", "billing@helpdesk.example"))

    def holds(text: str) -> bool:
        from email2ticket.rules.filters import holds as evaluate

        return evaluate(parse_condition(text), ctx.message, ctx.envelope)

    assert holds("Subject matches ^invoice [0-9]{4}-[0-9]+$") and not holds("Subject not-matches invoice")
    assert holds("subject: CONTAINS invoice") and holds("Subject is-not Invoice")
    assert holds("X-Spam-Flag is no") and holds("List-Id missing") and not holds("List-Id exists")
    assert holds("Subject-Extra contains grüße")  # decoded header values, case-insensitive
    assert holds("recipient is billing@helpdesk.example") and holds("sender is <>")
    assert holds("body contains WITHIN 30") and holds("body not-contains refund")
    assert holds("From is alice@example.com") and holds("To contains helpdesk")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Subject", "write FIELD OP [VALUE]"),
        ("Subject resembles x", "'resembles' is not one of"),
        ("Subject contains", "contains needs a value"),
        ("List-Id exists now", "exists takes no value"),
        ("Subject matches (a", "not valid RE2 syntax"),
        ("Subject matches a[ab]{20}c", "too costly to search in every mail"),
        ("Sub:ject contains x", "is no header name"),
    ],
)
def test_conditions_an_admin_gets_wrong_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidFilter, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_condition(text)


def test_actions_are_checked() -> None:
    assert parse_action("Priority=HIGH") == FilterAction("priority", "high")
    for bad in ("priority=extreme", "status=pending", "hold=1", "move=x", "tag=two words", "queue="):
        with pytest.raises(InvalidFilter):
            parse_action(bad)
    with pytest.raises(InvalidFilter, match="no other action"):
        check_actions((FilterAction("hold"), FilterAction("tag", "x")))
    with pytest.raises(InvalidFilter, match="sets priority once"):
        check_actions((FilterAction("priority", "low"), FilterAction("priority", "high")))


def test_a_stored_filter_this_code_cannot_read_never_matches_and_says_why() -> None:
    conditions = '[{"field": "Subject", "op": "sounds-like", "value": "x"}]'
    broken = stored_filter("old", 1, conditions, '[{"action": "hold"}]')
    assert broken.problem == "unknown op 'sounds-like'"
    decision = run(mail("x"), routing=with_filters(broken))
    assert decision.action == "create"
    unusable = "none of the 0 filter(s) checked matched; not usable: old: unknown op 'sounds-like'"
    assert why(decision, "filters") == (False, unusable)
    assert stored_filter("junk", 1, "not json", "[]").problem.startswith("unreadable definition")
    assert stored_filter("ok", 1, [{"field": "To", "op": "exists"}], [{"action": "tag", "value": "t"}]).conditions == (
        Condition("To", "exists"),
    )


def test_postfix_local_original_recipient_comes_before_the_rewritten_recipient() -> None:
    """local(8) after a virtual alias: RECIPIENT names the local account, ORIGINAL_RECIPIENT what the sender wrote."""
    from email2ticket.mail.envelope import envelope_from

    environ = {"RECIPIENT": "e2t+7@localhost", "ORIGINAL_RECIPIENT": "Helpdesk+7@helpdesk.example"}
    assert envelope_from(None, None, None, environ).recipient == "helpdesk+7@helpdesk.example"
    assert envelope_from(None, None, None, {"RECIPIENT": "helpdesk@x.example"}).recipient == "helpdesk@x.example"
    assert envelope_from(None, "sales@x.example", None, environ).recipient == "sales@x.example"  # --recipient first
