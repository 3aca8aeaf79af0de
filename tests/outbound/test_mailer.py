"""Sending a rendered notification: over SMTP to a real server on loopback (support/servers/smtpsink.py), and through a
real sendmail executable (a shell script in tmp_path; never this machine's own MTA), with every failure a
SendFailed that says whether a retry may work."""

from __future__ import annotations

import email
import email.policy
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from msgspec.structs import replace

from email2ticket.config.model import NotificationsConfig
from email2ticket.outbound.render import OutgoingMail, load_templates, render
from email2ticket.outbound.transport import SendFailed, send, sendmail_argv
from email2ticket.signals.tokens import Keyring, new_key
from email2ticket.store.notices import NotificationFields

if TYPE_CHECKING:
    from support.servers.smtpsink import SmtpSink

# The smtp_sink fixture. Registered, not imported: pytest must import the plugin itself to rewrite its asserts.
pytest_plugins = ["support.servers.smtpsink"]

KEYRING = Keyring((new_key(),))
BASE = NotificationsConfig(from_address="Help Desk <helpdesk@example.org>")


def mail(config: NotificationsConfig = BASE, comment: str = "Toner replaced.\n.\nTry again.") -> OutgoingMail:
    fields = NotificationFields(
        kind="requester-comment",
        ticket=42,
        recipient="alice@example.com",
        subject="Printer – Störung",
        requester="Alice",
        comment=comment,
        author="Bob",
    )
    return render(fields, templates=load_templates(None), config=config, keyring=KEYRING)


def smtp_config(sink: SmtpSink, **changes: object) -> NotificationsConfig:
    return replace(BASE, method="smtp", smtp_host=sink.host, smtp_port=sink.port, **changes)  # type: ignore[arg-type]


def script(tmp_path: Path, body: str) -> str:
    """A sendmail stand-in: saves its arguments and stdin beside itself, then runs `body`."""
    path = tmp_path / "sendmail"
    path.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/argv"\ncat > "{tmp_path}/stdin"\n{body}\n', encoding="utf-8"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def sendmail_config(tmp_path: Path, body: str = "exit 0", **changes: object) -> NotificationsConfig:
    config = replace(BASE, method="sendmail", sendmail=script(tmp_path, body), **changes)  # type: ignore[arg-type]
    assert config.sendmail != "/usr/sbin/sendmail"  # never this machine's MTA
    return config


def failure(outgoing: OutgoingMail, config: NotificationsConfig) -> SendFailed:
    with pytest.raises(SendFailed) as raised:
        send(outgoing, config)
    return raised.value


# ---------------------------------------------------------------- SMTP


def test_smtp_delivers_the_message_with_crlf_and_dot_stuffing_undone(smtp_sink: SmtpSink) -> None:
    outgoing = mail()
    send(outgoing, smtp_config(smtp_sink))
    [received] = smtp_sink.messages
    assert received.mail_from == "helpdesk@example.org"
    assert received.rcpt_tos == ("alice@example.com",)
    assert received.data == outgoing.data.replace(b"\n", b"\r\n")  # the "." line arrived as it was written
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert message["Message-ID"] == outgoing.message_id
    assert message["Subject"] == "Printer – Störung [Ticket #42]"


def test_smtp_with_the_null_sender(smtp_sink: SmtpSink) -> None:
    config = smtp_config(smtp_sink, bounce_address="<>")
    send(mail(config), config)
    assert smtp_sink.messages[0].mail_from == ""


@pytest.mark.parametrize(
    ("step", "reply", "temporary"),
    [
        ("rcpt_reply", "550 5.1.1 <alice@example.com>: no such user", False),
        ("rcpt_reply", "450 4.2.1 mailbox busy", True),
        ("mail_reply", "553 5.7.1 sender rejected", False),
        ("mail_reply", "451 4.3.0 try later", True),
        ("data_reply", "554 5.6.0 message refused", False),
        ("data_reply", "452 4.3.1 insufficient storage", True),
    ],
)
def test_smtp_refusals_are_temporary_for_4xx_and_permanent_for_5xx(
    smtp_sink: SmtpSink, step: str, reply: str, temporary: bool
) -> None:
    setattr(smtp_sink, step, reply)
    failed = failure(mail(), smtp_config(smtp_sink))
    assert failed.temporary is temporary
    assert failed.reason.startswith(f"SMTP 127.0.0.1:{smtp_sink.port}: ")
    assert reply in failed.reason
    assert smtp_sink.messages == []


def test_smtp_connection_refused_is_temporary() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = replace(BASE, method="smtp", smtp_host="127.0.0.1", smtp_port=port)
    failed = failure(mail(), config)
    assert failed.temporary
    assert failed.reason == f"SMTP 127.0.0.1:{port}: cannot connect: Connection refused"


def test_smtp_a_silent_server_times_out() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        config = replace(BASE, method="smtp", smtp_host="127.0.0.1", smtp_port=silent.getsockname()[1], timeout=0.3)
        started = time.monotonic()
        failed = failure(mail(), config)
    assert time.monotonic() - started < 5
    assert failed.temporary
    assert "cannot connect" in failed.reason and "timed out" in failed.reason


