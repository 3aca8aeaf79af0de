"""Acknowledgements and loop protection through the real executables, on SQLite and PostgreSQL.

The help desk (helpdesk@example.org) sends its notifications by SMTP to a real aiosmtpd sink on
127.0.0.1 (tests/support/servers/smtpsink.py); what arrives there is what a requester's mailbox would get, and the
replies below are built from it the way a mail client builds them.
"""

from __future__ import annotations

import email
import email.policy
import json
import time
from email.message import EmailMessage
from email.utils import make_msgid
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import support.mail
from email2ticket.outbound.keys import load_keyring
from email2ticket.signals.tokens import ticket_from_message_id
from support.bounces import CORPUS_BOUNCES
from support.corpus import CORPUS_DIR, MISSING_REASON, corpus_available
from support.desk import Desk, MakeDesk, reason
from support.servers.delivery_service import StartService
from support.servers.smtpsink import Received, SmtpSink

HELPDESK = "helpdesk@example.org"
REPLY_LINE = "##- Please type your reply above this line -##"


@pytest.fixture
def key_file(child_home: Path) -> Path:
    return child_home / "keys" / "notification-keys"


@pytest.fixture
def desk(make_desk: MakeDesk, smtp_sink: SmtpSink, key_file: Path) -> Desk:
    """A help desk sending its notifications to the test's SMTP sink; every delivery is to HELPDESK."""
    notifications = {
        "from_address": f"Help Desk <{HELPDESK}>",
        "method": "smtp",
        "smtp_host": smtp_sink.host,
        "smtp_port": smtp_sink.port,
        "timeout": 5,
        "key_file": str(key_file),
    }
    return make_desk({"logging": {"target": "none"}, "notifications": notifications}, init=True, recipient=HELPDESK)


# Alice's mail client writing to the help desk (any sender keeps her name, as a forwarding client would).
mail = partial(support.mail.mail, name="Alice Example", to=HELPDESK, date=support.mail.DATE, mime=True)


def parsed(received: Received) -> EmailMessage:
    return email.message_from_bytes(received.data, policy=email.policy.default)  # type: ignore[return-value]


def client_reply(received: Received, new_text: str, *, sender: str = "alice@example.com", **headers: str) -> bytes:
    """A reply as a mail client writes it: Re: + the subject, threading headers, the original quoted."""
    original = parsed(received)
    body = original.get_content()
    quoted = "\n".join(f"> {line}" if line else ">" for line in body.splitlines())
    return support.mail.mail(
        headers.pop("subject", f"Re: {original['Subject']}"),
        f"{new_text}\n\nOn Thu, 26 Nov 2026 at 10:00, Help Desk <{HELPDESK}> wrote:\n{quoted}\n",
        sender=sender,
        to=HELPDESK,
        msgid_domain=sender.partition("@")[2] or "example.net",
        in_reply_to=original["Message-ID"],
        headers={name.replace("_", "-"): value for name, value in headers.items()},
        mime=True,
    )


# --- acknowledgements --------------------------------------------------------------------------------


def test_acknowledgements_to_forged_senders_never_carry_their_text(desk: Desk, smtp_sink: SmtpSink) -> None:
    """Spam forged from victims' addresses: each victim is acknowledged (acknowledge_unverified is on) with a
    neutral subject, never the spammer's words, also when an acknowledgement is sent again after a failure."""
    for n in range(5):
        spam = mail(f"CHEAP PILLS http://evil.example/buy-now-{n}", "buy now", sender=f"v{n}@victims.example")
        assert desk.deliver_ok(spam)["action"] == "create"
    acks = smtp_sink.new_messages()
    assert len(acks) == 5
    for ack in acks:
        message = parsed(ack)
        assert message["Subject"].startswith("Your request [Ticket #")
        assert b"evil" not in ack.data and b"PILLS" not in ack.data


