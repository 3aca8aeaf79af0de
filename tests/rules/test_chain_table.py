"""The rules as named data and the chain as a table: one list of rules, in one order, everywhere it is shown.

Every rule is an object with a kebab-case name and a one-line description; the chain's table (rules/chain.py)
is the only list of them. These check that the names every decision records come from that table, in its
order, and that `email2ticket explain --rules` and the README's rule table show the same list in the same order.
"""

from __future__ import annotations

import importlib.util
import itertools
import re
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from msgspec.structs import replace

from email2ticket.auth.verdict import Verdict
from email2ticket.config.rule_settings import RuleSettings
from email2ticket.mail.envelope import Envelope
from email2ticket.mail.message import parse_message
from email2ticket.mail.subject import find_ticket_reference
from email2ticket.reply.extract import DEFAULT_SEPARATORS
from email2ticket.rules.base import RELEASED, Found
from email2ticket.rules.chain import CHAIN, RULES, decide, identify_sender
from email2ticket.rules.decision import Context, Decision, Facts, Outbound, TicketFacts, UserFacts
from email2ticket.rules.routing_facts import Condition, Filter, FilterAction, Queue, Routing
from email2ticket.signals.bounce import BounceReport
from email2ticket.signals.classify import Classification, Signal

REPO = Path(__file__).resolve().parents[2]
MAIL = REPO / "tests" / "fixtures" / "mail"
README = REPO / "README.md"
NAMES = [rule.name for rule in RULES]
# sender-authenticated is consulted by the grant that needs it, right after that grant's verdict.
GRANTS = {"sender-is-participant", "sender-is-privileged-technician", "replies-unrestricted"}


def test_every_rule_has_a_unique_kebab_case_name_and_a_one_line_description() -> None:
    assert len(set(NAMES)) == len(NAMES) == len(CHAIN)
    for rule in RULES:
        assert re.fullmatch(r"[a-z]+(?:-[a-z]+)*", rule.name), rule.name
        assert rule.description.strip() == rule.description and rule.description, rule.name
        assert "\n" not in rule.description and len(rule.description) <= 200, rule.name


def test_the_stopping_rules_are_releasable_and_a_release_turns_them_into_a_miss() -> None:
    releasable = {rule.name for rule in RULES if rule.releasable}
    assert releasable == {"message-limits", "own-mail", "spam-flag", "bounce", "automatic-mail", "sender-flood"}
    message = parse_message((MAIL / "new_ticket.eml").read_bytes())
    spam = Classification(spam=Signal("spam-header", "X-Spam-Flag: YES"))
    ctx = Context(message, Envelope(), identify_sender(message, Envelope()), classification=spam)
    spam_flag = next(rule for rule in RULES if rule.name == "spam-flag")
    assert spam_flag.check(ctx, Facts(), Found()).hit
    released = spam_flag.check(replace(ctx, release="spam-flag"), Facts(), Found())
    assert (released.name, released.hit, released.why) == ("spam-flag", False, RELEASED)


# --- the corpus: the fixture mails through many facts ---------------------------------------------

ALICE = UserFacts("alice@example.com")
BOB = UserFacts("bob@helpdesk.example", is_technician=True, access="normal")
OPEN = TicketFacts(1, "open", requester="alice@example.com", technician="bob@helpdesk.example")
CLOSED = replace(OPEN, status="closed")
PASS = Verdict("pass", "dkim", "DKIM signature verified", "example.com")
FAIL = Verdict("fail", "headers", "the message has no DKIM-Signature")
HARD = BounceReport("hard", ("alice@example.com",), (), "RFC 3464 delivery-status report", "5.1.1")
CLASSIFICATIONS = (
    None,
    Classification(own=Signal("loop-header", "X-Email2ticket-Loop: example.org")),
    Classification(spam=Signal("spam-header", "X-Spam-Flag: YES")),
    Classification(bounce=HARD),
    Classification(bounce=HARD, bounce_ticket=1),
    Classification(automatic=(Signal("auto-submitted", "Auto-Submitted: auto-replied"),)),
)
SETTINGS = (
    RuleSettings(),
    RuleSettings(sender_verification="off", restrict_replies=False, max_new_tickets_per_sender_per_hour=1),
    RuleSettings(notify_technician_of_updates=True, notify_requester_of_technician_comments=True),
)
ON = Outbound(enabled=True, own_addresses=frozenset({"helpdesk@example.org"}))


# A message with more MIME parts than [limits] allows (1,000 by default): held by message-limits.
OVER_THE_PART_LIMIT = (
    b"From: alice@example.com\nSubject: Printer [Ticket #1]\nMessage-ID: <parts@example.com>\nMIME-Version: 1.0\n"
    b"Content-Type: multipart/mixed; boundary=B\n\n" + b"".join(b"--B\n\np%d\n" % i for i in range(1200)) + b"--B--\n"
)

# The ticket the facts hold, and where the reference came from: the subject, our token or a message of the ticket
# (In-Reply-To).
REFERENCES = ((OPEN, "subject"), (CLOSED, "subject"), (OPEN, "token"), (OPEN, "thread"))


