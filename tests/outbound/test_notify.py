"""Rendering notifications: headers that thread and stop loops, a subject ending with the ticket number, the
reply-above line, no echo of the incoming mail, templates an admin can override, and tokens that verify."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from email2ticket.config.model import NotificationsConfig
from email2ticket.exits import ConfigurationError
from email2ticket.mail.subject import find_ticket_reference
from email2ticket.outbound.render import (
    KINDS,
    LOOP_HEADER,
    REPLY_ABOVE_LINE,
    OutgoingMail,
    Templates,
    check_templates,
    clean_subject,
    load_templates,
    parse_template,
    render,
)
from email2ticket.signals.tokens import Keyring, new_key, ticket_from_message_id
from email2ticket.store.notices import NotificationFields

CONFIG = NotificationsConfig(from_address="Help Desk <helpdesk@example.org>")
KEYRING = Keyring((new_key(),))
NOW = datetime(2026, 5, 27, 10, 30, tzinfo=UTC)
SECRET_BODY_TEXT = "BUY CHEAP PILLS at http://spam.example/"


def fields(kind: str = "acknowledgement", **changes: object) -> NotificationFields:
    values: dict[str, object] = {
        "kind": kind,
        "ticket": 42,
        "recipient": "alice@example.com",
        "subject": "Printer on floor 2 prints blank pages",
        "requester": "Alice Example",
        "technician": "Bob Tech",
        "status": "open",
    }
    if kind != "acknowledgement":
        values |= {"comment": "I replaced the toner.\nPlease try again.", "author": "Bob Tech"}
    values.update(changes)
    return NotificationFields(**values)  # type: ignore[arg-type]


def rendered(notice: NotificationFields, templates: Templates | None = None, **kwargs: object) -> EmailMessage:
    mail = render(
        notice,
        templates=templates or load_templates(None),
        config=kwargs.pop("config", CONFIG),  # type: ignore[arg-type]
        keyring=KEYRING,
        now=NOW,
        **kwargs,  # type: ignore[arg-type]
    )
    return parse(mail)


def parse(mail: OutgoingMail) -> EmailMessage:
    message = email.message_from_bytes(mail.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def body_lines(message: EmailMessage) -> list[str]:
    return message.get_content().splitlines()


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_the_headers_that_thread_and_stop_loops(kind: str) -> None:
    mail = render(fields(kind), templates=load_templates(None), config=CONFIG, keyring=KEYRING, now=NOW)
    message = parse(mail)
    assert message["From"] == "Help Desk <helpdesk@example.org>"
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "Printer on floor 2 prints blank pages [Ticket #42]"
    assert message["Date"] == "Wed, 27 May 2026 10:30:00 +0000"
    assert message["Message-ID"] == mail.message_id
    assert message["Auto-Submitted"] == ("auto-replied" if kind == "acknowledgement" else "auto-generated")
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message[LOOP_HEADER] == "example.org"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert "In-Reply-To" not in message and "References" not in message
    assert (mail.envelope_from, mail.recipient) == ("helpdesk@example.org", "alice@example.com")
    assert b"\r\n" not in mail.data  # LF for sendmail -t; outbound/transport.py makes CRLF for SMTP


@pytest.mark.parametrize("kind", KINDS)
def test_the_body_starts_with_the_reply_above_line(kind: str) -> None:
    lines = body_lines(rendered(fields(kind)))
    assert lines[:2] == [REPLY_ABOVE_LINE, ""]
    assert any("42" in line for line in lines[2:])


def test_the_message_id_carries_a_token_for_the_ticket() -> None:
    mail = render(fields(), templates=load_templates(None), config=CONFIG, keyring=KEYRING, nonce="0123456789ab")
    assert mail.message_id.startswith(f"<e2t.42.{KEYRING.newest.kid}.0123456789ab.")
    assert mail.message_id.endswith("@example.org>")
    assert ticket_from_message_id(mail.message_id, KEYRING) == 42
    assert ticket_from_message_id(mail.message_id, Keyring((new_key(),))) is None
    assert ticket_from_message_id(parse(mail)["Message-ID"], KEYRING) == 42


def test_message_id_domain_and_instance_id_are_used() -> None:
    config = NotificationsConfig(
        from_address="helpdesk@example.org", message_id_domain="tickets.example.net", instance_id="prod-1"
    )
    message = rendered(fields(), config=config)
    assert message["Message-ID"].endswith("@tickets.example.net>")
    assert message[LOOP_HEADER] == "prod-1"


def test_the_bounce_address_is_the_envelope_sender() -> None:
    config = NotificationsConfig(from_address="helpdesk@example.org", bounce_address="<>")
    mail = render(fields(), templates=load_templates(None), config=config, keyring=KEYRING)
    assert mail.envelope_from == ""


def test_replies_thread_under_the_triggering_mail() -> None:
    message = rendered(fields(in_reply_to="<CAF+abc=def@mail.gmail.com>"))
    assert message["In-Reply-To"] == "<CAF+abc=def@mail.gmail.com>"
    assert message["References"] == "<CAF+abc=def@mail.gmail.com>"


@pytest.mark.parametrize("bad", ["", "no-brackets@example.com", "<a@b> <c@d>", "<a@b>\nBcc: x@y", "<ü@b>"])
def test_a_malformed_triggering_message_id_is_left_out(bad: str) -> None:
    message = rendered(fields(in_reply_to=bad))
    assert "In-Reply-To" not in message and "References" not in message
    assert "Bcc" not in message


def test_the_acknowledgement_never_echoes_the_incoming_message() -> None:
    # Even when the caller hands over comment text, an acknowledgement has no placeholder for it.
    notice = fields(comment=SECRET_BODY_TEXT, author="Mallory")
    mail = render(notice, templates=load_templates(None), config=CONFIG, keyring=KEYRING, now=NOW)
    assert b"PILLS" not in mail.data and b"Mallory" not in mail.data
    text = parse(mail).get_content()
    assert "received your request" in text
    assert "ticket #42" in text
    assert "reply to this mail" in text.lower()


def test_an_acknowledgement_template_cannot_ask_for_the_comment() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown placeholder \$comment"):
        parse_template("acknowledgement", "Subject: $subject\n\nYou wrote: $comment\n", "ack.txt")


def test_the_comment_kinds_carry_the_comment() -> None:
    for kind in ("technician-update", "requester-comment"):
        text = rendered(fields(kind)).get_content()
        assert "I replaced the toner.\nPlease try again." in text
        assert "Bob Tech" in text


def test_a_placeholder_value_cannot_add_headers_or_lines() -> None:
    notice = fields(
        "requester-comment",
        subject="Hello\r\nBcc: victim@example.net",
        requester="Alice\nX-Evil: 1",
        author="Eve\r\n\r\nInjected paragraph",
    )
    mail = render(notice, templates=load_templates(None), config=CONFIG, keyring=KEYRING)
    message = parse(mail)
    assert "Bcc" not in message and "X-Evil" not in message
    assert message["Subject"] == "Hello Bcc: victim@example.net [Ticket #42]"
    assert "Hello Alice X-Evil: 1," in message.get_content()
    assert "Eve Injected paragraph has commented" in message.get_content()


def test_a_non_ascii_subject_and_names_survive() -> None:
    notice = fields(
        "requester-comment",
        subject="Drucker im 2. Stock – Störung 日本語",
        requester="Jürgen Müller",
        author="Zoë",
        comment="Grüße, der Toner ist getauscht. ✓",
    )
    config = NotificationsConfig(from_address="Hülp Désk <helpdesk@example.org>")
    mail = render(notice, templates=load_templates(None), config=config, keyring=KEYRING)
    assert mail.data.isascii()  # RFC 2047 headers, quoted-printable body: safe over any relay
    message = parse(mail)
    assert message["Subject"] == "Drucker im 2. Stock – Störung 日本語 [Ticket #42]"
    assert message["From"].addresses[0].display_name == "Hülp Désk"
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    text = message.get_content()
    assert "Hello Jürgen Müller," in text
    assert "Grüße, der Toner ist getauscht. ✓" in text
    assert "Zoë has commented" in text


def test_the_ticket_subject_is_cut_to_120_characters() -> None:
    long = "word " * 60
    assert len(clean_subject(long)) == 120
    assert clean_subject(long).endswith("…")
    assert clean_subject("x" * 120) == "x" * 120
    assert clean_subject("  \t\r\n ") == "(no subject)"
    message = rendered(fields(subject=long))
    subject = str(message["Subject"])
    assert subject.endswith("… [Ticket #42]")
    assert len(subject) == 120 + len(" [Ticket #42]")


def test_the_subject_always_ends_with_the_ticket_number(tmp_path: Path) -> None:
    (tmp_path / "acknowledgement.txt").write_text("Subject: We got it: $subject\n\nTicket $ticket.\n")
    message = rendered(fields(), load_templates(str(tmp_path)))
    assert message["Subject"] == "We got it: Printer on floor 2 prints blank pages [Ticket #42]"
    assert find_ticket_reference(str(message["Subject"]), bare_numbers=False) == 42
    assert find_ticket_reference("Re: AW: " + str(message["Subject"]), bare_numbers=False) == 42


def test_a_template_directory_overrides_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "requester-comment.txt").write_text(
        "Subject: [$status] $subject\n  (from $author) [Ticket #$ticket]\n\n"
        "Dear $requester,\n\n$comment\n\nCost: 5 $$\n"
    )
    (tmp_path / "README").write_text("not a template")
    templates = load_templates(str(tmp_path))
    assert templates["requester-comment"].source == str(tmp_path / "requester-comment.txt")
    assert templates["acknowledgement"].source == "built-in"
    message = rendered(fields("requester-comment", status="waiting"), templates)
    assert message["Subject"] == "[waiting] Printer on floor 2 prints blank pages (from Bob Tech) [Ticket #42]"
    assert body_lines(message) == [
        REPLY_ABOVE_LINE,
        "",
        "Dear Alice Example,",
        "",
        "I replaced the toner.",
        "Please try again.",
        "",
        "Cost: 5 $",
    ]
    assert "received your request" in rendered(fields(), templates).get_content()


def test_an_admin_template_cannot_lose_the_reply_above_line(tmp_path: Path) -> None:
    (tmp_path / "acknowledgement.txt").write_text("Subject: Thanks\n\nThanks.\n")
    lines = body_lines(rendered(fields(), load_templates(str(tmp_path))))
    assert lines == [REPLY_ABOVE_LINE, "", "Thanks."]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Hello $requester\n", "must start with a 'Subject: ...' line"),
        ("Subject: $subject", "the Subject: line must be followed by a blank line"),
        ("Subject: $subject\nFrom: x@example.org\n\nbody\n", "only a Subject: line may precede the blank line"),
        ("Subject: $subject\n\nHello $name\n", r"template .*acknowledgement.txt \(body\): unknown placeholder \$name"),
        ("Subject: $subjekt\n\nbody\n", r"\(Subject\): unknown placeholder \$subjekt"),
        ("Subject: $subject\n\nCosts 5 $ per page\n", r"a '\$' that starts no placeholder \(write \$\$"),
        ("Subject: ${ticket\n\nbody\n", "a '\\$' that starts no placeholder"),
    ],
)
def test_a_malformed_template_names_its_file(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "acknowledgement.txt").write_text(text)
    with pytest.raises(ConfigurationError, match=message) as raised:
        load_templates(str(tmp_path))
    assert str(tmp_path / "acknowledgement.txt") in raised.value.reason


def test_template_files_must_be_utf8_and_known(tmp_path: Path) -> None:
    (tmp_path / "acknowledgement.txt").write_bytes(b"Subject: Caf\xe9\n\nbody\n")
    with pytest.raises(ConfigurationError, match=r"acknowledgement\.txt: not UTF-8 text"):
        load_templates(str(tmp_path))
    (tmp_path / "acknowledgement.txt").unlink()
    (tmp_path / "acknowledgment.txt").write_text("Subject: x\n\nbody\n")
    with pytest.raises(ConfigurationError, match=r"acknowledgment.txt: unknown template name \(known: "):
        load_templates(str(tmp_path))
    with pytest.raises(ConfigurationError, match="is not a directory"):
        load_templates(str(tmp_path / "missing"))


def test_a_template_with_crlf_a_bom_and_a_blank_line_of_spaces_loads(tmp_path: Path) -> None:
    (tmp_path / "acknowledgement.txt").write_bytes("\ufeffSubject: Got it\r\n \r\nLine one\r\nLine two\r\n".encode())
    message = rendered(fields(), load_templates(str(tmp_path)))
    assert message["Subject"] == "Got it [Ticket #42]"
    assert body_lines(message)[2:] == ["Line one", "Line two"]


def test_the_built_in_templates_pass_the_doctor() -> None:
    assert check_templates(load_templates(None)) == []


def test_the_doctor_points_out_doubtful_templates(tmp_path: Path) -> None:
    (tmp_path / "acknowledgement.txt").write_text(f"Subject: Thanks\n\n{REPLY_ABOVE_LINE}\nThanks.\n")
    (tmp_path / "technician-update.txt").write_text("Subject: $comment\n\n\n")
    problems = check_templates(load_templates(str(tmp_path)))
    assert problems == [
        f"template acknowledgement ({tmp_path}/acknowledgement.txt): the body does not mention $ticket",
        f"template acknowledgement ({tmp_path}/acknowledgement.txt): the body repeats {REPLY_ABOVE_LINE!r}, "
        "which is added to every notification",
        f"template technician-update ({tmp_path}/technician-update.txt): the body is empty",
        f"template technician-update ({tmp_path}/technician-update.txt): $comment in the Subject makes a long "
        "subject line of the whole comment",
    ]


def test_an_unassigned_ticket_renders_an_empty_technician() -> None:
    text = rendered(fields("technician-update", technician=None)).get_content()
    assert "Hello ," in text


@pytest.mark.parametrize(
    "recipient", ["alice", "alice@", "a b@example.com", "<alice@example.com>", "jürgen@example.de"]
)
def test_a_recipient_that_is_not_an_address_is_refused(recipient: str) -> None:
    with pytest.raises(ValueError, match="cannot notify"):
        render(fields(recipient=recipient), templates=load_templates(None), config=CONFIG, keyring=KEYRING)


def test_an_international_domain_is_written_in_its_ascii_form() -> None:
    mail = render(
        fields(recipient="kunde@bücher.example"), templates=load_templates(None), config=CONFIG, keyring=KEYRING
    )
    assert mail.recipient == "kunde@xn--bcher-kva.example"
    assert parse(mail)["To"] == "kunde@xn--bcher-kva.example"


def test_without_a_from_address_nothing_is_rendered() -> None:
    with pytest.raises(ConfigurationError, match="from_address is not set"):
        render(fields(), templates=load_templates(None), config=NotificationsConfig(), keyring=KEYRING)


def test_a_body_line_with_only_a_dot_is_kept_as_text() -> None:
    notice = fields("requester-comment", comment="before\n.\nafter")
    assert "before\n.\nafter" in rendered(notice).get_content()


def test_headers_are_folded_at_spaces_and_never_before_the_first_word() -> None:
    config = NotificationsConfig(from_address='"Support, 2nd level" <support@example.org>')
    notice = fields(subject="[waiting] " + "printer " * 12)
    mail = render(notice, templates=load_templates(None), config=config, keyring=KEYRING)
    head = mail.data.split(b"\n\n")[0].decode()
    assert f"\nMessage-ID: {mail.message_id}\n" in head  # one line, even past 78 columns
    assert "\nSubject: [waiting] printer printer" in head
    assert all(len(line) <= 78 for line in head.splitlines() if not line.startswith("Message-ID:"))
    assert head.startswith('From: "Support, 2nd level" <support@example.org>\n')
    message = parse(mail)
    assert message["Subject"] == "[waiting] " + "printer " * 11 + "printer [Ticket #42]"
    assert message["From"].addresses[0].display_name == "Support, 2nd level"


def test_reply_to_ticket_address_puts_the_ticket_in_the_reply_to_plus_address() -> None:
    """reply_to_ticket_address: Reply-To: our From: address with the ticket as its plus-detail (rules/routing.py)."""
    assert rendered(fields())["Reply-To"] is None
    message = rendered(fields(reply_delimiter="+"))
    assert message["Reply-To"] == "Help Desk <helpdesk+42@example.org>"
    assert message["From"] == "Help Desk <helpdesk@example.org>"
    bare = rendered(fields(reply_delimiter="-"), config=NotificationsConfig(from_address="helpdesk@example.org"))
    assert bare["Reply-To"] == "helpdesk-42@example.org"