def test_new_ticket_is_acknowledged_and_a_reply_to_the_acknowledgement_updates_it(
    desk: Desk, smtp_sink: SmtpSink, key_file: Path
) -> None:
    secret = "My password is hunter2 and the printer on floor 3 is broken"
    data = desk.deliver_ok(mail("Printer broken", secret))
    assert (data["action"], data["ticket"]) == ("create", 1)
    assert data["notify"] == [{"kind": "acknowledgement", "recipient": "alice@example.com"}]
    [ack] = smtp_sink.new_messages()
    assert ack.rcpt_tos == ("alice@example.com",) and ack.mail_from == HELPDESK
    message = parsed(ack)
    assert message["Subject"] == "Your request [Ticket #1]"  # alice is not authenticated: nothing she wrote
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Email2ticket-Loop"] == "example.org"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["To"] == "alice@example.com"
    keyring = load_keyring(key_file, 2)
    assert ticket_from_message_id(message["Message-ID"], keyring) == 1
    assert message["Message-ID"].endswith("@example.org>")
    body = message.get_content()
    assert body.splitlines()[0] == REPLY_LINE
    assert "hunter2" not in body and "floor 3" not in body  # never echoes the message: no spam reflector
    [sent] = desk.notifications()
    assert (sent["status"], sent["kind"], sent["outgoing_message_id"]) == (
        "sent",
        "acknowledgement",
        message["Message-ID"],
    )

    reply = desk.deliver_ok(client_reply(ack, "The printer works again, thanks!"))
    assert (reply["action"], reply["ticket"]) == ("update", 1)
    assert reply["notify"] == []  # a reply is not acknowledged
    [comment] = desk.ticket(1)["comments"]
    assert comment["body"] == "The printer works again, thanks!"
    assert smtp_sink.new_messages() == []


def test_a_reply_whose_subject_lost_the_number_updates_the_ticket_its_token_names(
    desk: Desk, smtp_sink: SmtpSink
) -> None:
    desk.deliver_ok(mail("Printer broken", "It jams."))
    [ack] = smtp_sink.new_messages()
    data = desk.deliver_ok(client_reply(ack, "Still jamming.", subject="printer"))
    assert (data["action"], data["ticket"]) == ("update", 1)
    assert "our token for ticket #1" in reason(data, "ticket-reference")
    assert desk.ticket(1)["comments"][0]["body"] == "Still jamming."
    # A stranger's mail carrying the token opens a ticket of its own that records the reference.
    desk.deliver_ok(client_reply(ack, "Me too!", sender="mallory@example.net", subject="printer"))
    stranger = desk.ticket(2)
    assert stranger["refers_to"] == 1 and stranger["requester"] == "mallory@example.net"
    # A forged token (wrong tag) names no ticket.
    forged = client_reply(ack, "Forged.", subject="printer")
    mid = parsed(ack)["Message-ID"]
    forged = forged.replace(mid.encode(), mid[:-20].encode() + b"0" * 7 + mid[-13:].encode())
    data = desk.deliver_ok(forged)
    assert data["action"] == "create" and data["ticket"] == 3


def test_no_acknowledgement_to_our_own_addresses_or_when_switched_off(desk: Desk, smtp_sink: SmtpSink) -> None:
    data = desk.deliver_ok(mail("Loop?", "From ourselves.", sender=HELPDESK))
    assert data["action"] == "create" and data["notify"] == []
    assert "one of our own addresses" in reason(data, "acknowledge")
    desk.set("own_addresses", "support@example.org")
    data = desk.deliver_ok(mail("Other address", "x", sender="support@example.org"))
    assert "one of our own addresses" in reason(data, "acknowledge")
    data = desk.deliver_ok(mail("To the recipient", "x", sender="desk@example.org"), recipient="desk@example.org")
    assert "one of our own addresses" in reason(data, "acknowledge")
    desk.set("acknowledge_new_tickets", "off")
    data = desk.deliver_ok(mail("Quiet", "x"))
    assert reason(data, "acknowledge") == "acknowledge_new_tickets is off"
    assert smtp_sink.new_messages() == []


