"""`doctor`'s checks of the resident service's sockets, when `[service]` configures any.

For each Unix socket (the thin client's `socket`, and `lmtp` when it is `unix:/path`): the file exists and is a
socket; its group is the configured `socket_group` (the MTA's pipe user, or Postfix's lmtp(8), must be let
in) and its mode the configured `socket_mode`; and a service answers on it: `E2T1 PING` on the thin client's
socket (service/pipe.py answers `PONG`, delivering nothing), an LMTP greeting and LHLO on the LMTP one. A
loopback TCP LMTP address only gets the last. Whose socket the pipe trusts, and access by other users, are
ops/privacy.py's checks. A thin client's socket with `fallback = "standalone"` that is down is a WARN (mail
still flows, standalone), anything else down a FAIL (the MTA keeps the mail queued). Nothing is written.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

from .checks import Check

if TYPE_CHECKING:
    from ..config.model import Config

PING = b"E2T1 PING\n"  # service/pipe.py's PING, in the thin client's framing
TIMEOUT = 5.0
PingFunction = Callable[[str], "str | None"]  # (path) -> None when a service answered, else why not
START_FIX = "start the service (systemctl start email2ticket), and see its log (journalctl -u email2ticket)"


def service_checks(config: Config) -> list[Check]:
    """One check per configured socket; none when no service is configured."""
    service = config.service
    checks = []
    if service.socket:
        checks.append(socket_check("service socket", service.socket, config, ping_pipe))
    if service.lmtp:
        if service.lmtp.startswith("unix:"):
            path = service.lmtp.removeprefix("unix:")
            checks.append(socket_check("service lmtp socket", path, config, ping_lmtp))
        else:
            checks.append(_tcp_check(service.lmtp))
    return checks


def socket_check(name: str, path: str, config: Config, ping: PingFunction) -> Check:
    """Exists, group and mode, then answers (see the module's docstring)."""
    service = config.service
    # A thin client with fallback = "standalone" still delivers without the service, only slower.
    warning = ping is ping_pipe and service.fallback == "standalone"
    down = " (pipe deliveries fall back to standalone meanwhile: slower, nothing lost)" if warning else ""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return Check(name, warning, f"{path} does not exist: the service is not running{down}", START_FIX, warning)
    except OSError as exc:
        return Check(name, False, f"cannot look at {path}: {exc.strerror or exc}", "run doctor as root")
    if not stat.S_ISSOCK(info.st_mode):
        return Check(name, False, f"{path} is not a socket", f"remove it; the service creates the socket ({START_FIX})")
    owner, group, mode = _user_name(info.st_uid), _group_name(info.st_gid), stat.S_IMODE(info.st_mode)
    if service.socket_group and group != service.socket_group and not mode & 0o007:
        detail = f"{path} belongs to group {group}, not to service.socket_group {service.socket_group}"
        return Check(name, False, detail + ": the MTA cannot connect", _restart_fix())
    answer = ping(path)
    if answer is not None:
        return Check(name, warning, f"{path}: {answer}{down}", START_FIX, warning)
    if mode != service.socket_mode:
        detail = f"{path} answers, but has mode {mode:04o} where service.socket_mode says {service.socket_mode:04o}"
        return Check(name, True, detail, _restart_fix(), warning=True)
    return Check(name, True, f"{path} (owner {owner}, group {group}, mode {mode:04o}) answers")


def _restart_fix() -> str:
    return "check [service] socket_mode and socket_group, then restart the service (it sets them on its sockets)"


def ping_pipe(path: str) -> str | None:
    """The thin client's protocol: E2T1 PING, answered PONG <pid>."""
    try:
        with _connect(path) as sock:
            sock.sendall(PING)
            answer = sock.makefile("rb").readline(64)
    except OSError as exc:
        return _not_answering(exc)
    if not answer.startswith(b"PONG"):
        return f"something answers, but not the email2ticket service ({answer[:40]!r})"
    return None


def ping_lmtp(path: str) -> str | None:
    """LMTP: a 220 greeting, 250 to LHLO, then QUIT."""
    try:
        with _connect(path) as sock:
            return _lmtp_dialogue(sock)
    except OSError as exc:
        return _not_answering(exc)


def _tcp_check(address: str) -> Check:
    from ..config.service import parse_listen_address

    host, port = parse_listen_address(address)
    name = "service lmtp"
    try:
        with socket.create_connection((str(host), int(port)), timeout=TIMEOUT) as sock:
            problem = _lmtp_dialogue(sock)
    except OSError as exc:
        problem = _not_answering(exc)
    if problem is not None:
        return Check(name, False, f"{address}: {problem}", START_FIX)
    return Check(name, True, f"{address} answers")


def _lmtp_dialogue(sock: socket.socket) -> str | None:
    replies = sock.makefile("rb")

    def reply() -> bytes:
        while True:
            line = replies.readline(1024)
            if line[3:4] != b"-":
                return line

    greeting = reply()
    if not greeting.startswith(b"220"):
        return f"no LMTP greeting ({greeting[:40]!r})"
    sock.sendall(b"LHLO doctor.invalid\r\n")
    answer = reply()
    sock.sendall(b"QUIT\r\n")
    return None if answer.startswith(b"250") else f"LHLO answered {answer[:40]!r}"


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    try:
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def _not_answering(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "nothing listens on it (a service that stopped left it behind)"
    if isinstance(exc, PermissionError):
        return "doctor may not connect to it: run doctor as root or as the pipe user"
    if isinstance(exc, TimeoutError):
        return f"no answer within {TIMEOUT:g} s (the service is hung or overloaded)"
    return f"cannot talk to it: {exc.strerror or exc}"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return f"gid {gid}"
