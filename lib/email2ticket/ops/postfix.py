"""`email2ticket doctor --postfix-config DIR`: does Postfix hand the help desk's mail over as postfix/README.md says?

Every documented wiring counts (postfix/master.cf.snippet, postfix/service.snippet, postfix/setup.sh):

  pipe         a pipe(8) service whose argv runs .../email2ticket-deliver
  thin client  the same pipe, with the interpreter first: `argv=.../python -IS .../email2ticket-deliver --socket ...`
  LMTP         an lmtp(8) service and a transport entry `email2ticket-lmtp:unix:email2ticket/lmtp.sock` (a path
               relative to the queue directory, as lmtp(8) resolves it) or `...:inet:127.0.0.1:2424`, which must
               name the socket that `[service] lmtp` listens on

Files are read, never changed, and without postconf: $config_directory and $queue_directory are expanded, no
other parameter, which is enough for the documented forms.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from msgspec import Struct

from .checks import Check, has_syslog

if TYPE_CHECKING:
    from ..config.model import Config

POSTFIX_DEFAULT_MESSAGE_SIZE_LIMIT = 10240000
POSTFIX_DEFAULT_MAILBOX_SIZE_LIMIT = 51200000
POSTFIX_DEFAULT_QUEUE_DIRECTORY = "/var/spool/postfix"
DELIVER = "email2ticket-deliver"
# Map types whose source is a text file beside the compiled table (postmap's input).
FILE_MAP_TYPES = ("hash", "btree", "lmdb", "cdb", "dbm", "sdbm", "texthash")


def read_main_cf(path: Path) -> dict[str, str]:
    """main.cf as name -> value (continuation lines joined, last definition wins; no $expansion)."""
    values: dict[str, str] = {}
    name = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and name is not None:
            values[name] += " " + line.strip()
            continue
        key, sep, value = line.partition("=")
        name = key.strip() if sep else None
        if name is not None:
            values[name] = value.strip()
    return values


def read_master_cf(path: Path) -> list[list[str]]:
    """master.cf entries, each as its words (continuation lines joined)."""
    entries: list[list[str]] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and entries:
            entries[-1] += line.split()
        else:
            entries.append(line.split())
    return [fields for fields in entries if len(fields) >= 8]


def deliver_script(argv: list[str]) -> int | None:
    """Where email2ticket-deliver is in a pipe's argv: 0 when it is the command, else after the interpreter and
    its options (`.../python -IS .../email2ticket-deliver`, the thin client); None when it is not run at all."""
    if not argv:
        return None
    if os.path.basename(argv[0]) == DELIVER:
        return 0
    if not os.path.basename(argv[0]).startswith("python"):
        return None
    for index, word in enumerate(argv[1:], start=1):
        if word.startswith("-"):
            if word in ("-c", "-m") or word.startswith(("-c", "-m")):
                return None  # python -c/-m runs something else
            continue
        return index if os.path.basename(word) == DELIVER else None
    return None


class PipeService(Struct, frozen=True):
    """A master.cf entry running email2ticket-deliver through pipe(8)."""

    name: str
    unpriv: str
    chroot: str
    attributes: dict[str, str]
    argv: list[str]
    script: int = 0  # index of email2ticket-deliver in argv; > 0 for the thin client (argv[0] is python)

    def option(self, name: str) -> str | None:
        """The value of `--name VALUE` in argv, if present."""
        words = self.argv[self.script + 1 :]
        return next((words[i + 1] for i, word in enumerate(words[:-1]) if word == name), None)


def find_pipe_services(path: Path) -> list[PipeService]:
    """master.cf entries whose command is pipe with an argv running email2ticket-deliver, directly or as a script."""
    services = []
    for fields in read_master_cf(path):
        if fields[7] != "pipe":
            continue
        attributes: dict[str, str] = {}
        argv: list[str] = []
        for i, word in enumerate(fields[8:], start=8):
            key, _, value = word.partition("=")
            if key == "argv":
                argv = [value, *fields[i + 1 :]]
                break
            attributes[key] = value
        script = deliver_script(argv)
        if script is not None:
            services.append(PipeService(fields[0], fields[3], fields[4], attributes, argv, script))
    return services


class Route(Struct, frozen=True):
    """One transport table entry: `address transport:nexthop`."""

    address: str
    transport: str
    nexthop: str


def read_transport_maps(main: dict[str, str], directory: Path) -> tuple[list[Route], list[str]]:
    """The entries of transport_maps' file-based tables, and the tables that could not be read (with why)."""
    routes: list[Route] = []
    unread: list[str] = []
    for table in re.split(r"[\s,]+", main.get("transport_maps", "").strip()):
        if not table:
            continue
        kind, _, name = table.partition(":")
        if kind not in FILE_MAP_TYPES:
            unread.append(f"{table} (not a file table)")
            continue
        path = expand(name, main, directory)
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            unread.append(f"{path} ({exc.strerror or exc})")
            continue
        routes += parse_transport_table(text)
    return routes, unread