def test_rate_limits_per_address_and_per_hour(desk: Desk, smtp_sink: SmtpSink) -> None:
    desk.set("max_autoreplies_per_day", "2")
    results = [desk.deliver_ok(mail(f"Request {name}", "x")) for name in ("one", "two", "three")]
    assert [len(r["notify"]) for r in results] == [1, 1, 0]
    assert "max_autoreplies_per_day=2" in reason(results[2], "acknowledge")
    desk.set("max_autoreplies_per_hour", "3")
    results = [desk.deliver_ok(mail(f"Other {name}", "x", sender=f"{name}@example.net")) for name in ("a", "b", "c")]
    assert [len(r["notify"]) for r in results] == [1, 0, 0]  # two were sent to alice in this hour already
    assert "max_autoreplies_per_hour=3" in reason(results[1], "acknowledge")
    assert len(smtp_sink.new_messages()) == 3


def test_unverified_and_failed_senders(desk: Desk, smtp_sink: SmtpSink) -> None:
    desk.set("trusted_authserv_ids", "mx.example.org")
    failed = {
        "Authentication-Results": "mx.example.org; dkim=fail header.d=example.com; dmarc=fail header.from=example.com"
    }
    data = desk.deliver_ok(mail("Forged", "x", headers=failed))
    assert data["action"] == "create" and data["notify"] == []
    assert "DKIM/DMARC verdict is fail" in reason(data, "acknowledge")
    desk.set("acknowledge_unverified", "off")
    data = desk.deliver_ok(mail("Unsigned", "x"))
    assert "acknowledge_unverified is off" in reason(data, "acknowledge")
    passed = {
        "Authentication-Results": "mx.example.org; dkim=pass header.d=example.com; dmarc=pass header.from=example.com"
    }
    data = desk.deliver_ok(mail("Signed", "x", headers=passed))
    assert len(data["notify"]) == 1 and "(authenticated;" in reason(data, "acknowledge")
    assert len(smtp_sink.new_messages()) == 1


def test_an_acknowledgement_keeps_only_a_subject_the_verdict_covers(desk: Desk, smtp_sink: SmtpSink) -> None:
    """A second Subject: above an authenticated mail is not what the verifier checked: the acknowledgement is
    the neutral one, never the added words."""
    desk.set("trusted_authserv_ids", "mx.example.org")
    passed = {
        "Authentication-Results": "mx.example.org; dkim=pass header.d=example.com; dmarc=pass header.from=example.com"
    }
    desk.deliver_ok(mail("Printer broken", "x", headers=passed))
    [ack] = smtp_sink.new_messages()
    assert "Printer broken" in parsed(ack)["Subject"]  # authenticated: its own subject
    doubled = b"Subject: CHEAP PILLS http://evil.example/buy\n" + mail("Printer broken again", "y", headers=passed)
    data = desk.deliver_ok(doubled)
    assert "not authenticated, acknowledge_unverified is on" in reason(data, "acknowledge")
    [ack] = smtp_sink.new_messages()
    assert parsed(ack)["Subject"] == "Your request [Ticket #2]" and b"PILLS" not in ack.data


def test_a_failed_send_never_fails_the_delivery_and_is_retried(desk: Desk, smtp_sink: SmtpSink) -> None:
    smtp_sink.data_reply = "451 4.3.0 try again later"
    data = desk.deliver_ok(mail("Printer broken", "x"))
    assert (data["action"], data["ticket"]) == ("create", 1)
    [failed] = desk.notifications()
    assert failed["status"] == "failed" and "451" in failed["last_error"] and failed["attempts"] == 1
    smtp_sink.data_reply = None
    # Not due yet: the next delivery leaves it alone; once due, the next delivery sends it.
    desk.deliver_ok(mail("Second", "y", sender="bob@example.net"))
    assert [m.rcpt_tos for m in smtp_sink.new_messages()] == [("bob@example.net",)]
    desk.sql("UPDATE notifications SET next_attempt_at = :past", past="2026-01-01 00:00:00")
    desk.deliver_ok(mail("Third", "z", sender="carol@example.net"))
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.new_messages()) == ["alice@example.com", "carol@example.net"]
    assert {n["status"] for n in desk.notifications()} == {"sent"}


