"""Mail finds its ticket the way people really write, through the real executables on SQLite and PostgreSQL:
threading by In-Reply-To/References (thread-reference), Cc participants (Outlook's and Gmail's Reply-All),
a web-form robot's Reply-To (requester-from-reply-to), and `ticket merge`.

The mail below is shaped like the clients' own: Outlook's RE: with Thread-Topic/Thread-Index and the
`From:/Sent:/To:/Cc:` quote block, Gmail's Re: with `On ..., ... wrote:` and References of the whole thread.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from pathlib import Path

import pytest

from support.desk import Desk, MakeDesk, reason
from support.servers.smtpsink import SmtpSink

HELPDESK = "helpdesk@example.org"
DATE = "Thu, 26 Nov 2026 10:00:00 +0000"


def opening(cc: str = 'Bob Colleague <bob@example.com>, "Carol" <carol@example.com>', **extra: str) -> bytes:
    """Alice's first mail to the help desk, her colleagues copied."""
    headers = {"Cc": cc, **extra} if cc else dict(extra)
    lines = [
        "From: Alice Example <alice@example.com>",
        f"To: Help Desk <{HELPDESK}>",
        *(f"{name}: {value}" for name, value in headers.items()),
        "Subject: Printer on floor 2 prints blank pages",
        "Message-ID: <CAopening-alice@mail.example.com>",
        f"Date: {DATE}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "Since this morning every page comes out blank.",
        "",
    ]
    return "\r\n".join(lines).encode()


def outlook_reply_all(
    sender: str, name: str, text: str, *, to: str, cc: str, in_reply_to: str, message_id: str, subject: str = ""
) -> bytes:
    """Outlook desktop's Reply All: RE:, Thread-Topic/Thread-Index, the header block above the quote."""
    topic = "Printer on floor 2 prints blank pages"
    lines = [
        f"From: {name} <{sender}>",
        f"To: {to}",
        f"CC: {cc}",
        f"Subject: {subject or 'RE: ' + topic}",
        f"Thread-Topic: {topic}",
        "Thread-Index: AQHbX2k3vV1xk0m9QeKpY8m7m1Yv3Q==",
        "Date: Thu, 26 Nov 2026 11:02:13 +0000",
        f"Message-ID: <{message_id}>",
        f"References: {in_reply_to}",
        f"In-Reply-To: {in_reply_to}",
        "Accept-Language: en-US",
        "Content-Language: en-US",
        "X-MS-Has-Attach:",
        "X-MS-TNEF-Correlator:",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="us-ascii"',
        "Content-Transfer-Encoding: quoted-printable",
        "",
        text,
        "",
        "________________________________",
        "From: Alice Example <alice@example.com>",
        "Sent: Thursday, November 26, 2026 10:00 AM",
        f"To: Help Desk <{HELPDESK}>",
        "Subject: Printer on floor 2 prints blank pages",
        "",
        "Since this morning every page comes out blank.",
        "",
    ]
    return "\r\n".join(lines).encode()


