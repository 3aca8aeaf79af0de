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
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from email2ticket.outbound.keys import load_keyring
from email2ticket.signals.tokens import ticket_from_message_id
from support.corpus import CORPUS_DIR, MISSING_REASON, corpus_available
from support.servers.smtpsink import Received, SmtpSink

HELPDESK = "helpdesk@example.org"
REPLY_LINE = "##- Please type your reply above this line -##"


class Desk:
    """One help desk on a fresh database, with notifications sent to the test's SMTP sink."""

    def __init__(self, url: str, run_deliver: Any, run_admin: Any, sink: SmtpSink, home: Path) -> None:
        self.url, self._deliver, self._admin, self.sink = url, run_deliver, run_admin, sink
        self.config = home / "email2ticket.toml"
        self.key_file = home / "keys" / "notification-keys"
        self.configure()
        self.admin("init")
        self.seen = 0  # sink messages already taken by `new_mail`

    def configure(self, extra: str = "", *, method: str = "smtp") -> None:
        self.config.write_text(
            '[logging]\ntarget = "none"\n'
            f'[notifications]\nfrom_address = "Help Desk <{HELPDESK}>"\nmethod = "{method}"\n'
            f'smtp_host = "{self.sink.host}"\nsmtp_port = {self.sink.port}\ntimeout = 5\n'
            f'key_file = "{self.key_file}"\n{extra}'
        )

    def deliver(self, raw: bytes, *, sender: str | None = None, recipient: str = HELPDESK) -> dict[str, Any]:
        args = ["--config", str(self.config), "--database-url", self.url, "--json", "--recipient", recipient]
        args += ["--sender", sender] if sender is not None else []
        result = self._deliver(*args, stdin=raw)
        assert result.returncode == 0, result
        data: dict[str, Any] = result.json
        return data

    def deliver_here(self, raw: bytes, *, recipient: str = HELPDESK) -> str:
        """The pipe's delivery and sending, in this process (the same functions): for the long loop tests."""
        from email2ticket.cli.deliver import deliver_message
        from email2ticket.config.load import load_config
        from email2ticket.mail.envelope import Envelope
        from email2ticket.outbound.send import after_delivery
        from email2ticket.store.delivery import DeliveryStore

        config = load_config(str(self.config), database_url=self.url, environ={})
        store = DeliveryStore(self.url, lock_timeout=config.lock_timeout)
        try:
            outcome = deliver_message(raw, Envelope(None, recipient, None), store, config, dry_run=False)
            after_delivery(store, config, outcome)
        finally:
            store.dispose()
        return outcome.decision.action

    def admin(self, *args: str, stdin: bytes = b"", check: bool = True) -> Any:
        result = self._admin("--config", self.config, "--database-url", self.url, *args, stdin=stdin)
        assert result.returncode == 0 or not check, result
        return result

    def set(self, name: str, value: str) -> None:
        self.admin("settings", "set", name, value)

    def ticket(self, number: int) -> dict[str, Any]:
        return json.loads(self.admin("ticket", "show", str(number), "--json").stdout)  # type: ignore[no-any-return]

    def tickets(self) -> list[dict[str, Any]]:
        return json.loads(self.admin("tickets", "list", "--json").stdout)  # type: ignore[no-any-return]

    def messages(self, action: str | None = None) -> list[dict[str, Any]]:
        args = ["messages", "list", "--json"] + (["--action", action] if action else [])
        return json.loads(self.admin(*args).stdout)  # type: ignore[no-any-return]

    def notifications(self) -> list[dict[str, Any]]:
        return json.loads(self.admin("notifications", "list", "--json").stdout)  # type: ignore[no-any-return]

    def new_mail(self) -> list[Received]:
        """What the sink received since the last call."""
        messages = self.sink.messages
        fresh, self.seen = messages[self.seen :], len(messages)
        return fresh

    def sql(self, statement: str, **params: Any) -> list[Any]:
        engine = create_engine(self.url)
        try:
            with engine.begin() as connection:
                result = connection.execute(text(statement), params)
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()


@pytest.fixture
def sink() -> Any:
    with SmtpSink() as running:
        yield running


@pytest.fixture
def desk(database_url: str, run_deliver: Any, run_admin: Any, sink: SmtpSink, child_home: Path) -> Desk:
    return Desk(database_url, run_deliver, run_admin, sink, child_home)