def test_notifications_retry_command(desk: Desk, smtp_sink: SmtpSink) -> None:
    smtp_sink.rcpt_reply = "450 4.2.0 mailbox busy"
    desk.deliver_ok(mail("Printer broken", "x"))
    smtp_sink.rcpt_reply = None
    result = desk.admin("notifications", "retry")
    assert result.stdout_text.strip() == "0 sent, 0 failed"  # not due yet
    [row] = desk.notifications()
    result = desk.admin("notifications", "retry", str(row["id"]))
    assert result.stdout_text.strip() == "1 sent, 0 failed"
    assert len(smtp_sink.new_messages()) == 1
    # A broken sendmail: the delivery still exits 0 and the notification waits.
    desk.configure(notifications={"method": "sendmail", "sendmail": "/nonexistent/sendmail"})
    data = desk.deliver_ok(mail("Broken transport", "x", sender="dan@example.net"))
    assert data["action"] == "create"
    assert desk.notifications()[0]["status"] == "failed"


# --- incoming classification -----------------------------------------------------------------------


def test_our_own_notification_coming_back_never_opens_a_ticket(desk: Desk, smtp_sink: SmtpSink) -> None:
    desk.deliver_ok(mail("Printer broken", "x"))
    [ack] = smtp_sink.new_messages()
    data = desk.deliver_ok(ack.data, sender=HELPDESK)
    assert data["action"] == "ignore" and "loop" in reason(data, "own-mail")
    # The token alone still tells: no loop header, no Auto-Submitted, an edited body (so not a duplicate).
    stripped = ack.data.replace(b"X-Email2ticket-Loop", b"X-Other").replace(b"Auto-Submitted", b"X-Was-Auto")
    data = desk.deliver_ok(stripped.replace(b"Ticket", b"Case"))
    assert data["action"] == "ignore" and "token of ours" in reason(data, "own-mail")
    assert len(desk.tickets()) == 1 and smtp_sink.new_messages() == []
    assert [m["action"] for m in desk.messages("ignore")] == ["ignore", "ignore"]


def test_automatic_mail_is_a_note_for_a_participant_and_ignored_otherwise(desk: Desk, smtp_sink: SmtpSink) -> None:
    desk.deliver_ok(mail("Printer broken", "x"))
    [ack] = smtp_sink.new_messages()
    desk.admin("ticket", "close", "1")
    ooo = client_reply(
        ack, "I am out of the office until Monday.", subject="Automatic reply: Printer broken [Ticket #1]"
    )
    data = desk.deliver_ok(ooo.replace(b"\nMessage-ID", b"\nAuto-Submitted: auto-replied\nMessage-ID", 1))
    assert (data["action"], data["ticket"]) == ("note", 1)
    assert "auto-submitted" in reason(data, "automatic-mail") and data["notify"] == []
    ticket = desk.ticket(1)
    assert ticket["status"] == "closed" and ticket["comments"] == []
    assert ticket["notes"][0]["kind"] == "automatic" and "out of the office" in ticket["notes"][0]["body"]
    # A list message, and a robot that may not update the ticket: ignored, exit 0, kept raw.
    data = desk.deliver_ok(
        mail("Weekly digest", "news", sender="list@lists.example", headers={"List-Id": "<news.lists.example>"})
    )
    assert data["action"] == "ignore" and "list-id" in reason(data, "automatic-mail")
    desk.set("unknown_senders", "reject")
    data = desk.deliver_ok(mail("Out of Office: hello", "away", sender="robot@example.net"))
    assert data["action"] == "ignore"  # not 77: a bounce to a robot is the next loop
    assert len(desk.tickets()) == 1 and smtp_sink.new_messages() == []
    # Allowed senders are exempt: a monitoring system's alerts open tickets.
    desk.set("unknown_senders", "accept")
    desk.set("allowed_senders", "@monitor.example")
    alert = mail(
        "Disk full on srv1", "95%", sender="nagios@monitor.example", headers={"Auto-Submitted": "auto-generated"}
    )
    data = desk.deliver_ok(alert)
    assert data["action"] == "create" and "allowed_senders" in reason(data, "automatic-mail")