def gmail_reply_all(
    sender: str, name: str, text: str, *, to: str, cc: str, references: list[str], message_id: str
) -> bytes:
    """Gmail's Reply all: Re:, References of the whole thread, In-Reply-To the last, a multipart/alternative."""
    boundary = "000000000000a1b2c3d4e5f60718"
    lines = [
        "MIME-Version: 1.0",
        f"References: {' '.join(references)}",
        f"In-Reply-To: {references[-1]}",
        f"From: {name} <{sender}>",
        "Date: Thu, 26 Nov 2026 12:14:55 +0100",
        f"Message-ID: <{message_id}>",
        "Subject: Re: Printer on floor 2 prints blank pages",
        f"To: {to}",
        f"Cc: {cc}",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "",
        f"--{boundary}",
        'Content-Type: text/plain; charset="UTF-8"',
        "",
        text,
        "",
        "On Thu, Nov 26, 2026 at 11:00 AM Alice Example <alice@example.com> wrote:",
        "> Since this morning every page comes out blank.",
        "",
        f"--{boundary}",
        'Content-Type: text/html; charset="UTF-8"',
        "",
        f'<div dir="ltr">{text}</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Thu, '
        "Nov 26, 2026 at 11:00 AM Alice Example &lt;alice@example.com&gt; wrote:<br></div><blockquote "
        'class="gmail_quote">Since this morning every page comes out blank.</blockquote></div>',
        "",
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode()


def web_form(person: str = "Erin Customer <erin@customer.example>", robot: str = "no-reply@shop.example") -> bytes:
    """A shop's contact form, sent by its robot on behalf of the customer in Reply-To."""
    lines = [
        f'From: "Shop contact form" <{robot}>',
        f"Reply-To: {person}",
        f"To: {HELPDESK}",
        "Subject: Contact form: order 10042 never arrived",
        "Message-ID: <form-10042.1764151200@shop.example>",
        f"Date: {DATE}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "X-Mailer: PHPMailer 6.9.1 (https://github.com/PHPMailer/PHPMailer)",
        "",
        "Name: Erin Customer",
        "Email: erin@customer.example",
        "Message: My order 10042 never arrived.",
        "",
    ]
    return "\r\n".join(lines).encode()


@pytest.fixture
def desk(make_desk: MakeDesk) -> Desk:
    return make_desk({"logging": {"target": "none"}}, init=True, recipient=HELPDESK)


def comments(desk: Desk, ticket: int) -> list[str]:
    return [c["body"] for c in desk.ticket(ticket)["comments"]]


# --- threading and Cc participants -------------------------------------------------------------------


def test_outlook_reply_all_from_a_copied_colleague_updates_the_ticket(desk: Desk) -> None:
    created = desk.deliver_ok(opening())
    assert created["action"] == "create"
    assert "bob@example.com, carol@example.com become participants" in reason(created, "cc-participants")
    assert desk.ticket(1)["participants"] == ["bob@example.com", "carol@example.com"]

    reply = outlook_reply_all(
        "bob@example.com",
        "Bob Colleague",
        "Same on my desk: the toner is empty.",
        to=f"Alice Example <alice@example.com>; Help Desk <{HELPDESK}>",
        cc="Carol <carol@example.com>",
        in_reply_to="<CAopening-alice@mail.example.com>",
        message_id="DB9PR10MB5762A1B2C3D4@DB9PR10MB5762.EURPRD10.PROD.OUTLOOK.COM",
    )
    # explain says why before anything is stored
    explained = desk.admin("explain", stdin=reply).stdout_text
    assert "thread-reference: HIT - In-Reply-To/References name a message stored on ticket #1" in explained
    data = desk.deliver_ok(reply)
    assert data["action"] == "update" and data["ticket"] == 1, data
    assert reason(data, "ticket-reference").startswith("the subject does not end with a ticket number")
    assert (
        reason(data, "sender-is-participant")
        == "bob@example.com is a Cc participant of ticket #1: replies like the requester"
    )
    assert comments(desk, 1) == ["Same on my desk: the toner is empty."]  # the quote below Outlook's rule line cut
    assert len(desk.tickets()) == 1


def test_gmail_reply_all_adds_its_new_cc_and_leaves_our_addresses_out(desk: Desk) -> None:
    desk.set("own_addresses", "support@example.org")
    desk.deliver_ok(opening(cc="carol@example.com"))
    reply = gmail_reply_all(
        "carol@example.com",
        "Carol",
        "Dave from facilities is looking at it.",
        to="Alice Example <alice@example.com>",
        cc=f"{HELPDESK}, support@example.org, Helpdesk <helpdesk+1@example.org>, Dave <dave@example.com>",
        references=["<CAopening-alice@mail.example.com>"],
        message_id="CAKx9w1PG7vT3s+abc@mail.gmail.com",
    )
    data = desk.deliver_ok(reply)
    assert data["action"] == "update" and data["ticket"] == 1, data
    assert "dave@example.com become participants" in reason(data, "cc-participants")
    # the envelope recipient, its plus-form's base, own_addresses: our own, never participants
    assert desk.ticket(1)["participants"] == ["carol@example.com", "dave@example.com"]
    assert comments(desk, 1) == ["Dave from facilities is looking at it."]

    # Dave, now a participant, answers Carol's mail (References: the whole thread, In-Reply-To: Carol's)
    dave = gmail_reply_all(
        "dave@example.com",
        "Dave",
        "Fixed: new toner.",
        to="Carol <carol@example.com>",
        cc=HELPDESK,
        references=["<CAopening-alice@mail.example.com>", "<CAKx9w1PG7vT3s+abc@mail.gmail.com>"],
        message_id="CAdave0001@mail.gmail.com",
    )
    data = desk.deliver_ok(dave)
    assert data["action"] == "update" and data["ticket"] == 1
    assert reason(data, "thread-reference") == "In-Reply-To/References name a message stored on ticket #1"
    assert reason(data, "cc-participants").startswith("no To:/Cc: address that is not already on the ticket")


def test_without_an_envelope_recipient_only_own_addresses_say_what_is_ours(desk: Desk) -> None:
    raw = opening(cc="bob@example.com")
    data = desk.pipe("--json", stdin=raw).json  # no --recipient: the desk knows no address of its own
    assert desk.ticket(data["ticket"])["participants"] == ["bob@example.com", HELPDESK]
    desk.set("own_addresses", HELPDESK)
    other = raw.replace(b"CAopening-alice", b"CAsecond")
    data = desk.pipe("--json", stdin=other).json
    assert desk.ticket(data["ticket"])["participants"] == ["bob@example.com"]
    assert f"left out as our own: {HELPDESK}" in reason(data, "cc-participants")


def test_cc_participants_off_keeps_the_copied_out(desk: Desk) -> None:
    desk.set("cc_participants", "off")
    data = desk.deliver_ok(opening())
    assert reason(data, "cc-participants") == "cc_participants is off"
    assert desk.ticket(1)["participants"] == []


def test_a_stranger_naming_the_thread_opens_a_new_ticket(desk: Desk) -> None:
    desk.deliver_ok(opening(cc=""))
    stranger = outlook_reply_all(
        "mallory@example.net",
        "Mallory",
        "Please send me the admin password.",
        to=HELPDESK,
        cc="",
        in_reply_to="<CAopening-alice@mail.example.com>",
        message_id="stranger-1@example.net",
    )
    data = desk.deliver_ok(stranger)
    assert data["action"] == "create" and data["ticket"] == 2
    assert reason(data, "thread-reference") == "In-Reply-To/References name a message stored on ticket #1"
    assert "nor a Cc participant" in reason(data, "sender-is-participant")
    assert comments(desk, 1) == []


def test_unknown_references_miss_and_the_subject_number_wins(desk: Desk) -> None:
    desk.deliver_ok(opening(cc="bob@example.com"))
    second = opening(cc="bob@example.com").replace(b"CAopening-alice", b"CAother").replace(b"floor 2", b"floor 3")
    desk.deliver_ok(second)
    unknown = outlook_reply_all(
        "bob@example.com",
        "Bob",
        "Hello?",
        to=HELPDESK,
        cc="",
        in_reply_to="<never-seen@example.com>",
        message_id="bob-2@example.com",
    )
    data = desk.deliver_ok(unknown)
    assert data["action"] == "create"
    assert reason(data, "thread-reference").startswith("none of the 1 Message-ID(s) of In-Reply-To/References")
    # the thread names ticket 1, the subject ticket 2: the subject wins
    both = outlook_reply_all(
        "bob@example.com",
        "Bob",
        "About the other one.",
        to=HELPDESK,
        cc="",
        in_reply_to="<CAopening-alice@mail.example.com>",
        message_id="bob-3@example.com",
        subject="RE: Printer on floor 3 prints blank pages [Ticket #2]",
    )
    data = desk.deliver_ok(both)
    assert data["action"] == "update" and data["ticket"] == 2
    assert not any(r.startswith("thread-reference:") for r in data["reasons"])


def test_a_hostile_references_header_is_looked_up_only_in_part(desk: Desk) -> None:
    desk.deliver_ok(opening(cc="bob@example.com"))
    many = " ".join(f"<noise{i}@example.net>" for i in range(500))
    # the real parent first (oldest), 500 ids after it: beyond the 20 nearest, so it is not looked up
    raw = outlook_reply_all(
        "bob@example.com",
        "Bob",
        "Hi",
        to=HELPDESK,
        cc="",
        in_reply_to="<noise499@example.net>",
        message_id="bob-9@example.com",
    )
    raw = raw.replace(
        b"References: <noise499@example.net>", f"References: <CAopening-alice@mail.example.com> {many}".encode()
    )
    data = desk.deliver_ok(raw)
    assert data["action"] == "create"
    assert "none of the 20 Message-ID(s)" in reason(data, "thread-reference")


# --- a robot's Reply-To ----------------------------------------------------------------------------------


def test_a_web_form_robot_writes_for_the_person_in_reply_to(desk: Desk) -> None:
    desk.set("reply_to_senders", "@shop.example")
    data = desk.deliver_ok(web_form())
    assert reason(data, "requester-from-reply-to") == (
        "no-reply@shop.example is a robot in reply_to_senders (@shop.example): the sender and requester is its "
        "Reply-To: address erin@customer.example"
    )
    assert desk.ticket(1)["requester"] == "erin@customer.example"
    assert desk.ticket(1)["participants"] == []  # the desk's own address, not the robot, not Erin
    # Erin answers from her own mailbox: she is the requester, so it updates
    reply = outlook_reply_all(
        "erin@customer.example",
        "Erin",
        "Any news?",
        to=HELPDESK,
        cc="",
        in_reply_to="<form-10042.1764151200@shop.example>",
        message_id="erin-1@customer.example",
    )
    data = desk.deliver_ok(reply)
    assert data["action"] == "update" and reason(data, "sender-is-participant").startswith(
        "erin@customer.example is the requester"
    )


def test_anyone_elses_reply_to_changes_nothing(desk: Desk) -> None:
    data = desk.deliver_ok(web_form(robot="sales@partner.example"))
    assert reason(data, "requester-from-reply-to") == (
        "Reply-To: erin@customer.example is ignored: sales@partner.example is not in reply_to_senders "
        "(Reply-To: is trivially forged)"
    )
    assert desk.ticket(1)["requester"] == "sales@partner.example"
    desk.set("reply_to_senders", "sales@partner.example")
    no_reply_to = web_form(robot="sales@partner.example").replace(
        b"Reply-To: Erin Customer <erin@customer.example>\r\n", b""
    )
    data = desk.deliver_ok(no_reply_to.replace(b"form-10042", b"form-10043"))
    assert reason(data, "requester-from-reply-to") == (
        "sales@partner.example is in reply_to_senders, but the mail has no usable Reply-To: address of another"
    )
    assert desk.ticket(data["ticket"])["requester"] == "sales@partner.example"


# --- participants by the admin, and merge -----------------------------------------------------------------


def test_the_admin_adds_and_removes_participants(desk: Desk) -> None:
    desk.deliver_ok(opening(cc=""))
    desk.admin("ticket", "participants", "1", "add", "Zed <ZED@example.com>")
    desk.admin("ticket", "participants", "1", "add", "amy@example.com")
    assert desk.json("ticket", "participants", "1") == ["amy@example.com", "zed@example.com"]
    assert desk.ticket(1)["participants"] == ["amy@example.com", "zed@example.com"]
    desk.admin("ticket", "participants", "1", "remove", "zed@example.com")
    assert desk.ticket(1)["participants"] == ["amy@example.com"]
    refused = desk.admin("ticket", "participants", "1", "remove", "zed@example.com", check=False)
    assert refused.returncode == 1 and "zed@example.com is not a participant of ticket #1" in refused.stderr_text
    refused = desk.admin("ticket", "participants", "1", "add", "alice@example.com", check=False)
    assert refused.returncode == 1 and "is the requester of ticket #1" in refused.stderr_text
    assert desk.admin("ticket", "participants", "1", "add", check=False).returncode == 2


def test_merge_moves_the_conversation_and_later_replies_follow(desk: Desk) -> None:
    desk.deliver_ok(opening(cc=""))
    # Bob was not copied: his Reply-All opened a second ticket
    bob = outlook_reply_all(
        "bob@example.com",
        "Bob",
        "Mine too.",
        to=HELPDESK,
        cc="Dan <dan@example.com>",
        in_reply_to="<CAopening-alice@mail.example.com>",
        message_id="bob-1@example.com",
    )
    assert desk.deliver_ok(bob)["ticket"] == 2
    merged = desk.admin("ticket", "merge", "2", "1")
    assert "ticket #2 merged into ticket #1" in merged.stdout_text
    target, source = desk.ticket(1), desk.ticket(2)
    assert source["status"] == "closed" and source["merged_into"] == 1
    assert "Merged into ticket #1." in [n["body"] for n in source["notes"]]
    assert target["participants"] == ["bob@example.com", "dan@example.com"]
    shown = desk.admin("ticket", "show", "2").stdout_text
    assert "Merged into ticket #1: replies to this ticket land there." in shown
    assert "Participants: bob@example.com, dan@example.com" in desk.admin("ticket", "show", "1").stdout_text
    [moved] = [c["body"] for c in target["comments"]]  # Bob's mail, which opened #2
    assert moved.startswith("(merged from ticket #2: Printer on floor 2 prints blank pages)\n\nMine too.")
    # anything naming #2 lands on #1: its subject number, and its thread (Bob's mail opened it)
    by_number = desk.deliver_ok(
        outlook_reply_all(
            "bob@example.com",
            "Bob",
            "Fixed?",
            to=HELPDESK,
            cc="",
            in_reply_to="<x@example.com>",
            message_id="bob-2@example.com",
            subject="RE: Printer [Ticket #2]",
        )
    )
    assert by_number["action"] == "update" and by_number["ticket"] == 1, by_number
    assert reason(by_number, "ticket-exists").startswith("ticket #2 was merged into ticket #1")
    by_thread = desk.deliver_ok(
        outlook_reply_all(
            "dan@example.com",
            "Dan",
            "Thanks",
            to=HELPDESK,
            cc="",
            in_reply_to="<bob-1@example.com>",
            message_id="dan-1@example.com",
        )
    )
    assert by_thread["action"] == "update" and by_thread["ticket"] == 1, by_thread


def test_merge_refuses_itself_a_merged_ticket_and_unknown_ones(desk: Desk) -> None:
    for n in range(3):
        desk.deliver_ok(
            opening(cc="").replace(b"CAopening-alice", f"open-{n}".encode()).replace(b"floor 2", f"floor {n}".encode())
        )
    cases = [
        (("1", "1"), "ticket #1 cannot be merged into itself"),
        (("1", "9"), "there is no ticket #9"),
    ]
    for args, message in cases:
        refused = desk.admin("ticket", "merge", *args, check=False)
        assert refused.returncode == 1 and message in refused.stderr_text, refused
    desk.admin("ticket", "merge", "2", "1")
    for args, message in [
        (("3", "2"), "ticket #2 is merged into ticket #1: merge into that one instead"),
        (("2", "3"), "ticket #2 is already merged into ticket #1"),
        (("1", "2"), "ticket #2 is merged into ticket #1"),  # the cycle
    ]:
        refused = desk.admin("ticket", "merge", *args, check=False)
        assert refused.returncode == 1 and message in refused.stderr_text, refused
    # merging 1 into 3 takes what was merged into 1 along: #2 now leads straight to #3
    desk.admin("ticket", "merge", "1", "3")
    assert desk.ticket(2)["merged_into"] == 3 and desk.ticket(1)["merged_into"] == 3


# --- participants hear of the technician's comments ------------------------------------------------------


def test_participants_get_the_technicians_comment_never_the_acknowledgement(
    make_desk: MakeDesk, smtp_sink: SmtpSink, child_home: Path
) -> None:
    notifications = {
        "from_address": f"Help Desk <{HELPDESK}>",
        "method": "smtp",
        "smtp_host": smtp_sink.host,
        "smtp_port": smtp_sink.port,
        "timeout": 5,
        "key_file": str(child_home / "keys" / "notification-keys"),
    }
    desk = make_desk({"logging": {"target": "none"}, "notifications": notifications}, init=True, recipient=HELPDESK)
    for name, value in (
        ("trusted_authserv_ids", "mx.example.org"),
        ("notify_requester_of_technician_comments", "on"),
        ("notify_participants", "on"),
    ):
        desk.set(name, value)
    desk.admin("user", "add", "tech@example.org", "--technician", "--access", "normal")
    desk.deliver_ok(opening())
    assert [m.rcpt_tos for m in smtp_sink.new_messages()] == [("alice@example.com",)]  # never the Cc list
    comment = outlook_reply_all(
        "tech@example.org",
        "Tech",
        "New toner is in.",
        to=HELPDESK,
        cc="",
        in_reply_to="<CAopening-alice@mail.example.com>",
        message_id="tech-1@example.org",
        subject="RE: Printer on floor 2 prints blank pages [Ticket #1]",
    )
    authenticated = b"Authentication-Results: mx.example.org; auth=pass smtp.auth=tech@example.org\r\n"
    comment = comment.replace(b"MIME-Version", authenticated + b"MIME-Version")
    data = desk.deliver_ok(comment)
    assert data["notify"] == [
        {"kind": "requester-comment", "recipient": "alice@example.com"},
        {"kind": "participant-comment", "recipient": "bob@example.com"},
        {"kind": "participant-comment", "recipient": "carol@example.com"},
    ], data
    sent = {m.rcpt_tos[0]: m for m in smtp_sink.new_messages()}
    assert sorted(sent) == ["alice@example.com", "bob@example.com", "carol@example.com"]
    text = email.message_from_bytes(sent["bob@example.com"].data, policy=email.policy.default).get_content()  # type: ignore[attr-defined]
    assert "on which you are copied" in text and "New toner is in." in text
    # Bob's answer is a participant's: nobody is notified (the requester only hears of technicians' comments)
    bob = outlook_reply_all(
        "bob@example.com",
        "Bob",
        "Works, thanks!",
        to=HELPDESK,
        cc="carol@example.com",
        in_reply_to="<tech-1@example.org>",
        message_id="bob-thanks@example.com",
    )
    data = desk.deliver_ok(bob)
    assert data["action"] == "update" and data["notify"] == []
    assert reason(data, "notify-participants") == "the comment is not a technician's"


def test_a_reply_to_a_notification_we_sent_finds_its_ticket(desk: Desk) -> None:
    """A notification whose token no key verifies any more (keys rotated out) is still found by its Message-ID."""
    desk.deliver_ok(opening(cc=""))
    desk.sql(
        "INSERT INTO notifications (ticket_id, kind, recipient, status, attempts, next_attempt_at, "
        "outgoing_message_id, created_at) VALUES (1, 'acknowledgement', 'alice@example.com', 'sent', 1, :now, "
        "'<e2t.old-key.1@example.org>', :now)",
        now=datetime.now(UTC),
    )
    reply = outlook_reply_all(
        "alice@example.com",
        "Alice",
        "Any news?",
        to=HELPDESK,
        cc="",
        in_reply_to="<e2t.old-key.1@example.org>",
        message_id="alice-2@example.com",
        subject="RE: Your request",
    )
    data = desk.deliver_ok(reply)
    assert data["action"] == "update" and data["ticket"] == 1, data
    assert reason(data, "thread-reference") == "In-Reply-To/References name a message stored on ticket #1"
    assert reason(data, "reply-prefix").startswith("the subject starts with a reply prefix")
