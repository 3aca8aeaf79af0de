"""No escape sequence from a mail reaches the admin's terminal: every human-readable listing shows control characters.

The help-desk address is public, and an RFC 2047 Subject or file name can carry ESC sequences: set the window
title (`ESC ] 0 ; ... BEL`), clear the screen (`ESC [ 2 J`), move the cursor up and erase a line to hide one, or
colour the rest of a listing; a UTF-8 U+009B is the same CSI to many terminals. Printed raw by `tickets list`,
`ticket show` or `messages list`, they act on the admin's terminal. cli.common.terminal_safe shows each control
character as a Python-style escape (`\\x1b`); a one-line field also shows its line breaks, so that a subject
cannot fake lines of a listing. `--json` keeps the text (it escapes it the JSON way), and `--raw` keeps the bytes.

The mail goes through the real bin/email2ticket-deliver and every listing through the real bin/email2ticket, on
SQLite: what is printed does not depend on the database.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from email2ticket.display import json_text, terminal_safe
from email2ticket.mail.message import parse_message
from support.desk import Desk
from support.run import Runner

TITLE = "\x1b]0;pwned\x07"  # sets the terminal's window title
CLEAR = "\x1b[2J\x1b[H"  # clears the screen
HIDE = "\x1b[1A\x1b[2K"  # cursor up one line and erase it: hides the line above
CSI = "\x9b31m"  # the 8-bit CSI: red from here on
SUBJECT = f"Printer {TITLE}jam {CLEAR}{CSI} red {HIDE}\x7f end\n#2      open    admin@helpdesk.example  fake row"
FILENAME = f"invoice{CLEAR}\x9b8m\u202efdp.exe"  # shown as "invoice...exe.pdf" by a terminal that obeys U+202E
BODY = f"It broke.\n{TITLE}{CLEAR}\r\nSecond line.\n"
COMMENT = f"Still broken {HIDE}{CSI}.\n"


BIDI = {chr(code) for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def controls(text: str) -> list[str]:
    """The characters a terminal would obey: C0 but newline and tab, DEL, C1, the bidi overrides and isolates."""
    return sorted({c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0 or c in BIDI})


def encoded(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


def hostile(subject: str = SUBJECT, *, message_id: str = "esc-1@example.com", body: str = BODY) -> bytes:
    """A new ticket whose Subject, attachment name and body carry escape sequences."""
    return (
        "From: Alice <alice@example.com>\nTo: helpdesk@helpdesk.example\n"
        f"Subject: {encoded(subject)}\nMessage-ID: <{message_id}>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b"\n\n'
        f"--b\nContent-Type: text/plain; charset=utf-8\n\n{body}\n"
        f'--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename="{encoded(FILENAME)}"\n\n'
        "%PDF-1.4\n--b--\n"
    ).encode()


def reply() -> bytes:
    return (
        "From: alice@example.com\nTo: helpdesk@helpdesk.example\n"
        f"Subject: Re: {encoded('Printer ' + TITLE)} [Ticket #1]\nMessage-ID: <esc-2@example.com>\n"
        f"Content-Type: text/plain; charset=utf-8\n\n{COMMENT}"
    ).encode()


@pytest.fixture
def desk(sqlite_url: str, run_admin: Runner, run_deliver: Runner) -> Desk:
    desk = Desk(sqlite_url, run_admin, run_deliver, init=True)
    assert desk.deliver_ok(hostile())["action"] == "create"
    assert desk.deliver_ok(reply())["action"] == "update"
    return desk


def shown(desk: Desk, *args: str, stdin: bytes = b"") -> str:
    """A command's stdout, asserted free of anything a terminal would obey."""
    text = desk.admin(*args, stdin=stdin).stdout_text
    assert controls(text) == [], f"{' '.join(args)} printed raw control characters:\n{text!r}"
    return text