def test_spam_is_held_and_released_by_the_admin(desk: Desk, smtp_sink: SmtpSink) -> None:
    data = desk.deliver_ok(mail("Cheap pills", "buy", headers={"X-Spam-Flag": "YES"}))
    assert data["action"] == "hold" and data["ticket"] is None
    assert desk.deliver_ok(mail("Cheap pills", "buy", headers={"X-Spam-Flag": "YES"}))["action"] == "hold"
    [held, _] = desk.messages("hold")
    # The MTA redelivering the same bytes is a duplicate, not a second hold.
    again = desk.pipe("--json", stdin=desk.admin("messages", "show", str(held["id"]), "--raw").stdout)
    assert again.json["action"] == "duplicate"
    result = desk.admin("messages", "release", str(held["id"]))
    assert "released past spam-flag" in result.stdout_text and "(create, ticket #1)" in result.stdout_text
    assert desk.messages("released")[0]["id"] == held["id"]
    assert len(smtp_sink.new_messages()) == 1  # the released ticket is acknowledged like any other
    refused = desk.admin("messages", "release", str(held["id"]), check=False)
    assert refused.returncode == 1 and "not held" in refused.stdout_text


def test_a_flood_of_new_tickets_from_one_sender_is_held(desk: Desk) -> None:
    desk.set("max_new_tickets_per_sender_per_hour", "3")
    actions = [desk.deliver_ok(mail(f"Request {name}", "x"))["action"] for name in ("a", "b", "c", "d", "e")]
    assert actions == ["create", "create", "create", "hold", "hold"]
    held = desk.messages("hold")
    assert "max_new_tickets_per_sender_per_hour=3" in " ".join(held[0]["reasons"])
    assert desk.messages("hold")[0]["held_by"] == "sender-flood"
    assert "released past sender-flood" in desk.admin("messages", "release", str(held[0]["id"])).stdout_text
    assert len(desk.tickets()) == 4


def test_explain_names_the_classification_signals(desk: Desk, smtp_sink: SmtpSink) -> None:
    raw = mail("Out of Office: Printer", "away", headers={"Auto-Submitted": "auto-replied", "Precedence": "bulk"})
    result = desk.admin("explain", "--recipient", HELPDESK, stdin=raw)
    lines = result.stdout_text.splitlines()
    automatic = next(line for line in lines if line.startswith("automatic-mail: HIT"))
    assert "auto-submitted" in automatic and "precedence" in automatic and "out-of-office-subject" in automatic
    assert lines[-1].startswith("Decision: ignore")
    result = desk.admin("explain", "--recipient", HELPDESK, stdin=mail("Printer", "broken"))
    assert "acknowledge: HIT" in result.stdout_text
    assert result.stdout_text.rstrip().endswith("Notify: acknowledgement to alice@example.com")
    assert smtp_sink.new_messages() == [] and desk.tickets() == []  # explain writes and sends nothing


# --- bounces ----------------------------------------------------------------------------------------


def dsn(original: Received, *, status: str = "5.1.1", action: str = "failed") -> bytes:
    """A Postfix-style RFC 3464 report for `original`, from MAILER-DAEMON."""
    headers = original.data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode()
    recipient = original.rcpt_tos[0]
    return (
        "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\n"
        f"To: {HELPDESK}\nSubject: Undelivered Mail Returned to Sender\n"
        f"Message-ID: {make_msgid(domain='mx.example.com')}\nDate: Thu, 26 Nov 2026 10:05:00 +0000\n"
        "Auto-Submitted: auto-replied\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nI'm sorry to have to inform you that your message could not be delivered.\n\n"
        f"<{recipient}>: host mx.example.com said: 550 {status} no such user\n\n"
        "--B\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.com\n\n"
        f"Final-Recipient: rfc822; {recipient}\nAction: {action}\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; 550 {status} no such user\n\n"
        f"--B\nContent-Type: text/rfc822-headers\n\n{headers.replace(chr(13), '')}\n\n--B--\n"
    ).encode()


