"""Whose socket the mail goes to, through the real thin client and `email2ticket serve`.

The pipe hands a message only to a service socket that belongs to root, to its own user or to the user
`[service] user` names, in a directory other users cannot write (unless it has the sticky bit, as /tmp):
anyone else's socket could take every message and answer 0. Such a socket counts as an unreachable
service: the configured fallback applies. `serve` over a stale socket it cannot probe or remove, and
`socket_mode` giving other users access, are one sentence each and exit 75.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.executables import ADMIN, child_env
from support.mail import MAIL
from support.servers.delivery_service import StartService
from support.unprivileged import OTHER_USER, other_user, powerless

NEW = (MAIL / "new_ticket.eml").read_bytes()


def test_the_pipe_trusts_only_a_socket_of_root_itself_or_service_user(
    sqlite_url: str, run_deliver: Any, start_service: StartService, tmp_path: Path
) -> None:
    stranger = other_user()
    config = tmp_path / "config.toml"
    config.write_text("")
    service = start_service(sqlite_url, config=config)
    args = ("--config", str(config), "--socket", str(service.socket), "--database-url", sqlite_url, "--json")

    def deliver(number: int, fallback: str = "tempfail") -> Any:
        raw = NEW.replace(b"new-ticket-1@", f"new-ticket-{number}@".encode())
        return run_deliver(*args, "--fallback", fallback, stdin=raw)

    os.chown(service.socket, stranger.pw_uid, stranger.pw_gid)
    refused = deliver(1)
    assert refused.returncode == 75, refused
    assert refused.stderr_first_line == (
        f"4.3.0 the delivery service at {service.socket} is unavailable (it belongs to uid {stranger.pw_uid}, not to "
        "root, this user or [service] user) and fallback is tempfail"
    )
    alone = deliver(1, fallback="standalone")  # as for a service that is down: delivered in-process
    assert alone.returncode == 0 and alone.json["action"] == "create", alone
    # The admin names the service's user: trusted, and the service delivers (fallback tempfail would say).
    config.write_text(f'[service]\nuser = "{OTHER_USER}"\n')
    assert deliver(2).json["action"] == "create"

    # A directory every user may write: whoever can replace the socket could take the mail.
    os.chown(service.socket, 0, 0)
    os.chmod(service.directory, 0o777)
    exposed = deliver(3)
    assert exposed.returncode == 75, exposed
    assert f"(its directory {service.directory} is writable by every user)" in exposed.stderr_first_line
    os.chmod(service.directory, 0o1777)  # with the sticky bit nobody replaces another user's file, as in /tmp
    assert deliver(3).json["action"] == "create"


def test_serve_over_another_users_stale_socket_is_one_line(tmp_path: Path, sqlite_url: str) -> None:
    stranger = other_user()
    shared = Path("/tmp") / f"e2t-shared-{os.getpid()}"  # like /tmp itself: everyone's, sticky
    shared.mkdir()
    try:
        os.chown(shared, stranger.pw_uid, stranger.pw_gid)
        os.chmod(shared, 0o1777)
        stale = shared / "deliver.sock"
        with socket.socket(socket.AF_UNIX) as left_behind:
            left_behind.bind(str(stale))  # nobody listens on it any more
        os.chown(stale, stranger.pw_uid, stranger.pw_gid)
        os.chmod(stale, 0o600)

        def serve() -> subprocess.CompletedProcess[bytes]:
            command = [sys.executable, str(ADMIN), "--database-url", sqlite_url, "serve", "--socket", str(stale)]
            argv = powerless(command)
            return subprocess.run(argv, capture_output=True, env=child_env(tmp_path), timeout=60, check=False)

        cannot_tell = serve()
        assert cannot_tell.returncode == 75, cannot_tell
        assert cannot_tell.stderr.decode().splitlines() == [
            f"4.3.5 cannot tell whether another service listens on {stale} (it belongs to {stranger.pw_name}): "
            "Permission denied; remove the file if none does, or choose another socket path"
        ]
        os.chmod(stale, 0o666)  # now it can tell nobody listens, but the sticky directory keeps the file
        cannot_remove = serve()
        assert cannot_remove.returncode == 75, cannot_remove
        assert cannot_remove.stderr.decode().splitlines() == [
            f"4.3.5 cannot remove {stale}, left behind by a service that stopped (it belongs to {stranger.pw_name}): "
            "Operation not permitted; remove it as its owner or root, or choose another socket path"
        ]
        assert stale.exists()
    finally:
        for path in shared.iterdir():
            path.unlink()
        shared.rmdir()


def test_socket_mode_never_opens_the_sockets_to_other_users(
    run_admin: Any, run_deliver: Any, sqlite_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[service]\nsocket = "{tmp_path}/deliver.sock"\nsocket_mode = "0666"\n')
    expected = 'service.socket_mode "0666" gives other users access to the service\'s sockets: use "0660"'
    served = run_admin("--config", config, "--database-url", sqlite_url, "serve")
    assert served.returncode == 75 and expected in served.stderr_first_line, served
    piped = run_deliver("--config", config, "--database-url", sqlite_url, stdin=NEW)
    assert piped.returncode == 75 and expected in piped.stderr_first_line, piped
    assert not (tmp_path / "deliver.sock").exists()
