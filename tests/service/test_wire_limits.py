"""Bounded cost at the service's doors, through a real `email2ticket serve`: the thin client's wire protocol
and LMTP's DATA hold at most max_message_bytes of a message (plus a small envelope), never an unbounded
chunk or line; malformed framing is one log line and a closed connection; a message too large gets the
pipe's 5.3.4 answer (65 through the pipe, 552 for each LMTP recipient) without the rest being read."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from support.mail import MAIL
from support.servers.delivery_service import ServiceProcess, StartService

HELPDESK = "helpdesk@helpdesk.example"
LIMIT = 100_000
TOO_LARGE = f"5.3.4 message larger than max_message_bytes ({LIMIT} bytes)"


@pytest.fixture
def service(sqlite_url: str, start_service: StartService, tmp_path: Path) -> ServiceProcess:
    config = tmp_path / "config.toml"
    config.write_text(f"max_message_bytes = {LIMIT}\n")
    return start_service(sqlite_url, config=config)


def request(*argv: str) -> bytes:
    body = b"\0".join(b"arg=" + arg.encode() for arg in argv)
    return b"E2T1 %d\n" % len(body) + body


def connect(service: ServiceProcess) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(service.socket))
    return sock


def go(service: ServiceProcess) -> socket.socket:
    """A connection past the service's GO, ready for the message's chunks."""
    sock = connect(service)
    assert service.config is not None
    sock.sendall(request("--config", str(service.config)))
    answer = sock.recv(100)
    assert answer.startswith(b"GO "), answer
    return sock


def closed_by_service(sock: socket.socket) -> bool:
    """Did the service close the connection (within the socket's timeout) without answering anything?"""
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def memory(pid: int, field: str) -> int:
    """VmRSS or VmHWM (the peak) of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


@pytest.mark.parametrize(
    ("name", "framing"),
    [
        ("huge chunk", b"7fffffffff\n" + b"x" * 65536),
        ("negative chunk", b"-1\nx"),
        ("chunk over the maximum", b"%x\n" % (64 * 1024 * 1024)),
        ("not hex digits only", b"0x10\n" + b"x" * 16),
        ("spaces", b" 10 \n" + b"x" * 16),
        ("underscore", b"1_0\n" + b"x" * 16),
        ("endless header line", b"1" * 200_000),
    ],
)
def test_malformed_chunk_framing_is_one_log_line_and_a_closed_connection(
    service: ServiceProcess, name: str, framing: bytes
) -> None:
    sock = go(service)
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the service already closed: fine
            sock.sendall(framing)
        assert closed_by_service(sock), f"{name}: the service still holds the connection"
    finally:
        sock.close()
    # The healthy path still works afterwards (and the log line has been written by then).
    healthy = go(service)
    raw = (MAIL / "new_ticket.eml").read_bytes()
    healthy.sendall(b"%x\n" % len(raw) + raw + b"0\n")
    assert healthy.recv(100).startswith(b"0 "), service.log_text()
    healthy.close()
    log = service.log_text()
    assert "Traceback" not in log and "Task exception" not in log, log
    lines = [line for line in log.splitlines() if "closed a pipe connection" in line]
    assert len(lines) == 1, log
    assert "chunk" in lines[0] or "line" in lines[0], lines


def test_an_overlong_request_is_refused_before_it_is_read(service: ServiceProcess) -> None:
    sock = connect(service)
    try:
        sock.sendall(b"E2T1 99999999999\n" + b"arg=" + b"x" * 65536)
        assert closed_by_service(sock)
    finally:
        sock.close()
    lines = [line for line in service.log_text().splitlines() if "closed a pipe connection" in line]
    assert len(lines) == 1 and "request" in lines[0], service.log_text()


def test_a_message_over_the_limit_is_answered_without_reading_the_rest(
    service: ServiceProcess, run_deliver: Any
) -> None:
    sock = go(service)
    chunk = b"x" * (CHUNK := 65536)
    sent = 0
    try:
        while sent < 256 * 1024 * 1024:  # far more than any kernel buffers between us; never an end marker
            sock.sendall(b"%x\n" % CHUNK + chunk)
            sent += CHUNK
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = b""
    try:
        while chunk_ := sock.recv(4096):
            answer += chunk_
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    status, _, rest = answer.partition(b"\n")
    assert status.split(b" ")[0] == b"65", (answer, sent)
    assert rest.decode().startswith(TOO_LARGE), answer
    assert sent < 32 * 1024 * 1024, f"the service read {sent} bytes of a message over {LIMIT}"

    # The real thin client gets the pipe's answer too, streaming a message the service stops reading.
    assert service.config is not None
    big = (MAIL / "new_ticket.eml").read_bytes() + b"A line of a large log file attached inline.\n" * 100_000
    args = ("--socket", str(service.socket), "--fallback", "tempfail", "--config", str(service.config))
    result = run_deliver(*args, "--database-url", service.database_url, stdin=big)
    assert (result.returncode, result.stderr_first_line) == (65, TOO_LARGE), result


def lmtp_data(service: ServiceProcess, recipients: list[str]) -> tuple[socket.socket, BinaryIO]:
    """An LMTP session past DATA's 354, as a raw socket and the reader of its replies."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)
    sock.connect(str(service.lmtp_socket))
    reader = sock.makefile("rb")
    assert reader.readline().startswith(b"220")
    for command in ["LHLO tests.example", "MAIL FROM:<alice@example.com>", *(f"RCPT TO:<{r}>" for r in recipients)]:
        sock.sendall(command.encode() + b"\r\n")
        while (line := reader.readline())[3:4] == b"-":
            pass
        assert line.startswith(b"250"), (command, line)
    sock.sendall(b"DATA\r\n")
    assert reader.readline().startswith(b"354")
    return sock, reader


def replies(reader: BinaryIO, count: int) -> list[str]:
    return [reader.readline().decode().rstrip("\r\n") for _ in range(count)]


def test_lmtp_never_buffers_an_endless_line(service: ServiceProcess) -> None:
    recipients = [HELPDESK, "support@helpdesk.example"]
    before = memory(service.pid, "VmRSS")
    sock, reader = lmtp_data(service, recipients)
    line = b"y" * (1024 * 1024)
    sock.sendall(b"From: alice@example.com\r\nSubject: One long line\r\n\r\n")
    for _ in range(40):  # one line of 40 MB
        sock.sendall(line)
    sock.sendall(b"\r\n.\r\n")
    assert replies(reader, 2) == [f"552 {TOO_LARGE}"] * 2
    grown = memory(service.pid, "VmHWM") - before
    assert grown < 15 * 1024 * 1024, f"the service grew by {grown} bytes for one line"
    # The session goes on: an ordinary message on the same connection is delivered.
    raw = (MAIL / "new_ticket.eml").read_bytes().replace(b"\n", b"\r\n")
    sock.sendall(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<helpdesk@helpdesk.example>\r\nDATA\r\n")
    assert [r[:3] for r in replies(reader, 3)] == ["250", "250", "354"]
    sock.sendall(raw + b".\r\n")
    assert replies(reader, 1) == [f"250 2.0.0 <{HELPDESK}> create ticket #1"]
    sock.close()


def test_lmtp_reads_at_most_the_limit_of_many_lines(service: ServiceProcess) -> None:
    """Over max_message_bytes in short lines: each recipient gets 552 5.3.4; under it, a long line is no error
    (the pipe takes any line length, and LMTP answers what the pipe answers)."""
    sock, reader = lmtp_data(service, [HELPDESK, "support@helpdesk.example"])
    started = time.monotonic()
    sock.sendall(b"From: alice@example.com\r\nSubject: Many lines\r\n\r\n" + b"z" * 70 + b"\r\n" * 1)
    sock.sendall((b"z" * 70 + b"\r\n") * 30_000 + b".\r\n")
    assert replies(reader, 2) == [f"552 {TOO_LARGE}"] * 2
    assert time.monotonic() - started < 30
    sock.sendall(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<helpdesk@helpdesk.example>\r\nDATA\r\n")
    assert [r[:3] for r in replies(reader, 3)] == ["250", "250", "354"]
    long_line = b"From: alice@example.com\r\nSubject: A long line\r\nMessage-ID: <long-line@x>\r\n\r\n" + b"w" * 5000
    sock.sendall(long_line + b"\r\n.\r\n")
    assert replies(reader, 1) == [f"250 2.0.0 <{HELPDESK}> create ticket #1"]
    sock.close()