def mail(
    subject: str,
    body: str,
    *,
    sender: str = "alice@example.com",
    headers: dict[str, str] | None = None,
) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = f"Alice Example <{sender}>" if sender else ""
    message["To"] = HELPDESK
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="example.com")
    message["Date"] = "Thu, 26 Nov 2026 10:00:00 +0000"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes()


def parsed(received: Received) -> EmailMessage:
    return email.message_from_bytes(received.data, policy=email.policy.default)  # type: ignore[return-value]


def client_reply(received: Received, new_text: str, *, sender: str = "alice@example.com", **headers: str) -> bytes:
    """A reply as a mail client writes it: Re: + the subject, threading headers, the original quoted."""
    original = parsed(received)
    body = original.get_content()
    quoted = "\n".join(f"> {line}" if line else ">" for line in body.splitlines())
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = HELPDESK
    message["Subject"] = headers.pop("subject", f"Re: {original['Subject']}")
    message["Message-ID"] = make_msgid(domain=sender.partition("@")[2] or "example.net")
    message["In-Reply-To"] = original["Message-ID"]
    message["References"] = original["Message-ID"]
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(f"{new_text}\n\nOn Thu, 26 Nov 2026 at 10:00, Help Desk <{HELPDESK}> wrote:\n{quoted}\n")
    return message.as_bytes()


def reason(data: dict[str, Any], rule: str) -> str:
    return next(r.split(": ", 1)[1] for r in data["reasons"] if r.startswith(rule + ": "))


# --- acknowledgements --------------------------------------------------------------------------------


def test_new_ticket_is_acknowledged_and_a_reply_to_the_acknowledgement_updates_it(desk: Desk) -> None:
    secret = "My password is hunter2 and the printer on floor 3 is broken"
    data = desk.deliver(mail("Printer broken", secret))
    assert (data["action"], data["ticket"]) == ("create", 1)
    assert data["notify"] == [{"kind": "acknowledgement", "recipient": "alice@example.com"}]
    [ack] = desk.new_mail()
    assert ack.rcpt_tos == ("alice@example.com",) and ack.mail_from == HELPDESK
    message = parsed(ack)
    assert message["Subject"] == "Printer broken [Ticket #1]"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Email2ticket-Loop"] == "example.org"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["To"] == "alice@example.com"
    keyring = load_keyring(desk.key_file, 2)
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

    reply = desk.deliver(client_reply(ack, "The printer works again, thanks!"))
    assert (reply["action"], reply["ticket"]) == ("update", 1)
    assert reply["notify"] == []  # a reply is not acknowledged
    [comment] = desk.ticket(1)["comments"]
    assert comment["body"] == "The printer works again, thanks!"
    assert desk.new_mail() == []


def test_a_reply_whose_subject_lost_the_number_updates_the_ticket_its_token_names(desk: Desk) -> None:
    desk.deliver(mail("Printer broken", "It jams."))
    [ack] = desk.new_mail()
    data = desk.deliver(client_reply(ack, "Still jamming.", subject="printer"))
    assert (data["action"], data["ticket"]) == ("update", 1)
    assert "our token for ticket #1" in reason(data, "ticket-reference")
    assert desk.ticket(1)["comments"][0]["body"] == "Still jamming."
    # A stranger's mail carrying the token opens a ticket of its own that records the reference.
    desk.deliver(client_reply(ack, "Me too!", sender="mallory@example.net", subject="printer"))
    stranger = desk.ticket(2)
    assert stranger["refers_to"] == 1 and stranger["requester"] == "mallory@example.net"
    # A forged token (wrong tag) names no ticket.
    forged = client_reply(ack, "Forged.", subject="printer")
    mid = parsed(ack)["Message-ID"]
    forged = forged.replace(mid.encode(), mid[:-20].encode() + b"0" * 7 + mid[-13:].encode())
    data = desk.deliver(forged)
    assert data["action"] == "create" and data["ticket"] == 3