# --- the function ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Printer jam", "Printer jam"),
        ("Grüße, 回复 ✂", "Grüße, 回复 ✂"),  # printable text, any script, is left alone
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x9b31m", "\\x9b31m"),  # C1 CSI
        ("a\x7fb", "a\\x7fb"),  # DEL
        ("\x00\x08\x0b\x0c\x1f", "\\x00\\x08\\x0b\\x0c\\x1f"),
        ("\x85\x80\x9f", "\\x85\\x80\\x9f"),
        ("a\tb", "a\tb"),  # a tab moves the cursor right, nothing more
        ("one\ntwo\r\n", "one\\x0atwo\\x0d\\x0a"),  # one line: its line breaks are shown
        ("C:\\x1b", "C:\\x1b"),  # a backslash is left alone
        ("report\u202efdp.exe", "report\\u202efdp.exe"),  # a bidi override would show "report" + "exe.pdf"
        ("a\u2066b\u2069", "a\\u2066b\\u2069"),  # isolates
        ("שלום\u200f, עולם", "שלום\u200f, עולם"),  # a right-to-left mark belongs to ordinary Hebrew text
    ],
)
def test_terminal_safe_on_one_line(text: str, expected: str) -> None:
    assert terminal_safe(text) == expected
    assert controls(terminal_safe(text)) == []


def test_terminal_safe_keeps_the_lines_of_a_body() -> None:
    assert terminal_safe("one\r\ntwo\nthree\rfour\x1b[2J", multiline=True) == "one\ntwo\nthree\\x0dfour\\x1b[2J"


def test_json_text_is_json_without_raw_c1_or_del() -> None:
    value = {"subject": SUBJECT, "n": 1}
    text = json_text(value)
    assert json.loads(text) == value
    assert controls(text) == []


# --- through the executables ------------------------------------------------------------------------------


def test_ticket_listings_show_escapes_instead_of_obeying_them(desk: Desk) -> None:
    listing = shown(desk, "tickets", "list")
    assert len(listing.splitlines()) == 1  # the "\n#2 ... fake row" of the subject stays on its line
    assert "\\x1b]0;pwned\\x07" in listing and "\\x9b31m" in listing and "\\x7f" in listing
    ticket = shown(desk, "ticket", "show", "1")
    assert "\\x1b[2J" in ticket
    assert "invoice\\x1b[2J\\x1b[H\\x9b8m\\u202efdp.exe" in ticket  # the attachment's name
    assert "It broke.\n\\x1b]0;pwned\\x07\\x1b[2J\\x1b[H\nSecond line." in ticket  # the body keeps its lines
    assert "Still broken \\x1b[1A\\x1b[2K\\x9b31m." in ticket  # the comment


def test_message_listings_show_escapes_instead_of_obeying_them(desk: Desk) -> None:
    listing = shown(desk, "messages", "list")
    assert len(listing.splitlines()) == 2
    assert "\\x0a#2      open" in listing  # the subject's fake row, shown on the subject's own line
    record = shown(desk, "messages", "show", "1")
    assert "subject: Printer \\x1b]0;pwned\\x07jam" in record
    shown(desk, "messages", "show", "2")


def test_json_still_carries_the_text_as_received(desk: Desk) -> None:
    subject = parse_message(hostile()).subject
    assert TITLE in subject and CSI in subject  # what the parser hands on, control characters and all
    [ticket] = desk.json("tickets", "list")
    assert ticket["subject"] == " ".join(subject.split())  # a new ticket's title has its whitespace collapsed
    full = desk.json("ticket", "show", "1")
    assert full["attachments"][0]["filename"] == FILENAME
    assert full["comments"][0]["body"] == COMMENT.rstrip("\n")
    assert desk.json("messages", "list")[0]["subject"] == subject
    assert controls(desk.admin("messages", "list", "--json").stdout_text) == []  # C1 and DEL as \\u escapes too


def test_the_pipes_json_escapes_like_the_admin_commands(desk: Desk) -> None:
    """`email2ticket-deliver --json` is read by people debugging their MTA wiring, in a terminal; its reasons
    quote the Subject of automatic mail."""
    subject = f"Out of Office: {CSI}\x7f back \u202efdp.exe"
    raw = (
        f"From: bob@example.com\nTo: helpdesk@helpdesk.example\nSubject: {encoded(subject)}\n"
        "Message-ID: <ooo-1@example.com>\nAuto-Submitted: auto-replied\n\nAway.\n"
    ).encode()
    result = desk.deliver(raw)
    assert result.returncode == 0 and result.json["action"] == "ignore", result
    assert controls(result.stdout_text) == []
    assert "\\u009b31m\\u007f back \\u202efdp.exe" in result.stdout_text
    assert any(subject in reason for reason in result.json["reasons"])  # the same text to a JSON reader


