"""`email2ticket doctor`'s privacy checks: no other local user reads the help desk's mail or its secrets.

The SQLite database (with the -wal and -shm files SQLite keeps beside it) and its directory, the delivery
log, the notification key file and the service's Unix sockets hold raw mail, senders' addresses and the
key that mints our tokens, or take mail in. Any of them readable or writable by "other" is a FAIL with
the chmod that fixes it; group access is the admin's choice (the MTA's group on a socket) and passes.
email2ticket creates them all private (0600 files, 0700 directories); these checks find what was made
otherwise, by hand or by an older version. The pipe trusts the service's socket only when root, itself
or `service.user` owns it (service/client.py), and LMTP on TCP lets every local user deliver: both are said.
Nothing here writes anything, and a file that does not exist yet is no failure.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
from typing import TYPE_CHECKING

from .checks import Check

if TYPE_CHECKING:
    from ..config.model import Config

OTHERS = 0o006  # read or write for "other"; an "x" alone on a directory lets nobody list or change it


def privacy_checks(config: Config, user: str | None = None) -> list[Check]:
    """Private files and sockets; whose socket the pipe trusts; what LMTP on TCP means."""
    checks = [_private_files_check(config)]
    if config.service.socket:
        checks.append(_socket_owner_check(config, config.service.socket, user))
    lmtp = config.service.lmtp
    if lmtp and not lmtp.startswith("unix:"):
        checks.append(
            Check(
                "lmtp listener",
                True,
                f"LMTP on TCP {lmtp} (service.lmtp_allow_tcp = true): every local user can connect and deliver mail "
                "in anyone's name, and Authentication-Results headers arriving there are not honoured",
                "listen on a Unix socket only Postfix may reach: "
                'lmtp = "unix:/var/spool/postfix/email2ticket/lmtp.sock" with socket_group = "postfix" '
                "(transport: email2ticket-lmtp:unix:email2ticket/lmtp.sock)",
                warning=True,
            )
        )
    return checks


def private_paths(config: Config) -> list[str]:
    """Every file, directory and socket that must be private, whether it exists or not."""
    from ..store.engine import is_sqlite, sqlite_path

    paths: list[str] = []
    url = config.resolved_database_url()
    database = sqlite_path(url) if is_sqlite(url) else None
    if database is not None:
        paths += [str(database), f"{database}-wal", f"{database}-shm", str(database.parent)]
    if config.logging.file and config.logging.target in ("file", "auto"):
        paths.append(config.logging.file)
    paths.append(str(config.notifications.key_path()))
    for socket in (config.service.socket, config.service.lmtp):
        if socket and socket.startswith(("/", "unix:")):
            paths.append(socket.removeprefix("unix:"))
    return paths


def _private_files_check(config: Config) -> Check:
    exposed = []
    for path in private_paths(config):
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            continue  # not there (yet): created private when it is
        if mode & OTHERS:
            exposed.append((path, mode))
    if not exposed:
        return Check("private files", True, "the database, log, key file and sockets are closed to other users")
    listed = ", ".join(f"{path} (mode {mode:04o})" for path, mode in exposed)
    return Check(
        "private files",
        False,
        f"readable or writable by every local user: {listed}",
        f"chmod o-rwx {' '.join(path for path, _ in exposed)} (a socket gets service.socket_mode again when the "
        "service restarts)",
    )


def _socket_owner_check(config: Config, path: str, user: str | None) -> Check:
    """The thin client trusts a socket owned by root, by itself or by service.user; any other it refuses."""
    name = "service socket owner"
    trusted = {0}
    with contextlib.suppress(KeyError):  # an unknown --user: the "pipe user" check says so
        trusted.add(pwd.getpwnam(user).pw_uid if user else os.geteuid())  # the pipe user: --user, else you
    if config.service.user:
        try:
            trusted.add(pwd.getpwnam(config.service.user).pw_uid)
        except KeyError:
            detail = f"service.user {config.service.user!r} is not a user: the pipe trusts only root and itself"
            return Check(name, False, detail, "correct service.user: the user the service runs as")
    try:
        owner = os.stat(path).st_uid
    except OSError:
        return Check(name, True, f"{path} does not exist (the service is not running): the pipe delivers standalone")
    if owner in trusted:
        return Check(name, True, f"{path} belongs to {_user_name(owner)}, whom the pipe trusts")
    return Check(
        name,
        False,
        f"{path} belongs to {_user_name(owner)}, not root, the pipe user or service.user: the pipe will not hand "
        "mail to it and delivers standalone",
        f'set [service] user = "{_user_name(owner)}" if the service runs as that user; else remove the socket',
    )


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