def parse_transport_table(text: str) -> list[Route]:
    entries: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and entries:
            entries[-1] += line.split()
        else:
            entries.append(line.split())
    routes = []
    for words in entries:
        if len(words) >= 2:
            transport, _, nexthop = " ".join(words[1:]).partition(":")
            routes.append(Route(words[0].lower(), transport, nexthop))
    return routes


def expand(value: str, main: dict[str, str], directory: Path) -> str:
    known = {"config_directory": str(directory), "queue_directory": queue_directory(main)}
    return re.sub(r"\$\{?(config_directory|queue_directory)\}?", lambda m: known[m.group(1)], value)


def queue_directory(main: dict[str, str]) -> str:
    return main.get("queue_directory") or POSTFIX_DEFAULT_QUEUE_DIRECTORY


def postfix_checks(directory: Path, config: Config) -> list[Check]:
    """The master.cf services, main.cf settings and transport entries that bring mail to email2ticket."""
    try:
        entries = read_master_cf(directory / "master.cf")
        services = find_pipe_services(directory / "master.cf")
        main = read_main_cf(directory / "main.cf")
    except OSError as exc:
        return [Check("postfix", False, f"cannot read {directory}: {exc.strerror or exc}", "pass the right directory")]
    routes, unread = read_transport_maps(main, directory)
    lmtp_services = {fields[0] for fields in entries if fields[7] == "lmtp"}
    lmtp_routes = [r for r in routes if r.transport in lmtp_services and _ours(r, config)]
    if not services and not lmtp_routes:
        return [
            Check(
                "postfix master.cf",
                False,
                f"no pipe service running email2ticket-deliver in {directory / 'master.cf'}, and no transport "
                "to the service's LMTP socket",
                "run postfix/setup.sh, or append postfix/master.cf.snippet to master.cf (service.snippet for the "
                "resident service), then `postfix reload`",
            )
        ]
    checks = [_master_check(service, config) for service in services]
    checks.append(_main_check(services, main, config))
    if lmtp_routes:
        checks.append(_lmtp_check(lmtp_routes, main, config))
    checks.append(_routing_check({s.name for s in services}, routes, lmtp_routes, unread))
    checks.append(_maillog_check(main))
    return checks


def _ours(route: Route, config: Config) -> bool:
    """An LMTP route to email2ticket (and not, say, to Dovecot): named so, or aimed at our [service] lmtp."""
    return "email2ticket" in f"{route.transport}:{route.nexthop}" or (
        config.service.lmtp is not None and route.nexthop.rpartition(":")[2] == config.service.lmtp.rpartition(":")[2]
    )


def _master_check(service: PipeService, config: Config) -> Check:
    problems = []
    argv = " ".join(service.argv)
    if service.unpriv != "n":
        problems.append("the unpriv column must be n (pipe(8) must start as root to switch to user=)")
    if service.chroot not in ("n",):
        problems.append("the chroot column must be n (a chrooted pipe cannot see the install or the database)")
    user = service.attributes.get("user", "").split(":")[0]
    if not user or user == "root":
        problems.append("user= must name an unprivileged user")
    if service.attributes.get("null_sender", None) != "":
        problems.append("null_sender= (empty) is missing: bounces would arrive as MAILER-DAEMON")
    if "R" not in service.attributes.get("flags", ""):
        problems.append("flags= lacks R (the stored message would lose its Return-Path:)")
    if "--sender ${sender}" not in argv:
        problems.append("argv lacks --sender ${sender} (pipe(8) passes the envelope only on the command line)")
    if not re.search(r"--recipient \$\{(original_)?recipient\}", argv):
        problems.append("argv lacks --recipient ${original_recipient}")
    executable, script = service.argv[0], service.argv[service.script]
    if not os.access(executable, os.X_OK):
        problems.append(f"{executable} is not executable")
    elif service.script and not os.access(script, os.R_OK):
        problems.append(f"{script} (run by {executable}) is not readable")
    socket_path = service.option("--socket")
    if socket_path and config.service.socket and socket_path != config.service.socket:
        problems.append(
            f"--socket {socket_path} is not the socket the service listens on ([service] socket = "
            f"{config.service.socket}): every delivery would fall back"
        )
    name = f"postfix master.cf ({service.name})"
    if problems:
        return Check(name, False, "; ".join(problems), "see postfix/master.cf.snippet (service.snippet: thin client)")
    via = f", a thin client of the service at {socket_path}" if socket_path else ""
    return Check(name, True, f"pipe service runs {script} as {user}{via}")