def test_smtp_a_server_that_hangs_up_is_temporary() -> None:
    with socket.socket() as rude:
        rude.bind(("127.0.0.1", 0))
        rude.listen(1)
        config = replace(BASE, method="smtp", smtp_host="127.0.0.1", smtp_port=rude.getsockname()[1], timeout=5)

        def hang_up() -> None:
            connection, _ = rude.accept()
            connection.sendall(b"220 hello\r\n")
            connection.close()

        thread = threading.Thread(target=hang_up)
        thread.start()
        failed = failure(mail(), config)
        thread.join()
    assert failed.temporary


# ---------------------------------------------------------------- sendmail


def test_sendmail_gets_the_message_on_stdin_and_no_recipient_in_argv(tmp_path: Path) -> None:
    config = sendmail_config(tmp_path)
    outgoing = mail(config)
    send(outgoing, config)
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv == ["-t", "-i", "-f", "helpdesk@example.org"]
    assert sendmail_argv(outgoing, config) == [config.sendmail, *argv]
    assert "alice@example.com" not in argv  # -t: recipients come from To:
    assert (tmp_path / "stdin").read_bytes() == outgoing.data
    assert b"\nTo: alice@example.com\n" in outgoing.data


def test_sendmail_with_the_null_sender(tmp_path: Path) -> None:
    config = sendmail_config(tmp_path, bounce_address="<>")
    send(mail(config), config)
    assert (tmp_path / "argv").read_text().splitlines() == ["-t", "-i", "-f", "<>"]


def test_sendmail_exit_75_is_temporary_with_its_first_error_line(tmp_path: Path) -> None:
    config = sendmail_config(tmp_path, 'echo "queue file write error" >&2\necho "second line" >&2\nexit 75')
    failed = failure(mail(config), config)
    assert failed.temporary
    assert failed.reason == f"{config.sendmail} exited with status 75: queue file write error"


def test_sendmail_other_exits_are_permanent(tmp_path: Path) -> None:
    config = sendmail_config(tmp_path, 'echo "recipient address rejected" >&2\nexit 67')
    failed = failure(mail(config), config)
    assert not failed.temporary
    assert failed.reason == f"{config.sendmail} exited with status 67: recipient address rejected"
    config = sendmail_config(tmp_path, "exit 1")
    assert failure(mail(config), config).reason == f"{config.sendmail} exited with status 1"


def test_sendmail_killed_by_a_signal_is_temporary(tmp_path: Path) -> None:
    config = sendmail_config(tmp_path, "kill -TERM $$")
    failed = failure(mail(config), config)
    assert failed.temporary
    assert failed.reason == f"{config.sendmail} was killed by signal 15"


def test_sendmail_past_the_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    config = sendmail_config(tmp_path, f'sleep 30 &\necho $! > "{tmp_path}/child"\nwait', timeout=0.5)
    started = time.monotonic()
    failed = failure(mail(config), config)
    assert time.monotonic() - started < 5
    assert failed.temporary
    assert failed.reason == f"{config.sendmail} took longer than 0.5 s"
    child = int((tmp_path / "child").read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_a_sendmail_that_leaves_a_daemon_behind_does_not_hold_us(tmp_path: Path) -> None:
    # Its background child keeps stderr open; waiting for EOF on a pipe would wait for the child.
    config = sendmail_config(tmp_path, 'sleep 3 >/dev/null &\necho "accepted" >&2\nexit 0', timeout=10)
    started = time.monotonic()
    send(mail(config), config)
    assert time.monotonic() - started < 2


def test_a_sendmail_that_reads_nothing_still_reports_its_status(tmp_path: Path) -> None:
    path = tmp_path / "sendmail"
    path.write_text("#!/bin/sh\nexit 75\n")
    path.chmod(0o700)
    config = replace(BASE, sendmail=str(path))
    failed = failure(mail(config, comment="x" * 1_000_000), config)  # more than a pipe buffer
    assert failed.temporary and "status 75" in failed.reason


def test_a_missing_sendmail_is_temporary(tmp_path: Path) -> None:
    config = replace(BASE, sendmail=str(tmp_path / "no-such-sendmail"))
    failed = failure(mail(config), config)
    assert failed.temporary
    assert failed.reason == f"cannot run {tmp_path}/no-such-sendmail: No such file or directory"


def test_a_sendmail_that_is_not_executable_is_temporary(tmp_path: Path) -> None:
    path = tmp_path / "sendmail"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o600)
    config = replace(BASE, sendmail=str(path))
    failed = failure(mail(config), config)
    assert failed.temporary and failed.reason.startswith(f"cannot run {path}: ")


def test_method_off_sends_nothing() -> None:
    config = replace(BASE, method="off")
    failed = failure(mail(), config)
    assert not failed.temporary
    assert failed.reason == "notifications.method is 'off': nothing is sent"


def test_a_send_failed_defaults_to_temporary() -> None:
    assert SendFailed("no key file").temporary


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0: look at its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False