def test_no_acknowledgement_to_our_own_addresses_or_when_switched_off(desk: Desk) -> None:
    data = desk.deliver(mail("Loop?", "From ourselves.", sender=HELPDESK))
    assert data["action"] == "create" and data["notify"] == []
    assert "one of our own addresses" in reason(data, "acknowledge")
    desk.set("own_addresses", "support@example.org")
    data = desk.deliver(mail("Other address", "x", sender="support@example.org"))
    assert "one of our own addresses" in reason(data, "acknowledge")
    data = desk.deliver(mail("To the recipient", "x", sender="desk@example.org"), recipient="desk@example.org")
    assert "one of our own addresses" in reason(data, "acknowledge")
    desk.set("acknowledge_new_tickets", "off")
    data = desk.deliver(mail("Quiet", "x"))
    assert reason(data, "acknowledge") == "acknowledge_new_tickets is off"
    assert desk.new_mail() == []


def test_rate_limits_per_address_and_per_hour(desk: Desk) -> None:
    desk.set("max_autoreplies_per_day", "2")
    results = [desk.deliver(mail(f"Request {name}", "x")) for name in ("one", "two", "three")]
    assert [len(r["notify"]) for r in results] == [1, 1, 0]
    assert "max_autoreplies_per_day=2" in reason(results[2], "acknowledge")
    desk.set("max_autoreplies_per_hour", "3")
    results = [desk.deliver(mail(f"Other {name}", "x", sender=f"{name}@example.net")) for name in ("a", "b", "c")]
    assert [len(r["notify"]) for r in results] == [1, 0, 0]  # two were sent to alice in this hour already
    assert "max_autoreplies_per_hour=3" in reason(results[1], "acknowledge")
    assert len(desk.new_mail()) == 3


def test_unverified_and_failed_senders(desk: Desk) -> None:
    desk.set("trusted_authserv_ids", "mx.example.org")
    failed = {
        "Authentication-Results": "mx.example.org; dkim=fail header.d=example.com; dmarc=fail header.from=example.com"
    }
    data = desk.deliver(mail("Forged", "x", headers=failed))
    assert data["action"] == "create" and data["notify"] == []
    assert "DKIM/DMARC verdict is fail" in reason(data, "acknowledge")
    desk.set("acknowledge_unverified", "off")
    data = desk.deliver(mail("Unsigned", "x"))
    assert "acknowledge_unverified is off" in reason(data, "acknowledge")
    passed = {
        "Authentication-Results": "mx.example.org; dkim=pass header.d=example.com; dmarc=pass header.from=example.com"
    }
    data = desk.deliver(mail("Signed", "x", headers=passed))
    assert len(data["notify"]) == 1 and "(authenticated;" in reason(data, "acknowledge")
    assert len(desk.new_mail()) == 1


def test_a_failed_send_never_fails_the_delivery_and_is_retried(desk: Desk) -> None:
    desk.sink.data_reply = "451 4.3.0 try again later"
    data = desk.deliver(mail("Printer broken", "x"))
    assert (data["action"], data["ticket"]) == ("create", 1)
    [failed] = desk.notifications()
    assert failed["status"] == "failed" and "451" in failed["last_error"] and failed["attempts"] == 1
    desk.sink.data_reply = None
    # Not due yet: the next delivery leaves it alone; once due, the next delivery sends it.
    desk.deliver(mail("Second", "y", sender="bob@example.net"))
    assert [m.rcpt_tos for m in desk.new_mail()] == [("bob@example.net",)]
    desk.sql("UPDATE notifications SET next_attempt_at = :past", past="2026-01-01 00:00:00")
    desk.deliver(mail("Third", "z", sender="carol@example.net"))
    assert sorted(m.rcpt_tos[0] for m in desk.new_mail()) == ["alice@example.com", "carol@example.net"]
    assert {n["status"] for n in desk.notifications()} == {"sent"}


def test_notifications_retry_command(desk: Desk) -> None:
    desk.sink.rcpt_reply = "450 4.2.0 mailbox busy"
    desk.deliver(mail("Printer broken", "x"))
    desk.sink.rcpt_reply = None
    result = desk.admin("notifications", "retry")
    assert result.stdout_text.strip() == "0 sent, 0 failed"  # not due yet
    [row] = desk.notifications()
    result = desk.admin("notifications", "retry", str(row["id"]))
    assert result.stdout_text.strip() == "1 sent, 0 failed"
    assert len(desk.new_mail()) == 1
    # A broken sendmail: the delivery still exits 0 and the notification waits.
    desk.configure('sendmail = "/nonexistent/sendmail"\n', method="sendmail")
    data = desk.deliver(mail("Broken transport", "x", sender="dan@example.net"))
    assert data["action"] == "create"
    assert desk.notifications()[0]["status"] == "failed"