def test_raw_output_stays_byte_exact(desk: Desk) -> None:
    assert desk.admin("messages", "show", "1", "--raw").stdout == hostile()


def test_explain_and_separators_test_show_escapes(desk: Desk) -> None:
    shown(desk, "explain", "--sender", "alice@example.com", stdin=hostile(message_id="esc-3@example.com"))
    test = desk.admin("separators", "test", stdin=reply())
    assert controls(test.stdout_text) == [] and "Still broken \\x1b[1A" in test.stdout_text


def test_user_and_separator_listings_show_escapes(desk: Desk) -> None:
    desk.admin("user", "add", "bob@example.com", "--name", f"Bob {TITLE}")
    assert "Bob \\x1b]0;pwned\\x07" in shown(desk, "user", "list")
    desk.admin("separators", "add", f"Original {CLEAR}message")
    assert f"Original {terminal_safe(CLEAR)}message" in shown(desk, "separators", "list")


# --- the quarantine: a poison message whose subject carries escapes ------------------------------------------


def test_quarantine_listings_show_escapes(
    sqlite_url: str, run_admin: Runner, run_deliver: Runner, child_home: Path
) -> None:
    desk = Desk(
        sqlite_url, run_admin, run_deliver, config=child_home / "e2t.toml", settings={"max_attempts": 1}, init=True
    )
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as connection:  # as tests/delivery/test_quarantine.py
        connection.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON tickets WHEN NEW.subject LIKE 'POISON%' "
            "BEGIN SELECT RAISE(ABORT, 'value refused for this subject'); END"
        )
    raw = hostile("POISON " + SUBJECT, message_id="poison@example.com")
    assert desk.deliver_ok(raw)["action"] == "quarantine"
    [item] = desk.json("quarantine", "list")
    assert item["subject"] == parse_message(raw).subject
    listing = shown(desk, "quarantine", "list")
    assert "POISON Printer \\x1b]0;pwned\\x07jam" in listing
    assert "subject: POISON Printer \\x1b]0;pwned\\x07jam" in shown(desk, "quarantine", "show", str(item["id"]))
    assert desk.admin("quarantine", "show", str(item["id"]), "--raw").stdout == raw


# --- notifications: an acknowledgement to an address that carries escapes ---------------------------------------

EVIL = f'"{TITLE}{CLEAR}alice"@example.com'  # a quoted local part may hold any byte, ESC too


def test_an_address_with_escapes_is_shown_escaped_in_every_listing(
    sqlite_url: str, run_admin: Runner, run_deliver: Runner, child_home: Path, smtp_sink: Any
) -> None:
    settings = {
        "logging": {"target": "none"},
        "notifications": {
            "from_address": "Help Desk <helpdesk@helpdesk.example>",
            "method": "smtp",
            "smtp_host": smtp_sink.host,
            "smtp_port": smtp_sink.port,
            "timeout": 5,
            "key_file": str(child_home / "keys" / "notification-keys"),
        },
    }
    desk = Desk(sqlite_url, run_admin, run_deliver, config=child_home / "e2t.toml", settings=settings, init=True)
    raw = f"From: {EVIL}\nTo: helpdesk@helpdesk.example\nSubject: Printer\nMessage-ID: <evil@example.com>\n\nhi\n"
    assert desk.deliver_ok(raw.encode(), recipient="helpdesk@helpdesk.example")["action"] == "create"
    [sender] = parse_message(raw.encode()).from_addresses
    assert TITLE in sender  # the parser keeps it: it is an address
    escaped = terminal_safe(sender)
    for command in (("notifications", "list"), ("tickets", "list"), ("messages", "list"), ("user", "list")):
        assert escaped in shown(desk, *command), command
    assert desk.json("notifications", "list")[0]["recipient"] == sender
    assert controls(shown(desk, "ticket", "show", "1")) == []