def test_a_hard_bounce_of_an_acknowledgement_is_noted_and_stops_notifying(desk: Desk, smtp_sink: SmtpSink) -> None:
    desk.deliver_ok(mail("Printer broken", "x"))
    [ack] = smtp_sink.new_messages()
    data = desk.deliver_ok(dsn(ack), sender="")
    assert (data["action"], data["ticket"]) == ("note", 1)
    assert "5.1.1" in reason(data, "bounce") and "#1" in reason(data, "bounce-linked")
    note = desk.ticket(1)["notes"][0]
    assert note["kind"] == "bounce" and "alice@example.com" in note["body"]
    assert desk.notifications()[0]["status"] == "bounced"
    blocked = json.loads(desk.admin("notifications", "blocked", "--json").stdout)
    assert [b["address"] for b in blocked] == ["alice@example.com"]
    data = desk.deliver_ok(mail("Another problem", "y"))
    assert data["action"] == "create" and "hard-bounced" in reason(data, "acknowledge")
    desk.admin("notifications", "unblock", "alice@example.com")
    assert len(desk.deliver_ok(mail("Third problem", "z"))["notify"]) == 1
    # A bounce that names no notification of ours (someone else's mail) is ignored, never a ticket.
    stray = Received("helpdesk@example.org", ("nobody@example.net",), mail("Hello", "x", sender="nobody@example.net"))
    data = desk.deliver_ok(dsn(stray), sender="")
    assert data["action"] == "ignore" and len(desk.tickets()) == 3


def test_a_forged_bounce_cannot_silence_another_participant(desk: Desk, smtp_sink: SmtpSink) -> None:
    """A report quoting the acknowledgement its forger received, with the technician as its failed recipient,
    blocks nobody: only the recipient of the notification the report names can be blocked by it."""
    desk.admin("user", "add", "bob@example.org", "--technician", "--access", "normal")
    desk.deliver_ok(mail("Printer broken", "It jams."))
    [ack] = smtp_sink.new_messages()
    desk.admin("ticket", "assign", "1", "bob@example.org")
    desk.set("notify_technician_of_updates", "on")
    forged = dsn(Received("", ("bob@example.org",), ack.data))  # alice's acknowledgement, "bounced" by bob
    data = desk.deliver_ok(forged, sender="")
    assert (data["action"], data["ticket"]) == ("note", 1)
    why = reason(data, "hard-bounce")
    assert why.startswith("the notification the report names went to alice@example.com, not to bob@example.org"), why
    assert json.loads(desk.admin("notifications", "blocked", "--json").stdout) == []
    assert "Not acted on: the notification the report names went to" in desk.ticket(1)["notes"][0]["body"]
    # Bob still hears of alice's reply ...
    data = desk.deliver_ok(client_reply(ack, "It also smells of smoke."))
    assert data["notify"] == [{"kind": "technician-update", "recipient": "bob@example.org"}]
    [update] = smtp_sink.new_messages()
    assert update.rcpt_tos == ("bob@example.org",)
    # ... and a genuine report of a notification to him does block him.
    data = desk.deliver_ok(dsn(update), sender="")
    assert reason(data, "hard-bounce") == "a permanent failure: no more notifications to bob@example.org"
    blocked = json.loads(desk.admin("notifications", "blocked", "--json").stdout)
    assert [b["address"] for b in blocked] == ["bob@example.org"]


def test_a_soft_bounce_is_noted_without_blocking(desk: Desk, smtp_sink: SmtpSink) -> None:
    desk.deliver_ok(mail("Printer broken", "x"))
    [ack] = smtp_sink.new_messages()
    data = desk.deliver_ok(dsn(ack, status="4.2.2", action="delayed"), sender="")
    assert data["action"] == "note"
    assert json.loads(desk.admin("notifications", "blocked", "--json").stdout) == []


# --- loops ---------------------------------------------------------------------------------------


ROBOTS = {
    # RFC 3834: Auto-Submitted, "Automatic reply:" subject, threading headers.
    "rfc3834": lambda received, n: client_reply(
        received,
        f"I am away ({n}).",
        subject=f"Automatic reply: {parsed(received)['Subject']}",
        Auto_Submitted="auto-replied",
    ),
    # No header says it is a robot; it keeps the subject and threads like a mail client.
    "plain": lambda received, n: client_reply(received, f"Thank you for your mail ({n})."),
    # A fixed subject (the number is lost), no robot headers: only our token in In-Reply-To tells.
    "fixed-subject": lambda received, n: client_reply(received, f"Your mail was received ({n}).", subject="Thanks!"),
}