# --- incoming classification -----------------------------------------------------------------------


def test_our_own_notification_coming_back_never_opens_a_ticket(desk: Desk) -> None:
    desk.deliver(mail("Printer broken", "x"))
    [ack] = desk.new_mail()
    data = desk.deliver(ack.data, sender=HELPDESK)
    assert data["action"] == "ignore" and "loop" in reason(data, "own-mail")
    # The token alone still tells: no loop header, no Auto-Submitted, an edited body (so not a duplicate).
    stripped = ack.data.replace(b"X-Email2ticket-Loop", b"X-Other").replace(b"Auto-Submitted", b"X-Was-Auto")
    data = desk.deliver(stripped.replace(b"Ticket", b"Case"))
    assert data["action"] == "ignore" and "token of ours" in reason(data, "own-mail")
    assert len(desk.tickets()) == 1 and desk.new_mail() == []
    assert [m["action"] for m in desk.messages("ignore")] == ["ignore", "ignore"]


def test_automatic_mail_is_a_note_for_a_participant_and_ignored_otherwise(desk: Desk) -> None:
    desk.deliver(mail("Printer broken", "x"))
    [ack] = desk.new_mail()
    desk.admin("ticket", "close", "1")
    ooo = client_reply(
        ack, "I am out of the office until Monday.", subject="Automatic reply: Printer broken [Ticket #1]"
    )
    data = desk.deliver(ooo.replace(b"\nMessage-ID", b"\nAuto-Submitted: auto-replied\nMessage-ID", 1))
    assert (data["action"], data["ticket"]) == ("note", 1)
    assert "auto-submitted" in reason(data, "automatic-mail") and data["notify"] == []
    ticket = desk.ticket(1)
    assert ticket["status"] == "closed" and ticket["comments"] == []
    assert ticket["notes"][0]["kind"] == "automatic" and "out of the office" in ticket["notes"][0]["body"]
    # A list message, and a robot that may not update the ticket: ignored, exit 0, kept raw.
    data = desk.deliver(
        mail("Weekly digest", "news", sender="list@lists.example", headers={"List-Id": "<news.lists.example>"})
    )
    assert data["action"] == "ignore" and "list-id" in reason(data, "automatic-mail")
    desk.set("unknown_senders", "reject")
    data = desk.deliver(mail("Out of Office: hello", "away", sender="robot@example.net"))
    assert data["action"] == "ignore"  # not 77: a bounce to a robot is the next loop
    assert len(desk.tickets()) == 1 and desk.new_mail() == []
    # Allowed senders are exempt: a monitoring system's alerts open tickets.
    desk.set("unknown_senders", "accept")
    desk.set("allowed_senders", "@monitor.example")
    alert = mail(
        "Disk full on srv1", "95%", sender="nagios@monitor.example", headers={"Auto-Submitted": "auto-generated"}
    )
    data = desk.deliver(alert)
    assert data["action"] == "create" and "allowed_senders" in reason(data, "automatic-mail")


def test_spam_is_held_and_released_by_the_admin(desk: Desk) -> None:
    data = desk.deliver(mail("Cheap pills", "buy", headers={"X-Spam-Flag": "YES"}))
    assert data["action"] == "hold" and data["ticket"] is None
    assert desk.deliver(mail("Cheap pills", "buy", headers={"X-Spam-Flag": "YES"}))["action"] == "hold"
    [held, _] = desk.messages("hold")
    again = desk._deliver(  # the MTA redelivering the same bytes is a duplicate, not a second hold
        "--config",
        str(desk.config),
        "--database-url",
        desk.url,
        "--json",
        stdin=desk.admin("messages", "show", str(held["id"]), "--raw").stdout,
    )
    assert again.json["action"] == "duplicate"
    result = desk.admin("messages", "release", str(held["id"]))
    assert "released past spam-flag" in result.stdout_text and "(create, ticket #1)" in result.stdout_text
    assert desk.messages("released")[0]["id"] == held["id"]
    assert len(desk.new_mail()) == 1  # the released ticket is acknowledged like any other
    refused = desk.admin("messages", "release", str(held["id"]), check=False)
    assert refused.returncode == 1 and "not held" in refused.stdout_text


