"""`email2ticket doctor` on privacy: the database and its directory, the log, the key file and the service's
sockets readable or writable by other users fail with the chmod that fixes them; a socket the pipe would not
trust, and LMTP on TCP (every local user can deliver), are said with what they mean."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from support.mail import MAIL
from support.unprivileged import OTHER_USER, other_user


def checks(result: Any) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in json.loads(result.stdout)}


def test_files_open_to_other_users_fail_with_a_fix(run_admin: Any, run_deliver: Any, tmp_path: Path) -> None:
    desk = tmp_path / "desk"
    desk.mkdir(mode=0o700)
    database, log, key, sock = desk / "desk.db", desk / "deliver.log", desk / "keys", desk / "deliver.sock"
    config = tmp_path / "config.toml"
    config.write_text(
        f'database_url = "sqlite:///{database}"\n[logging]\ntarget = "file"\nfile = "{log}"\n'
        f'[service]\nsocket = "{sock}"\n[notifications]\nkey_file = "{key}"\n'
    )
    assert run_admin("--config", config, "init").returncode == 0
    assert run_deliver("--config", config, "--socket", "", stdin=(MAIL / "new_ticket.eml").read_bytes()).returncode == 0
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(sock))  # as `serve` leaves it: 0660 at most
        os.chmod(sock, 0o660)
        found = checks(run_admin("--config", config, "doctor", "--json"))
        assert found["private files"]["ok"], found["private files"]
        assert found["service socket owner"]["ok"], found["service socket owner"]

        for path, loose in ((database, 0o644), (desk, 0o755), (log, 0o640 | 0o004), (key, 0o606), (sock, 0o666)):
            os.chmod(path, loose)
        result = run_admin("--config", config, "doctor", "--json")
    assert result.returncode == 1, result
    private = checks(result)["private files"]
    assert not private["ok"]
    for path, loose in ((database, "0644"), (desk, "0755"), (log, "0644"), (key, "0606"), (sock, "0666")):
        assert f"{path} (mode {loose})" in private["detail"], private
    assert private["detail"].startswith("readable or writable by every local user: ")
    assert private["fix"].startswith(f"chmod o-rwx {database} {desk} {log} {key} {sock}"), private
    assert "TRACEBACK" not in result.stderr_text.upper()


def test_a_socket_the_pipe_would_not_trust(run_admin: Any, tmp_path: Path) -> None:
    stranger = other_user()
    sock = tmp_path / "deliver.sock"
    config = tmp_path / "config.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path}/desk.db"\n[service]\nsocket = "{sock}"\n')
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(sock))
        os.chown(sock, stranger.pw_uid, stranger.pw_gid)
        found = checks(run_admin("--config", config, "doctor", "--json"))["service socket owner"]
        assert not found["ok"], found
        assert f"belongs to {OTHER_USER}, not root, the pipe user or service.user" in found["detail"]
        assert found["fix"].startswith(f'set [service] user = "{OTHER_USER}"')
        config.write_text(config.read_text() + f'user = "{OTHER_USER}"\n')
        assert checks(run_admin("--config", config, "doctor", "--json"))["service socket owner"]["ok"]


def test_lmtp_on_tcp_is_said_to_let_every_local_user_deliver(run_admin: Any, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'database_url = "sqlite:///{tmp_path}/desk.db"\n[service]\nlmtp = "127.0.0.1:2424"\nlmtp_allow_tcp = true\n'
    )
    found = checks(run_admin("--config", config, "doctor", "--json"))["lmtp listener"]
    assert found["ok"] and found["warning"], found
    assert "every local user can connect and deliver mail in anyone's name" in found["detail"]
    assert "Authentication-Results headers arriving there are not honoured" in found["detail"]
    assert 'lmtp = "unix:' in found["fix"]