@pytest.mark.parametrize("robot", sorted(ROBOTS))
def test_an_autoresponder_cannot_start_a_loop(desk: Desk, robot: str, smtp_sink: SmtpSink) -> None:
    """An auto-responder answers every mail it gets, for 100 rounds: one acknowledgement, one ticket."""
    answer = ROBOTS[robot]
    desk.deliver_ok(mail("Printer broken", "x"))
    inbox = smtp_sink.new_messages()
    last = inbox[-1]
    actions = set()
    for round_ in range(100):
        actions.add(desk.deliver_here(answer(last, round_)))
        inbox = smtp_sink.new_messages()
        last = inbox[-1] if inbox else last  # it answers whatever it got last, again and again
    assert len(smtp_sink.messages) == 1
    assert [t["id"] for t in desk.tickets()] == [1]
    assert actions == {"note" if robot == "rfc3834" else "update"}


def test_a_robot_that_never_threads_is_stopped_by_the_flood_limit(desk: Desk, smtp_sink: SmtpSink) -> None:
    """The worst robot: a fixed subject, no threading, no robot headers. Each mail is a new ticket until
    the flood limit holds the rest; acknowledgements stop with it."""
    desk.deliver_ok(mail("Printer broken", "x"))
    actions = [desk.deliver_here(mail("Thank you for your mail", f"round {n}")) for n in range(30)]
    assert actions == ["create"] * 9 + ["hold"] * 21  # 10 new tickets in the hour, the first included
    assert len(desk.tickets()) == 10 and len(smtp_sink.messages) == 10


# --- notifications of updates, and the resident service ------------------------------------------------


def test_technician_and_requester_notifications(desk: Desk, smtp_sink: SmtpSink) -> None:
    desk.set("trusted_authserv_ids", "mx.example.org")
    desk.admin("user", "add", "bob@example.org", "--technician", "--access", "normal")
    desk.deliver_ok(mail("Printer broken", "It jams."))
    [ack] = smtp_sink.new_messages()
    desk.admin("ticket", "assign", "1", "bob@example.org")
    desk.set("notify_technician_of_updates", "on")
    data = desk.deliver_ok(client_reply(ack, "It also smells of smoke."))
    assert data["notify"] == [{"kind": "technician-update", "recipient": "bob@example.org"}]
    [update] = smtp_sink.new_messages()
    message = parsed(update)
    assert update.rcpt_tos == ("bob@example.org",) and message["Auto-Submitted"] == "auto-generated"
    assert message["Subject"].endswith("[Ticket #1]") and "It also smells of smoke." in message.get_content()

    desk.set("notify_requester_of_technician_comments", "on")
    authenticated = {"Authentication-Results": "mx.example.org; auth=pass smtp.auth=bob@example.org"}
    comment_by_bob = client_reply(ack, "A new fuser is on its way.", sender="bob@example.org", **_h(authenticated))
    data = desk.deliver_ok(comment_by_bob)
    assert data["action"] == "update" and data["notify"] == [
        {"kind": "requester-comment", "recipient": "alice@example.com"}
    ]
    [comment] = smtp_sink.new_messages()
    assert comment.rcpt_tos == ("alice@example.com",) and "A new fuser is on its way." in parsed(comment).get_content()
    # Without proof it is Bob, his mail opens a flagged ticket and nothing is relayed to Alice as his.
    data = desk.deliver_ok(client_reply(ack, "Send me your password.", sender="bob@example.org"))
    assert data["action"] == "create" and desk.ticket(data["ticket"])["unverified_sender"]
    assert [m.rcpt_tos for m in smtp_sink.new_messages()] == [("bob@example.org",)]  # only its acknowledgement


def _h(headers: dict[str, str]) -> dict[str, str]:
    """Header names as client_reply's keyword arguments take them."""
    return {name.replace("-", "_"): value for name, value in headers.items()}


