"""LMTP into the resident service: one reply per recipient carrying the pipe's exit-code contract, the message
stored as the pipe would have stored it, and a graceful shutdown that refuses new transactions with 451."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from support.db import hold_lock
from support.desk import MakeDesk
from support.mail import MAIL
from support.servers.delivery_service import StartService

HELPDESK = "helpdesk@helpdesk.example"


def test_each_recipient_gets_the_pipe_verdict(
    database_url: str, make_desk: MakeDesk, start_service: StartService, tmp_path: Path
) -> None:
    desk = make_desk(init=True)
    config = tmp_path / "config.toml"
    config.write_text("max_message_bytes = 30000\n")
    service = start_service(database_url, config=config)
    raw = (MAIL / "new_ticket.eml").read_bytes()
    with service.lmtp() as lmtp:
        # Two help-desk addresses: two deliveries, as the pipe with a recipient limit of 1 makes them.
        assert lmtp.send(raw, "alice@example.com", [HELPDESK, "support@helpdesk.example"]) == [
            (250, f"2.0.0 <{HELPDESK}> create ticket #1"),
            (250, "2.0.0 <support@helpdesk.example> duplicate ticket #1"),
        ]
        [(code, text)] = lmtp.send((MAIL / "no_from_header.eml").read_bytes(), "", [HELPDESK])
        assert (code, text[:6]) == (550, "5.6.0 "), text
        big = raw + (b"z" * 69 + b"\n") * 500
        [(code, text)] = lmtp.send(big, "alice@example.com", [HELPDESK])
        assert (code, text) == (552, "5.3.4 message larger than max_message_bytes (30000 bytes)")
        desk.admin("settings", "set", "unknown_senders", "reject")
        stranger = b"From: mallory@example.net\nSubject: Let me in\nMessage-ID: <m1@example.net>\n\nhello\n"
        replies = lmtp.send(stranger, "mallory@example.net", [HELPDESK, "support@helpdesk.example"])
        assert [code for code, _ in replies] == [550, 550], replies
        assert all(text.startswith("5.7.1 ") for _, text in replies), replies


def test_the_stored_message_is_the_one_the_pipe_would_store(
    sqlite_url: str, run_admin: Any, start_service: StartService
) -> None:
    service = start_service(sqlite_url)
    raw = (MAIL / "new_ticket.eml").read_bytes() + b".a line that starts with a dot\n..two dots\n"
    with service.lmtp() as lmtp:  # sends CRLF and dot-stuffs
        assert lmtp.send(raw, "Alice@Example.com", [HELPDESK])[0][0] == 250
        assert lmtp.send(raw, "", [HELPDESK])[0] == (250, f"2.0.0 <{HELPDESK}> duplicate ticket #1")
    stored = run_admin("--database-url", sqlite_url, "messages", "show", "1", "--raw").stdout
    assert stored == b"Return-Path: <Alice@Example.com>\n" + raw
    second = run_admin("--database-url", sqlite_url, "messages", "show", "2", "--raw").stdout
    assert second == b"Return-Path: <>\n" + raw
    rows = json.loads(run_admin("--database-url", sqlite_url, "messages", "list", "--json").stdout)
    assert [(row["envelope_sender"], row["envelope_recipient"]) for row in rows] == [
        ("alice@example.com", HELPDESK),
        ("", HELPDESK),
    ]


def test_uninitialised_postgres_answers_451(postgres_url: str, start_service: StartService) -> None:
    service = start_service(postgres_url)
    with service.lmtp() as lmtp:
        [(code, text)] = lmtp.send((MAIL / "new_ticket.eml").read_bytes(), "alice@example.com", [HELPDESK])
    assert code == 451 and text.startswith("4.3.5 the database has no email2ticket schema"), text


def test_shutdown_finishes_the_message_in_flight_and_refuses_new_transactions(
    sqlite_url: str, run_admin: Any, start_service: StartService
) -> None:
    import threading

    service = start_service(sqlite_url)
    raw = (MAIL / "new_ticket.eml").read_bytes()
    with service.lmtp() as first:
        assert first.send(raw, "alice@example.com", [HELPDESK])[0][0] == 250  # creates the schema
    with hold_lock(sqlite_url):
        waiting, idle = service.lmtp(), service.lmtp()
        replies: list[tuple[int, str]] = []
        sender = threading.Thread(
            target=lambda: replies.extend(waiting.send(raw.replace(b"-1@", b"-2@"), "a@x", [HELPDESK]))
        )
        sender.start()
        time.sleep(1.0)
        assert service.process is not None
        service.process.terminate()
        time.sleep(0.5)
        assert idle.command("MAIL FROM:<bob@example.com>") == (
            451,
            "4.3.2 the help desk's delivery service is shutting down; try again later",
        )
    sender.join(60)
    assert replies == [(250, f"2.0.0 <{HELPDESK}> create ticket #2")]
    assert service.process.wait(60) == 0, service.log_text()
    assert not service.lmtp_socket.exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_lmtp_on_loopback_tcp(sqlite_url: str, start_service: StartService, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[service]\nlmtp_allow_tcp = true\n")  # every local user can deliver there (test_lmtp_tcp.py)
    service = start_service(sqlite_url, config=config, lmtp_tcp=f"127.0.0.1:{free_port()}")
    with service.lmtp() as lmtp:
        [(code, text)] = lmtp.send((MAIL / "new_ticket.eml").read_bytes(), "alice@example.com", [HELPDESK])
    assert (code, text) == (250, f"2.0.0 <{HELPDESK}> create ticket #1")


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('lmtp = "0.0.0.0:24"', "service.lmtp: '0.0.0.0:24': LMTP listens on loopback only"),
        ('lmtp = "mail.example.com:24"', "the host must be a loopback address"),
        ('socket = "relative.sock"', "service.socket must be an absolute path"),
        ('fallback = "bounce"', "service.fallback must be one of standalone, tempfail"),
        ("workers = 0", "service.workers must be an integer from 1 to 64"),
        ('sokcet = "/run/x.sock"', "unknown setting service.sokcet"),
    ],
)
def test_bad_service_configuration_is_refused(
    run_admin: Any, run_deliver: Any, sqlite_url: str, tmp_path: Path, table: str, expected: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[service]\n{table}\n")
    served = run_admin("--config", str(config), "--database-url", sqlite_url, "serve")
    assert served.returncode == 75 and expected in served.stderr_first_line, served
    # The pipe command defers (75) on the same file, as on any configuration error.
    piped = run_deliver(
        "--config", str(config), "--database-url", sqlite_url, stdin=(MAIL / "new_ticket.eml").read_bytes()
    )
    assert piped.returncode == 75 and expected in piped.stderr_first_line, piped


def test_serve_needs_something_to_serve(run_admin: Any, sqlite_url: str) -> None:
    result = run_admin("--database-url", sqlite_url, "serve")
    assert result.returncode == 75 and "nothing to serve" in result.stderr_first_line, result


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # Postfix's smtpd, as the message came in over SMTP (folded, as Postfix writes it).
        (
            b"Received: from client.example (client.example [192.0.2.7])\r\n\tby mx.helpdesk.example (Postfix)"
            b" with ESMTP id 4F2A1C0123\r\n\tfor <helpdesk@helpdesk.example>; Thu, 26 Nov 2026 10:00:00 +0000\r\n",
            "4F2A1C0123",
        ),
        # Postfix's pickup (sendmail on the host), with a long queue id; "userid" is not "id".
        (
            b"Received: by mx.helpdesk.example (Postfix, from userid 0)\n\tid 4Qm7Lr2bVzz9sWZ; Thu, 26 Nov 2026\n",
            "4Qm7Lr2bVzz9sWZ",
        ),
        # An LMTP server's own form, and Exim's.
        (b"Received: from mx by desk with LMTP id AB12CD34; Thu, 26 Nov 2026\n", "AB12CD34"),
        (b"Received: from [192.0.2.7] by mx with esmtp (Exim 4.96) id 1qAbCd-0001xY-Ef; Thu\n", "1qAbCd-0001xY-Ef"),
        # Only the topmost Received: is ours; a message without one has no queue id.
        (b"Received: by mx (Postfix)\n\tfor <a@b>; Thu\nReceived: by other with ESMTP id FFFF0001; Wed\n", None),
        (b"From: a@example.com\n", None),
        # A Received: in the body is not a header.
        (b"From: a@example.com\n\nReceived: by x with ESMTP id 0000AAAA\n", None),
    ],
)
def test_queue_id_from_received(headers: bytes, expected: str | None) -> None:
    from email2ticket.service.lmtp import queue_id_from_received

    assert queue_id_from_received(headers + b"Subject: x\r\n\r\nbody\r\n") == expected


def test_lmtp_delivery_logs_the_queue_id_postfix_gave_the_message(
    sqlite_url: str, run_admin: Any, start_service: StartService, tmp_path: Path
) -> None:
    """Postfix's lmtp(8) passes no queue id, but its Received: line names it: the audit record and our log line
    carry it, so a delivery can be matched with Postfix's log (the pipe gets it as --queue-id)."""
    log = tmp_path / "deliver.log"
    config = tmp_path / "config.toml"
    config.write_text(f'[logging]\ntarget = "file"\nfile = "{log}"\n')
    service = start_service(sqlite_url, config=config)
    received = (
        b"Received: from client.example (client.example [192.0.2.7])\r\n"
        b"\tby mx.helpdesk.example (Postfix) with ESMTP id 3C0FFEE42\r\n"
        b"\tfor <helpdesk@helpdesk.example>; Thu, 26 Nov 2026 10:00:00 +0000\r\n"
    )
    raw = received + b"From: bob@example.com\r\nSubject: Queue id\r\nMessage-ID: <qid-1@example.com>\r\n\r\nhello\r\n"
    with service.lmtp() as lmtp:
        assert lmtp.send(raw, "bob@example.com", [HELPDESK])[0][0] == 250
    rows = json.loads(run_admin("--database-url", sqlite_url, "messages", "list", "--json").stdout)
    assert [row["queue_id"] for row in rows] == ["3C0FFEE42"]
    assert "delivery queue_id=3C0FFEE42 " in log.read_text()