def _main_check(services: list[PipeService], main: dict[str, str], config: Config) -> Check:
    problems = []
    for service in services:
        limit = main.get(f"{service.name}_destination_recipient_limit")
        if limit != "1":
            problems.append(f"{service.name}_destination_recipient_limit must be 1 (is {limit or 'unset'})")
    if "transport_maps" not in main:
        problems.append("transport_maps is not set: nothing routes mail to the service")
    size = _int(main.get("message_size_limit"), POSTFIX_DEFAULT_MESSAGE_SIZE_LIMIT)
    if size != 0 and size < config.max_message_bytes:
        problems.append(
            f"message_size_limit ({size}) is below max_message_bytes ({config.max_message_bytes}): raise it"
        )
    mailbox = _int(main.get("mailbox_size_limit"), POSTFIX_DEFAULT_MAILBOX_SIZE_LIMIT)
    if mailbox != 0 and size != 0 and mailbox < size:
        problems.append(f"mailbox_size_limit ({mailbox}) is below message_size_limit: local(8) would stop")
    if problems:
        return Check("postfix main.cf", False, "; ".join(problems), "see postfix/main.cf.snippet (postconf -e)")
    limit = ", recipient limit 1" if services else ""
    return Check("postfix main.cf", True, f"transport_maps{limit} and size limits are set")


def lmtp_target(nexthop: str, main: dict[str, str]) -> str:
    """Where Postfix's lmtp(8) connects for a next-hop, in [service] lmtp's spelling: unix:/abs/path or host:port."""
    kind, _, where = nexthop.partition(":")
    if kind == "unix":
        path = expand(where, main, Path("/"))
        return "unix:" + os.path.normpath(os.path.join(queue_directory(main), path))
    if kind == "inet":
        return where
    return nexthop  # lmtp(8) reads a next-hop without a type as inet


def _lmtp_check(routes: list[Route], main: dict[str, str], config: Config) -> Check:
    listens = config.service.lmtp
    problems: list[str] = []
    targets = sorted({lmtp_target(route.nexthop, main) for route in routes})
    for target in targets:
        if not listens:
            problems.append(f"Postfix delivers to {target}, but [service] lmtp is not set: nothing listens there")
        elif _normal(target) != _normal(listens):
            problems.append(f"Postfix connects to {target}, but the service listens on {listens}")
    if listens and listens.startswith("unix:"):
        path = Path(listens[5:])
        spool = Path(queue_directory(main))
        if path.parent in (spool / "private", spool / "public"):
            problems.append(
                f"{path.parent} belongs to Postfix (mode 0700 or 0710): the service cannot create its socket there"
            )
    if not problems and listens and not _answers(listens):
        problems.append(f"nothing answers on {listens} now: Postfix keeps the mail queued until the service runs")
    name = f"postfix lmtp ({', '.join(sorted({r.transport for r in routes}))})"
    fix = (
        'set [service] lmtp = "unix:/var/spool/postfix/email2ticket/lmtp.sock" and the transport to '
        "email2ticket-lmtp:unix:email2ticket/lmtp.sock (relative to the queue directory); "
        "systemctl restart email2ticket"
    )
    if problems:
        return Check(name, False, "; ".join(problems), fix)
    return Check(name, True, f"Postfix delivers over LMTP to {listens}, where the service answers")


def _normal(where: str) -> str:
    if where.startswith("unix:"):
        return "unix:" + os.path.normpath(where[5:])
    host, _, port = where.rpartition(":")
    return f"{host.strip('[]').lower()}:{port}"


def _answers(where: str) -> bool:
    try:
        if where.startswith("unix:"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(where[5:])
        else:
            host, _, port = where.rpartition(":")
            with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
                pass
    except (OSError, ValueError):
        return False
    return True


def _routing_check(pipes: set[str], routes: list[Route], lmtp_routes: list[Route], unread: list[str]) -> Check:
    addresses = sorted({r.address for r in routes if r.transport in pipes} | {r.address for r in lmtp_routes})
    if addresses:
        return Check("postfix transport", True, f"{', '.join(addresses)} routed to email2ticket")
    detail = "no transport_maps entry routes an address to email2ticket"
    if unread:
        detail += f" (not read: {'; '.join(unread)})"
    fix = "add `helpdesk@your.domain email2ticket:` to /etc/postfix/transport, then postmap it (postfix/setup.sh)"
    return Check("postfix transport", False, detail, fix)


def _maillog_check(main: dict[str, str]) -> Check:
    if main.get("maillog_file"):
        return Check("postfix log", True, f"maillog_file = {main['maillog_file']}")
    if has_syslog():
        return Check("postfix log", True, "through syslog")
    return Check(
        "postfix log",
        True,
        "no syslog (/dev/log) and no maillog_file: Postfix logs nowhere",
        "postconf -e maillog_file=/var/log/postfix.log && postfix reload (postfix/setup.sh does it)",
        warning=True,
    )


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
