"""LMTP on loopback TCP, which every local user can reach: only with `service.lmtp_allow_tcp = true`, and an
Authentication-Results header that arrives there is never honoured (any local account could have written
it to pass as a verified technician), while the same message over the Unix socket is."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from support.desk import Desk, reason
from support.mail import MAIL
from support.servers.delivery_service import StartService

HELPDESK = "helpdesk@helpdesk.example"
SUBMISSION = b"Authentication-Results: mx.helpdesk.example; auth=pass smtp.auth=bob@helpdesk.example\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_tcp_listener_needs_the_admins_consent(
    run_admin: Any, run_deliver: Any, sqlite_url: str, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{free_port()}"
    config = tmp_path / "config.toml"
    config.write_text(f'[service]\nlmtp = "{address}"\n')
    served = run_admin("--config", config, "--database-url", sqlite_url, "serve")
    assert served.returncode == 75, served
    assert served.stderr_first_line.startswith(f"4.3.5 configuration file {config}: service.lmtp '{address}' is a TCP")
    assert "every local user can connect" in served.stderr_first_line
    assert "service.lmtp_allow_tcp = true" in served.stderr_first_line, served
    # A configuration error: the pipe defers (75) on the same file, it never bounces.
    piped = run_deliver("--config", config, "--database-url", sqlite_url, stdin=(MAIL / "new_ticket.eml").read_bytes())
    assert piped.returncode == 75 and "service.lmtp_allow_tcp" in piped.stderr_first_line, piped
    # The command line's --lmtp needs it too; a Unix socket never does.
    cli = run_admin("--database-url", sqlite_url, "serve", "--lmtp", address)
    assert cli.returncode == 75 and "--lmtp" in cli.stderr_first_line, cli
    assert "service.lmtp_allow_tcp" in cli.stderr_first_line, cli
    config.write_text(f'[service]\nlmtp = "{address}"\nlmtp_allow_tcp = "yes"\n')
    typo = run_admin("--config", config, "--database-url", sqlite_url, "serve")
    assert typo.returncode == 75 and "service.lmtp_allow_tcp must be true or false" in typo.stderr_first_line, typo


def test_authentication_results_are_not_honoured_over_tcp(
    sqlite_url: str, run_admin: Any, run_deliver: Any, start_service: StartService, tmp_path: Path
) -> None:
    desk = Desk(sqlite_url, run_admin, run_deliver, init=True)
    desk.admin("user", "add", "bob@helpdesk.example", "--technician", "--access", "normal")
    desk.admin("settings", "set", "trusted_authserv_ids", "mx.helpdesk.example")
    config = tmp_path / "config.toml"
    config.write_text("[service]\nlmtp_allow_tcp = true\n")
    over_unix = start_service(sqlite_url, config=config)
    over_tcp = start_service(sqlite_url, config=config, lmtp_tcp=f"127.0.0.1:{free_port()}")
    with over_unix.lmtp() as lmtp:
        assert lmtp.send((MAIL / "new_ticket.eml").read_bytes(), "alice@example.com", [HELPDESK]) == [
            (250, f"2.0.0 <{HELPDESK}> create ticket #1")
        ]
    technician = (MAIL / "reply_technician.eml").read_bytes()
    # Any local user: the same claim of an authenticated submission, over TCP. Not Bob's comment on #1,
    # but a new ticket flagged as from an unverified sender.
    forged = SUBMISSION + technician.replace(b"tech-reply-1@", b"tech-reply-tcp@")
    with over_tcp.lmtp() as lmtp:
        assert lmtp.send(forged, "bob@helpdesk.example", [HELPDESK]) == [(250, f"2.0.0 <{HELPDESK}> create ticket #2")]
    assert desk.ticket(1)["comments"] == []
    record = desk.messages()[-1]
    why = " ".join(record["reasons"])
    assert "Authentication-Results header(s) not honoured: the message came over LMTP on TCP" in why, record
    assert record["auth_verdict"]["policy"]["trusted_authserv_ids"] == []
    # Postfix over the Unix socket, which only it may reach: the header counts, the comment is verified.
    genuine = SUBMISSION + technician.replace(b"tech-reply-1@", b"tech-reply-unix@")
    with over_unix.lmtp() as lmtp:
        assert lmtp.send(genuine, "bob@helpdesk.example", [HELPDESK]) == [(250, f"2.0.0 <{HELPDESK}> update ticket #1")]
    [comment] = desk.ticket(1)["comments"]
    assert comment["author"] == "bob@helpdesk.example" and comment["verified"] is True
    assert reason({"reasons": desk.messages()[-1]["reasons"]}, "sender-authenticated").startswith("authenticated")


def test_a_release_does_not_honour_what_tcp_did_not(
    sqlite_url: str, run_admin: Any, run_deliver: Any, start_service: StartService, tmp_path: Path
) -> None:
    """The audit trail remembers that a message came over TCP: releasing it (the admin deems the spam flag
    wrong) delivers it with the same distrust of its Authentication-Results as when it arrived."""
    desk = Desk(sqlite_url, run_admin, run_deliver, init=True)
    desk.admin("user", "add", "bob@helpdesk.example", "--technician", "--access", "normal")
    desk.admin("settings", "set", "trusted_authserv_ids", "mx.helpdesk.example")
    assert desk.deliver_ok((MAIL / "new_ticket.eml").read_bytes())["ticket"] == 1
    config = tmp_path / "config.toml"
    config.write_text("[service]\nlmtp_allow_tcp = true\n")
    over_tcp = start_service(sqlite_url, config=config, lmtp_tcp=f"127.0.0.1:{free_port()}")
    technician = (MAIL / "reply_technician.eml").read_bytes().replace(b"tech-reply-1@", b"tech-reply-held@")
    forged = SUBMISSION + b"X-Spam-Flag: YES\n" + technician
    with over_tcp.lmtp() as lmtp:
        [(code, text)] = lmtp.send(forged, "bob@helpdesk.example", [HELPDESK])
    assert code == 250 and "hold" in text, text
    held = desk.messages()[-1]
    released = desk.admin("messages", "release", str(held["id"]), "--json")
    assert released.returncode == 0, released
    assert desk.ticket(1)["comments"] == []  # not Bob's verified comment on #1
    record = desk.messages()[-1]
    assert record["action"] == "create", record
    assert "the message came over LMTP on TCP" in " ".join(record["reasons"]), record