def test_the_resident_service_sends_the_acknowledgement_too(
    desk: Desk, start_service: StartService, smtp_sink: SmtpSink, child_home: Path
) -> None:
    service = start_service(desk.url, config=desk.config, home=child_home)
    result = desk.deliver(mail("Printer broken", "x"), "--socket", str(service.socket))
    assert result.returncode == 0 and result.json["notify"][0]["kind"] == "acknowledgement", result
    with service.lmtp() as lmtp:
        replies = lmtp.send(mail("Scanner broken", "y", sender="bob@example.net"), "bob@example.net", [HELPDESK])
    assert [code for code, _ in replies] == [250]
    # The service answers the MTA first and sends on its next free thread.
    deadline = time.monotonic() + 30
    while len(smtp_sink.messages) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.new_messages()) == ["alice@example.com", "bob@example.net"]


@pytest.mark.skipif(not corpus_available(), reason=MISSING_REASON)
def test_real_bounces_from_the_corpus_never_open_tickets(desk: Desk, smtp_sink: SmtpSink) -> None:
    """Every real bounce of the shared corpus, through the executable: recognised, kept, never a ticket, exit 0.
    None answers a notification of ours, so each is ignored (test_bounce.py checks what each report says)."""
    for path in sorted(CORPUS_BOUNCES):
        data = desk.deliver_ok((CORPUS_DIR / path).read_bytes(), sender="")
        assert data["action"] in ("ignore", "duplicate"), (path, data)
        if data["action"] == "ignore":
            assert reason(data, "bounce").startswith("a delivery failure report"), path
            assert reason(data, "bounce-linked").startswith("the report names no notification"), path
    assert desk.tickets() == [] and smtp_sink.new_messages() == []
    assert len(desk.messages("ignore")) >= len(CORPUS_BOUNCES) - 2  # the otobo sample exists twice


def test_init_without_a_home_for_the_key(run_admin: Any, sqlite_url: str, tmp_path: Path) -> None:
    """A system user without a usable home (HOME=/nonexistent) can still init the schema when notifications are
    off; with them on, the missing key is an error (deliveries would defer without it). A HOME under a plain
    file stands for it: not even root can create directories there."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    env = {"HOME": str(blocker / "home")}
    result = run_admin("--database-url", sqlite_url, "init", env=env)
    assert result.returncode == 0 and "warning: no notification key made" in result.stderr_text, result
    config = tmp_path / "on.toml"
    config.write_text(f'[notifications]\nfrom_address = "{HELPDESK}"\n')
    result = run_admin("--config", config, "--database-url", sqlite_url, "init", env=env)
    assert result.returncode == 75 and "not-a-directory" in result.stderr_first_line, result


def test_a_missing_key_file_keeps_the_acknowledgement_pending_with_the_reason(
    desk: Desk, smtp_sink: SmtpSink, key_file: Path
) -> None:
    """Notifications on, no key file (init was run as another user, or the file was lost): the delivery still
    exits 0 with its ticket committed; the acknowledgement waits, `pending`, no attempt counted, with the reason on
    it, and goes out once `init` has made the key. Only a reply carrying one of our tokens defers (75): without
    the key nobody can tell which ticket it answers. examples/config.toml and README.md say the same."""
    key_file.unlink()
    data = desk.deliver_ok(mail("Printer broken", "x"))
    assert (data["action"], data["ticket"], data["exit_code"]) == ("create", 1, 0)
    [row] = desk.notifications()
    assert (row["status"], row["attempts"]) == ("pending", 0), row
    assert f"notification key file {key_file} does not exist" in row["last_error"]
    assert "email2ticket init" in row["last_error"]
    assert smtp_sink.new_messages() == []

    token = "<e2t.1.k0a1b2c.0123456789ab.0123456789abcdef0123456789abcdef@example.org>"
    reply = mail("Still broken", "y", headers={"In-Reply-To": token})
    deferred = desk.pipe("--recipient", HELPDESK, stdin=reply)
    assert deferred.returncode == 75 and "does not exist" in deferred.stderr_first_line, deferred

    desk.admin("init")  # makes the key; the waiting acknowledgement is sent by the next retry
    assert desk.admin("notifications", "retry", str(row["id"])).stdout_text.strip() == "1 sent, 0 failed"
    assert [m.rcpt_tos for m in smtp_sink.new_messages()] == [("alice@example.com",)]
