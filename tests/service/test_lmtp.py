"""LMTP into the resident service: one reply per recipient carrying the pipe's exit-code contract, the message
stored as the pipe would have stored it, and a graceful shutdown that refuses new transactions with 451."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.servers.delivery_service import ServiceProcess

MAIL = Path(__file__).resolve().parents[1] / "fixtures" / "mail"
HELPDESK = "helpdesk@helpdesk.example"


@pytest.fixture
def services() -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    yield started
    for service in started:
        service.close()


def start(services: list[ServiceProcess], url: str, **kwargs: Any) -> ServiceProcess:
    service = ServiceProcess(url, **kwargs)
    services.append(service)
    return service.start()


def admin(run_admin: Any, url: str, *args: str) -> Any:
    result = run_admin("--database-url", url, *args)
    assert result.returncode == 0, result
    return result


def test_each_recipient_gets_the_pipe_verdict(
    database_url: str, run_admin: Any, services: list[ServiceProcess], tmp_path: Path
) -> None:
    admin(run_admin, database_url, "init")
    config = tmp_path / "config.toml"
    config.write_text("max_message_bytes = 30000\n")
    service = start(services, database_url, config=config)
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
        admin(run_admin, database_url, "settings", "set", "unknown_senders", "reject")
        stranger = b"From: mallory@example.net\nSubject: Let me in\nMessage-ID: <m1@example.net>\n\nhello\n"
        replies = lmtp.send(stranger, "mallory@example.net", [HELPDESK, "support@helpdesk.example"])
        assert [code for code, _ in replies] == [550, 550], replies
        assert all(text.startswith("5.7.1 ") for _, text in replies), replies


def test_the_stored_message_is_the_one_the_pipe_would_store(
    sqlite_url: str, run_admin: Any, services: list[ServiceProcess]
) -> None:
    service = start(services, sqlite_url)
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


def test_uninitialised_postgres_answers_451(postgres_url: str, services: list[ServiceProcess]) -> None:
    service = start(services, postgres_url)
    with service.lmtp() as lmtp:
        [(code, text)] = lmtp.send((MAIL / "new_ticket.eml").read_bytes(), "alice@example.com", [HELPDESK])
    assert code == 451 and text.startswith("4.3.5 the database has no email2ticket schema"), text


def test_shutdown_finishes_the_message_in_flight_and_refuses_new_transactions(
    sqlite_url: str, run_admin: Any, services: list[ServiceProcess]
) -> None:
    import sqlite3
    import threading

    service = start(services, sqlite_url)
    raw = (MAIL / "new_ticket.eml").read_bytes()
    with service.lmtp() as first:
        assert first.send(raw, "alice@example.com", [HELPDESK])[0][0] == 250  # creates the schema
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
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
    holder.execute("ROLLBACK")
    holder.close()
    sender.join(60)
    assert replies == [(250, f"2.0.0 <{HELPDESK}> create ticket #2")]
    assert service.process.wait(60) == 0, service.log_text()
    assert not service.lmtp_socket.exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_lmtp_on_loopback_tcp(sqlite_url: str, services: list[ServiceProcess]) -> None:
    service = start(services, sqlite_url, lmtp_tcp=f"127.0.0.1:{free_port()}")
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