def test_a_flood_of_new_tickets_from_one_sender_is_held(desk: Desk) -> None:
    desk.set("max_new_tickets_per_sender_per_hour", "3")
    actions = [desk.deliver(mail(f"Request {name}", "x"))["action"] for name in ("a", "b", "c", "d", "e")]
    assert actions == ["create", "create", "create", "hold", "hold"]
    held = desk.messages("hold")
    assert "max_new_tickets_per_sender_per_hour=3" in " ".join(held[0]["reasons"])
    assert desk.messages("hold")[0]["held_by"] == "sender-flood"
    assert "released past sender-flood" in desk.admin("messages", "release", str(held[0]["id"])).stdout_text
    assert len(desk.tickets()) == 4


def test_explain_names_the_classification_signals(desk: Desk) -> None:
    raw = mail("Out of Office: Printer", "away", headers={"Auto-Submitted": "auto-replied", "Precedence": "bulk"})
    result = desk.admin("explain", "--recipient", HELPDESK, stdin=raw)
    lines = result.stdout_text.splitlines()
    automatic = next(line for line in lines if line.startswith("automatic-mail: HIT"))
    assert "auto-submitted" in automatic and "precedence" in automatic and "out-of-office-subject" in automatic
    assert lines[-1].startswith("Decision: ignore")
    result = desk.admin("explain", "--recipient", HELPDESK, stdin=mail("Printer", "broken"))
    assert "acknowledge: HIT" in result.stdout_text
    assert result.stdout_text.rstrip().endswith("Notify: acknowledgement to alice@example.com")
    assert desk.new_mail() == [] and desk.tickets() == []  # explain writes and sends nothing


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


def test_a_hard_bounce_of_an_acknowledgement_is_noted_and_stops_notifying(desk: Desk) -> None:
    desk.deliver(mail("Printer broken", "x"))
    [ack] = desk.new_mail()
    data = desk.deliver(dsn(ack), sender="")
    assert (data["action"], data["ticket"]) == ("note", 1)
    assert "5.1.1" in reason(data, "bounce") and "#1" in reason(data, "bounce-linked")
    note = desk.ticket(1)["notes"][0]
    assert note["kind"] == "bounce" and "alice@example.com" in note["body"]
    assert desk.notifications()[0]["status"] == "bounced"
    blocked = json.loads(desk.admin("notifications", "blocked", "--json").stdout)
    assert [b["address"] for b in blocked] == ["alice@example.com"]
    data = desk.deliver(mail("Another problem", "y"))
    assert data["action"] == "create" and "hard-bounced" in reason(data, "acknowledge")
    desk.admin("notifications", "unblock", "alice@example.com")
    assert len(desk.deliver(mail("Third problem", "z"))["notify"]) == 1
    # A bounce that names no notification of ours (someone else's mail) is ignored, never a ticket.
    stray = Received("helpdesk@example.org", ("nobody@example.net",), mail("Hello", "x", sender="nobody@example.net"))
    data = desk.deliver(dsn(stray), sender="")
    assert data["action"] == "ignore" and len(desk.tickets()) == 3


def test_a_soft_bounce_is_noted_without_blocking(desk: Desk) -> None:
    desk.deliver(mail("Printer broken", "x"))
    [ack] = desk.new_mail()
    data = desk.deliver(dsn(ack, status="4.2.2", action="delayed"), sender="")
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
def test_an_autoresponder_cannot_start_a_loop(desk: Desk, robot: str) -> None:
    """An auto-responder answers every mail it gets, for 100 rounds: one acknowledgement, one ticket."""
    answer = ROBOTS[robot]
    desk.deliver(mail("Printer broken", "x"))
    inbox = desk.new_mail()
    last = inbox[-1]
    actions = set()
    for round_ in range(100):
        actions.add(desk.deliver_here(answer(last, round_)))
        inbox = desk.new_mail()
        last = inbox[-1] if inbox else last  # it answers whatever it got last, again and again
    assert len(desk.sink.messages) == 1
    assert [t["id"] for t in desk.tickets()] == [1]
    assert actions == {"note" if robot == "rfc3834" else "update"}


def test_a_robot_that_never_threads_is_stopped_by_the_flood_limit(desk: Desk) -> None:
    """The worst robot: a fixed subject, no threading, no robot headers. Each mail is a new ticket until
    the flood limit holds the rest; acknowledgements stop with it."""
    desk.deliver(mail("Printer broken", "x"))
    actions = [desk.deliver_here(mail("Thank you for your mail", f"round {n}")) for n in range(30)]
    assert actions == ["create"] * 9 + ["hold"] * 21  # 10 new tickets in the hour, the first included
    assert len(desk.tickets()) == 10 and len(desk.sink.messages) == 10