@cache
def corpus() -> tuple[Decision, ...]:
    decisions = []
    messages = [parse_message(path.read_bytes()) for path in sorted(MAIL.glob("*.eml"))]
    messages.append(parse_message(OVER_THE_PART_LIMIT))
    envelope = Envelope("alice@example.com", "helpdesk@example.org")
    combinations = itertools.product(messages, CLASSIFICATIONS, SETTINGS, (None, ALICE, BOB), REFERENCES, (PASS, FAIL))
    for message, cls, settings, user, (ticket, source), verdict in combinations:
        ctx = Context(message, envelope, identify_sender(message, envelope), verdict, cls, outbound=ON)
        reference = find_ticket_reference(message.subject, bare_numbers=True) if source == "subject" else 1
        facts = Facts(settings, DEFAULT_SEPARATORS, user, reference, ticket, reference_source=source)
        decisions.append(decide(ctx, replace(facts, sender_new_tickets_last_hour=1)))
    decisions += routed(messages)
    return tuple(decisions)


# Routing (rules/routing.py, rules/filters.py): queues, a plus-address recipient, filters that tag and hold.
ROUTING = Routing(
    (Queue(1, "default", True), Queue(2, "sales")),
    (("sales@example.org", 2),),
    (
        Filter("printers", 1, (Condition("Subject", "contains", "printer"),), (FilterAction("tag", "printer"),)),
        Filter("vip", 2, (Condition("From", "exists"),), (FilterAction("priority", "high"), FilterAction("tag", "x"))),
        Filter("held", 3, (Condition("recipient", "is", "sales@example.org"),), (FilterAction("hold"),)),
    ),
)


def routed(messages: list[Any]) -> list[Decision]:
    decisions = []
    recipients = ("helpdesk+1@example.org", "sales@example.org", "helpdesk+x@example.org", None)
    releases = (None, "filter held")
    for message, recipient, user, release in itertools.product(messages, recipients, (None, ALICE), releases):
        envelope = Envelope("alice@example.com", recipient)
        ctx = Context(message, envelope, identify_sender(message, envelope), outbound=ON, release=release)
        plus = recipient is not None and recipient.startswith("helpdesk+1")
        reference = find_ticket_reference(message.subject, bare_numbers=True)
        source = "subject" if reference is not None else "plus-address" if plus else None
        reference = reference if reference is not None else 1 if plus else None
        facts = Facts(RuleSettings(), DEFAULT_SEPARATORS, user, reference, OPEN if reference else None)
        decisions.append(decide(ctx, replace(facts, reference_source=source, routing=ROUTING)))
    return decisions


def test_every_rule_a_decision_records_is_in_the_table_and_every_rule_is_consulted() -> None:
    # Each filter that matched is recorded under its own name, `filter NAME`, right after the `filters` row.
    seen = {r.name for decision in corpus() for r in decision.results if not r.name.startswith("filter ")}
    assert seen <= set(NAMES)
    assert seen == set(NAMES), f"never consulted in the corpus: {sorted(set(NAMES) - seen)}"


def test_the_chain_consults_its_rules_in_the_order_of_the_table() -> None:
    for decision in corpus():
        order: list[float] = []
        for before, result in zip((None, *decision.results), decision.results, strict=False):
            if result.name.startswith("filter "):  # each filter that matched, in the `filters` row's place
                order.append(NAMES.index("filters") + 0.5 + len(order) / 1000)
                continue
            position: float = NAMES.index(result.name)
            if result.name == "sender-authenticated" and before is not None and before.name in GRANTS:
                position = NAMES.index(before.name) + 0.5  # consulted on the spot, by that grant
            order.append(position)
        assert order == sorted(order) and len(set(order)) == len(order), decision.reasons


# --- where the list is shown -----------------------------------------------------------------------


def test_explain_rules_lists_every_rule_in_chain_order_without_a_database(run_admin: Any) -> None:
    unreachable = "postgresql://nobody@127.0.0.1:1/nothing"  # a database it must not need
    result = run_admin("--database-url", unreachable, "explain", "--rules", stdin=b"not a message")
    assert result.returncode == 0, result
    assert result.stdout_text.splitlines() == [f"{rule.name}: {rule.description}" for rule in RULES]
    assert result.stderr_text == ""


def readme_table() -> list[tuple[str, str]]:
    """The README's rule table as (name, what it checks), in its order."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("### The rules, in the order they are checked")
    rows = []
    for line in itertools.dropwhile(lambda line: not line.startswith("| `"), lines[start:]):
        if not line.startswith("|"):
            break
        match = re.fullmatch(r"\| `([a-z-]+)` \| (.*) \|", line)
        assert match, line
        rows.append((match[1], match[2]))
    return rows


def load_rule_table_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rule_table", REPO / "scripts" / "rule_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_rule_table_is_the_chain_in_order() -> None:
    table = readme_table()
    assert [name for name, _ in table] == NAMES
    for (_, checks), rule in zip(table, RULES, strict=True):
        assert checks.startswith(rule.description), rule.name


def test_readme_rule_table_is_what_the_script_writes() -> None:
    readme = README.read_text(encoding="utf-8")
    assert load_rule_table_script().rewrite(readme) == readme, "README out of date: run scripts/rule_table.py"


@pytest.mark.parametrize("rule", [rule for rule in RULES if rule.see], ids=lambda rule: rule.name)
def test_a_rules_see_also_names_a_readme_section(rule: Any) -> None:
    assert f"## {rule.see}\n" in README.read_text(encoding="utf-8")
