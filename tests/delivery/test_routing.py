"""Queues by recipient, plus-addresses and postmaster filters through the real executables, on SQLite and PostgreSQL.

The rules' every branch is in tests/rules/test_routing_rules.py; these check the whole path: the admin commands
store queues and filters, the delivery reads them with the settings, the pipe command decides and writes the
queue, priority, technician and tags, `explain` and `filters test` say the same, `messages release` skips the
filter that held a message, and Postfix's local(8) environment (ORIGINAL_RECIPIENT of a plus-address, RECIPIENT
rewritten to the local account) finds the ticket and the queue.
"""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from support.desk import Desk, MakeDesk, reason
from support.mail import mail
from support.run import Result
from support.servers.smtpsink import SmtpSink

SALES = "sales@helpdesk.example"


def lines(result: Result) -> list[str]:
    return result.stdout_text.splitlines()


def test_the_recipient_chooses_the_queue_and_a_plus_address_names_the_ticket(desk: Desk) -> None:
    assert desk.json("queue", "list") == [{"name": "default", "default": True, "addresses": [], "tickets": 0}]
    desk.admin("queue", "add", "sales", "--address", "Sales@Helpdesk.example", "--address", "shop@helpdesk.example")
    order = desk.deliver_ok(mail("Order 55 missing", to=SALES), recipient=SALES)
    assert order["action"] == "create"
    assert reason(order, "queue") == f"the envelope recipient {SALES} is an address of queue sales"
    # No envelope recipient: the first queue address of Delivered-To:, To:, Cc: chooses.
    by_cc = desk.deliver_ok(mail("Invoice", to="helpdesk@helpdesk.example", headers={"Cc": f"Sales <{SALES}>"}))
    assert reason(by_cc, "queue") == f"the Cc: {SALES} is an address of queue sales"
    other = desk.deliver_ok(mail("Printer jam"), recipient="helpdesk@helpdesk.example")
    assert reason(other, "queue").endswith("is no queue address: the default queue (default)")
    assert [(t["id"], t["queue"], t["priority"], t["tags"]) for t in desk.tickets()] == [
        (1, "sales", "normal", []),
        (2, "sales", "normal", []),
        (3, "default", "normal", []),
    ]
    assert [t["id"] for t in desk.json("tickets", "list", "--queue", "sales")] == [1, 2]
    assert desk.ticket(1)["queue"] == "sales"

    # Postfix's local(8) after a virtual alias: RECIPIENT is the local account, ORIGINAL_RECIPIENT what was written.
    env = {"ORIGINAL_RECIPIENT": "sales+1@helpdesk.example", "RECIPIENT": "e2t+1@localhost", "SENDER": "a@example.com"}
    reply = desk.pipe("--json", stdin=mail("Any news?", "Where is it?\n"), env=env)
    assert reply.returncode == 0, reply
    data = reply.json
    assert (data["action"], data["ticket"]) == ("update", 1)
    assert reason(data, "plus-address") == "the envelope recipient sales+1@helpdesk.example names ticket #1"
    assert "queue" not in [r.split(":")[0] for r in data["reasons"]]  # a reply never moves a ticket
    assert desk.messages()[-1]["envelope_recipient"] == "sales+1@helpdesk.example"
    # The subject's reference wins over the plus-address.
    both = desk.deliver_ok(mail("Re: Invoice [Ticket #2]"), recipient="helpdesk+1@helpdesk.example")
    assert (both["action"], both["ticket"]) == ("update", 2)
    assert reason(both, "plus-address").endswith("but the subject names ticket #2, which wins")

    explained = desk.admin("explain", "--recipient", "helpdesk+3@helpdesk.example", stdin=mail("More", "x\n"))
    assert "plus-address: HIT - the envelope recipient helpdesk+3@helpdesk.example names ticket #3" in lines(explained)
    assert lines(explained)[-1] == "Decision: update ticket #3"
    explained = desk.admin("explain", "--recipient", SALES, stdin=mail("New order", "x\n"))
    assert f"queue: HIT - the envelope recipient {SALES} is an address of queue sales" in lines(explained)
    assert lines(explained)[-1] == "Decision: create new ticket in queue sales"


def test_queue_admin_keeps_one_default_and_moves_the_tickets_of_a_removed_queue(desk: Desk) -> None:
    desk.admin("queue", "add", "sales", "--address", SALES)
    desk.deliver_ok(mail("Order"), recipient=SALES)
    taken = desk.admin("queue", "add", "other", "--address", SALES, check=False)
    assert taken.returncode == 1 and "is an address of queue 'sales' already" in taken.stderr_text
    refused = desk.admin("queue", "remove", "default", check=False)
    assert refused.returncode == 1 and "is the default queue" in refused.stderr_text
    desk.admin("queue", "set-default", "sales")
    assert [(q["name"], q["default"]) for q in desk.json("queue", "list")] == [("sales", True), ("default", False)]
    desk.admin("queue", "set-default", "default")
    assert "its 1 ticket(s) moved to the default queue 'default'" in desk.admin("queue", "remove", "sales").stdout_text
    assert desk.ticket(1)["queue"] == "default"
    unknown = desk.admin("tickets", "list", "--queue", "sales", check=False)
    assert unknown.returncode == 1 and "there is no queue 'sales'" in unknown.stderr_text