# --- notifications of updates, and the resident service ------------------------------------------------


def test_technician_and_requester_notifications(desk: Desk) -> None:
    desk.set("trusted_authserv_ids", "mx.example.org")
    desk.admin("user", "add", "bob@example.org", "--technician", "--access", "normal")
    desk.deliver(mail("Printer broken", "It jams."))
    [ack] = desk.new_mail()
    desk.admin("ticket", "assign", "1", "bob@example.org")
    desk.set("notify_technician_of_updates", "on")
    data = desk.deliver(client_reply(ack, "It also smells of smoke."))
    assert data["notify"] == [{"kind": "technician-update", "recipient": "bob@example.org"}]
    [update] = desk.new_mail()
    message = parsed(update)
    assert update.rcpt_tos == ("bob@example.org",) and message["Auto-Submitted"] == "auto-generated"
    assert message["Subject"].endswith("[Ticket #1]") and "It also smells of smoke." in message.get_content()

    desk.set("notify_requester_of_technician_comments", "on")
    authenticated = {"Authentication-Results": "mx.example.org; auth=pass smtp.auth=bob@example.org"}
    data = desk.deliver(client_reply(ack, "A new fuser is on its way.", sender="bob@example.org", **_h(authenticated)))
    assert data["action"] == "update" and data["notify"] == [
        {"kind": "requester-comment", "recipient": "alice@example.com"}
    ]
    [comment] = desk.new_mail()
    assert comment.rcpt_tos == ("alice@example.com",) and "A new fuser is on its way." in parsed(comment).get_content()
    # Without proof it is Bob, his mail opens a flagged ticket and nothing is relayed to Alice as his.
    data = desk.deliver(client_reply(ack, "Send me your password.", sender="bob@example.org"))
    assert data["action"] == "create" and desk.ticket(data["ticket"])["unverified_sender"]
    assert [m.rcpt_tos for m in desk.new_mail()] == [("bob@example.org",)]  # only its acknowledgement


def _h(headers: dict[str, str]) -> dict[str, str]:
    """Header names as client_reply's keyword arguments take them."""
    return {name.replace("-", "_"): value for name, value in headers.items()}


def test_the_resident_service_sends_the_acknowledgement_too(desk: Desk, child_home: Path) -> None:
    from support.servers.delivery_service import ServiceProcess

    with ServiceProcess(desk.url, config=desk.config, home=child_home) as service:
        service.start()
        result = desk._deliver(
            "--config",
            str(desk.config),
            "--database-url",
            desk.url,
            "--json",
            "--socket",
            str(service.socket),
            "--recipient",
            HELPDESK,
            stdin=mail("Printer broken", "x"),
        )
        assert result.returncode == 0 and result.json["notify"][0]["kind"] == "acknowledgement", result
        with service.lmtp() as lmtp:
            replies = lmtp.send(mail("Scanner broken", "y", sender="bob@example.net"), "bob@example.net", [HELPDESK])
        assert [code for code, _ in replies] == [250]
        # The service answers the MTA first and sends on its next free thread.
        deadline = time.monotonic() + 30
        while len(desk.sink.messages) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert sorted(m.rcpt_tos[0] for m in desk.new_mail()) == ["alice@example.com", "bob@example.net"]


@pytest.mark.skipif(not corpus_available(), reason=MISSING_REASON)
def test_real_bounces_from_the_corpus_never_open_tickets(desk: Desk) -> None:
    """Every real bounce of the shared corpus, through the executable: recognised, kept, never a ticket, exit 0.
    None answers a notification of ours, so each is ignored (test_bounce.py checks what each report says)."""
    from test_bounce import CORPUS_BOUNCES

    for path in sorted(CORPUS_BOUNCES):
        data = desk.deliver((CORPUS_DIR / path).read_bytes(), sender="")
        assert data["action"] in ("ignore", "duplicate"), (path, data)
        if data["action"] == "ignore":
            assert reason(data, "bounce").startswith("a delivery failure report"), path
            assert reason(data, "bounce-linked").startswith("the report names no notification"), path
    assert desk.tickets() == [] and desk.new_mail() == []
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