def test_filters_route_prioritise_assign_tag_and_hold_releasably(desk: Desk) -> None:
    desk.admin("user", "add", "bob@helpdesk.example", "--technician")
    desk.admin("queue", "add", "vip")
    desk.admin(
        "filters", "add", "urgent", "--if", "Subject contains URGENT", "--if", "X-Priority is 1",
        "--then", "queue=vip", "--then", "priority=urgent", "--then", "tag=urgent",
        "--then", "assign=bob@helpdesk.example",
    )  # fmt: skip
    desk.admin("filters", "add", "replies", "--if", "Subject matches ^(re|aw):", "--then", "tag=answered")
    desk.admin("filters", "add", "lists", "--if", "X-Campaign exists", "--then", "hold")
    refused = desk.admin("filters", "add", "x", "--if", "Subject contains y", "--then", "queue=nowhere", check=False)
    assert refused.returncode == 1 and "there is no queue 'nowhere'" in refused.stderr_text
    assert [f["name"] for f in desk.json("filters", "list")] == ["urgent", "replies", "lists"]

    urgent = mail("URGENT: server room flooded", "Water everywhere.\n", headers={"X-Priority": "1"})
    tried = desk.admin("filters", "test", "--json", stdin=urgent)
    assert '"name": "urgent"' in tried.stdout_text and '"replies"' not in tried.stdout_text.split('"matched"')[1]
    data = desk.deliver_ok(urgent)
    assert data["action"] == "create"
    assert reason(data, "filters") == "1 of the 3 filter(s) checked matched: urgent"
    assert reason(data, "filter urgent").startswith("Subject contains 'URGENT' and X-Priority is '1': queue=vip")
    assert reason(data, "queue").startswith("filter urgent puts it in queue vip")
    ticket = desk.ticket(1)
    assert (ticket["queue"], ticket["priority"], ticket["tags"], ticket["technician"]) == (
        "vip", "urgent", ["urgent"], "bob@helpdesk.example",
    )  # fmt: skip

    # An update gets tags (each once) but keeps its queue and priority.
    again = mail("Re: URGENT: server room flooded [Ticket #1]", "Now the basement too.\n", headers={"X-Priority": "1"})
    update = desk.deliver_ok(again)
    assert (update["action"], update["ticket"]) == ("update", 1)
    ticket = desk.ticket(1)
    assert (ticket["queue"], ticket["priority"], ticket["tags"]) == ("vip", "urgent", ["answered", "urgent"])

    # hold stops the delivery like the loop rules: kept raw, exit 0, released past exactly that filter.
    digest = mail("Weekly digest", "news\n", headers={"X-Campaign": "spring-sale"})
    held = desk.deliver_ok(digest)
    assert held["action"] == "hold" and reason(held, "filter lists").startswith("X-Campaign exists: hold; held for")
    [record] = desk.messages("hold")
    assert record["held_by"] == "filter lists"
    released = desk.admin("messages", "release", str(record["id"]))
    assert "create" in released.stdout_text, released
    assert desk.tickets()[-1]["subject"] == "Weekly digest"

    explained = desk.admin("explain", stdin=mail("Hello", "x\n"))
    assert "filters: MISS - none of the 3 filter(s) checked matched" in lines(explained)
    desk.admin("filters", "move", "lists", "1")
    assert [f["name"] for f in desk.json("filters", "list")] == ["lists", "urgent", "replies"]
    desk.admin("filters", "remove", "lists")
    assert [(f["name"], f["position"]) for f in desk.json("filters", "list")] == [("urgent", 1), ("replies", 2)]
    assert desk.deliver_ok(mail("Another digest", headers={"X-Campaign": "spring-sale"}))["action"] == "create"


@pytest.fixture
def notifying_desk(make_desk: MakeDesk, smtp_sink: SmtpSink, child_home: Path) -> Desk:
    notifications = {
        "from_address": "Help Desk <helpdesk@example.org>",
        "method": "smtp",
        "smtp_host": smtp_sink.host,
        "smtp_port": smtp_sink.port,
        "timeout": 5,
        "key_file": str(child_home / "keys" / "notification-keys"),
    }
    return make_desk({"logging": {"target": "none"}, "notifications": notifications}, init=True)


def test_reply_to_ticket_address_lets_a_reply_with_a_rewritten_subject_find_its_ticket(
    notifying_desk: Desk, smtp_sink: SmtpSink
) -> None:
    desk = notifying_desk
    desk.deliver_ok(mail("Printer broken"), recipient="helpdesk@example.org")
    [plain] = smtp_sink.new_messages()
    assert "Reply-To" not in email.message_from_bytes(plain.data, policy=email.policy.default)
    desk.set("reply_to_ticket_address", "on")
    assert desk.deliver_ok(mail("Scanner broken"), recipient="helpdesk@example.org")["ticket"] == 2
    [ack] = smtp_sink.new_messages()
    message = email.message_from_bytes(ack.data, policy=email.policy.default)
    assert message["Reply-To"] == "Help Desk <helpdesk+2@example.org>"
    # The client answers the Reply-To address with a subject of its own and no threading headers.
    answer = mail("scanner", "It works again.\n", to="helpdesk+2@example.org")
    reply = desk.deliver_ok(answer, recipient="helpdesk+2@example.org")
    assert (reply["action"], reply["ticket"]) == ("update", 2)
