"""`email2ticket doctor`: is this installation able to take mail right now? Each check says OK or FAIL and a fix.

The checks follow a message's path: the configuration file, the database (reachable, schema at this
code's revision), the pipe user's access (can it run this interpreter, read the configuration, write
the SQLite database, its directory and the log file), the Postfix wiring when given the Postfix
configuration directory (master.cf pipe service, main.cf limits), and the quarantine (empty, or an
admin must look). Nothing here writes anything: doctor is safe to run on a live system.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exits import DeliveryError

if TYPE_CHECKING:
    from ..config.model import Config

POSTFIX_DEFAULT_MESSAGE_SIZE_LIMIT = 10240000
POSTFIX_DEFAULT_MAILBOX_SIZE_LIMIT = 51200000


@dataclass(frozen=True)
class Check:
    """One check's verdict; `fix` says what to do when it failed."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def lines(self) -> list[str]:
        out = [f"{'OK  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"]
        if not self.ok and self.fix:
            out.append(f"      fix: {self.fix}")
        return out

    def as_json(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


def run_checks(
    config_file: str | None,
    *,
    database_url: str | None,
    environ: Mapping[str, str],
    user: str | None,
    postfix_dir: str | None,
) -> list[Check]:
    """Every check, in the order a message meets them; later checks are skipped when they cannot run."""
    from ..config.load import load_config

    try:
        config = load_config(config_file, database_url=database_url, environ=dict(environ))
    except DeliveryError as exc:
        return [Check("configuration", False, exc.reason, "correct the file; until then every delivery exits 75")]
    where = config.source or "no configuration file (built-in defaults)"
    checks = [Check("configuration", True, f"{where} is valid")]
    checks.append(_database_url_check(config))
    database = _database_checks(config)
    checks += database
    checks.append(_pipe_user_check(config, user))
    checks += notification_checks(config)
    if postfix_dir:
        checks += postfix_checks(Path(postfix_dir), config)
    if all(c.ok for c in database):
        checks.append(_quarantine_check(config))
    return checks


def notification_checks(config: Config) -> list[Check]:
    """[notifications]: off, or a key file, templates and a transport that work."""
    from ..outbound.keys import keyring_for
    from ..outbound.render import check_templates, load_templates

    settings = config.notifications
    if not settings.enabled:
        return [Check("notifications", True, "off: no acknowledgements are sent ([notifications] from_address)")]
    checks = [Check("notifications", True, f"on, from {settings.from_address} by {settings.method}")]
    try:
        keyring = keyring_for(settings)
        assert keyring is not None, "keyring_for raises when notifications are on and the file is missing"
        checks.append(Check("notification key", True, f"{settings.key_path()}: {len(keyring.keys)} key(s) in force"))
    except DeliveryError as exc:
        checks.append(Check("notification key", False, exc.reason, "run `email2ticket init` as the help desk's user"))
    try:
        problems = check_templates(load_templates(settings.templates))
    except DeliveryError as exc:
        problems = [exc.reason]
    detail = "; ".join(problems) or f"{settings.templates or 'built-in'} templates are valid"
    checks.append(Check("notification templates", not problems, detail, "edit the template files"))
    checks.append(_transport_check(config))
    return checks


def _transport_check(config: Config) -> Check:
    """Can notifications leave? The sendmail program exists, or the SMTP relay accepts a connection."""
    import socket

    settings = config.notifications
    if settings.method == "sendmail":
        ok = os.access(settings.sendmail, os.X_OK)
        detail = f"{settings.sendmail} {'is' if ok else 'is not'} an executable program"
        return Check("notification transport", ok, detail, "install the MTA's sendmail or set [notifications] sendmail")
    try:
        with socket.create_connection((settings.smtp_host, settings.smtp_port), timeout=settings.timeout):
            pass
    except OSError as exc:
        where = f"{settings.smtp_host}:{settings.smtp_port}"
        return Check("notification transport", False, f"cannot connect to {where}: {exc}", "check smtp_host/smtp_port")
    return Check("notification transport", True, f"SMTP relay {settings.smtp_host}:{settings.smtp_port} answers")


def _database_url_check(config: Config) -> Check:
    if config.database_url:
        from ..store.engine import redact

        return Check("database_url", True, f"set explicitly: {redact(config.database_url)}")
    return Check(
        "database_url",
        False,
        f"not set: each user gets its own SQLite file ({config.resolved_database_url()} for this one)",
        "set database_url in the configuration file; under an MTA the pipe user's data directory is rarely right",
    )


def _database_checks(config: Config) -> list[Check]:
    """Reachable, then at this code's schema revision."""
    from ..store.engine import INIT_HINT, current_revision, make_engine, redact
    from ..store.errors import translate_errors
    from ..store.schema import SCHEMA_REVISION

    url = config.resolved_database_url()
    try:
        engine = make_engine(url, lock_timeout=config.lock_timeout)
        with translate_errors(redact(url)), engine.connect() as connection:
            revision = current_revision(connection)
        engine.dispose()
    except DeliveryError as exc:
        return [Check("database", False, exc.reason, "start the database server, or correct database_url")]
    checks = [Check("database", True, f"{redact(url)} is reachable")]
    if revision == SCHEMA_REVISION:
        checks.append(Check("schema", True, f"at revision {SCHEMA_REVISION}"))
    else:
        found = f"at revision {revision}" if revision else "missing"
        detail = f"{found}, this email2ticket expects {SCHEMA_REVISION}: every delivery exits 75"
        checks.append(Check("schema", False, detail, INIT_HINT))
    return checks


def _quarantine_check(config: Config) -> Check:
    from ..delivery.quarantine import QuarantineStore

    try:
        count = QuarantineStore(config.resolved_database_url(), lock_timeout=config.lock_timeout).count()
    except DeliveryError as exc:
        return Check("quarantine", False, exc.reason, "")
    if count == 0:
        return Check("quarantine", True, "empty")
    return Check(
        "quarantine",
        False,
        f"{count} message(s) failed repeatedly and wait for an admin",
        "see `email2ticket quarantine list`, then `quarantine replay ID` after fixing the cause, "
        "or `quarantine delete ID`",
    )


# --- what the pipe user can do ----------------------------------------------------------------------

# Runs as the pipe user: proves it can execute this interpreter and import the package, then checks
# each path. A path that does not exist yet must be creatable in its directory.
_ACCESS_PROBE = """
import json, os, sys
import email2ticket.cli.deliver
out = []
for label, path, mode in json.loads(sys.argv[1]):
    if mode == "read":
        ok = os.access(path, os.R_OK)
    elif mode == "dir":
        ok = os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)
    elif mode == "key":  # the default lies in this user's own data directory
        if not path:
            from platformdirs import user_data_path
            path = str(user_data_path("email2ticket") / "notification-keys")
        ok = os.access(path, os.R_OK)
    else:
        ok = os.access(path, os.W_OK) if os.path.exists(path) else os.access(os.path.dirname(path), os.W_OK | os.X_OK)
    out.append([label, path, ok])
print(json.dumps(out))
"""


def _paths_to_check(config: Config) -> list[tuple[str, str, str]]:
    from ..store.engine import is_sqlite, sqlite_path

    paths: list[tuple[str, str, str]] = []
    if config.source:
        paths.append(("read the configuration file", config.source, "read"))
    url = config.resolved_database_url()
    db = sqlite_path(url) if is_sqlite(url) else None
    if db is not None:
        paths.append(("write the SQLite database", str(db), "write"))
        # SQLite writes its -wal/-shm/journal files next to the database.
        paths.append(("create files in the database's directory", str(db.parent), "dir"))
    if config.logging.file and config.logging.target in ("file", "auto"):
        paths.append(("append to the log file", config.logging.file, "write"))
    if config.notifications.enabled:  # `init` run as another user puts the key where the pipe user never looks
        key_file = str(config.notifications.key_path()) if config.notifications.key_file else ""
        paths.append(("read the notification key file (run `email2ticket init` as this user)", key_file, "key"))
    return paths


def _pipe_user_check(config: Config, user: str | None) -> Check:
    name = "pipe user"
    me = pwd.getpwuid(os.geteuid()).pw_name
    who = user or me
    try:
        entry = pwd.getpwnam(who)
    except KeyError:
        return Check(name, False, f"there is no user {who!r}", "create it (see postfix/README.md) or fix --user")
    argv = [sys.executable, "-c", _ACCESS_PROBE, json.dumps(_paths_to_check(config))]
    kwargs: dict[str, Any] = {}
    if entry.pw_uid != os.geteuid():
        if os.geteuid() != 0:
            return Check(name, False, f"cannot check {who}'s access as {me}", "run doctor as root (or as that user)")
        groups = [g for g in os.getgrouplist(who, entry.pw_gid) if g != entry.pw_gid]
        kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups}
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, check=False, cwd="/", env=_probe_env(entry), **kwargs
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return Check(name, False, f"{who} cannot run {sys.executable}: {exc}", _install_fix())
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return Check(name, False, f"{who} cannot run {sys.executable} with email2ticket: {last}", _install_fix())
    denied = [f"{label} ({path})" for label, path, ok in json.loads(proc.stdout) if not ok]
    if denied:
        return Check(name, False, f"{who} cannot " + "; cannot ".join(denied), "give that user access (chown/chmod)")
    return Check(name, True, f"{who} can run {sys.executable}, read the configuration and write where it must")


def _probe_env(entry: pwd.struct_passwd) -> dict[str, str]:
    # The package this very process runs (an installed site-packages, or a checkout's lib/ that the
    # bin/ shims put on sys.path): the pipe user must be able to read that copy.
    package_root = str(Path(__file__).resolve().parent.parent)
    return {"PATH": os.environ.get("PATH", os.defpath), "HOME": entry.pw_dir, "PYTHONPATH": package_root}


def _install_fix() -> str:
    return (
        "install into a virtual environment built from the system Python under a world-readable directory "
        "such as /opt/email2ticket (not an editable install, not under a 0700 home, not a pyenv shim)"
    )


# --- Postfix wiring -------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class PipeService:
    """A master.cf entry running email2ticket-deliver through pipe(8)."""

    name: str
    unpriv: str
    chroot: str
    attributes: dict[str, str]
    argv: list[str]


def find_pipe_services(path: Path) -> list[PipeService]:
    """master.cf entries whose command is pipe with an argv running email2ticket-deliver."""
    entries: list[list[str]] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and entries:
            entries[-1] += line.split()
        else:
            entries.append(line.split())
    services = []
    for fields in entries:
        if len(fields) < 8 or fields[7] != "pipe":
            continue
        attributes: dict[str, str] = {}
        argv: list[str] = []
        for i, word in enumerate(fields[8:], start=8):
            key, _, value = word.partition("=")
            if key == "argv":
                argv = [value, *fields[i + 1 :]]
                break
            attributes[key] = value
        if any("email2ticket-deliver" in word for word in argv[:1]):
            services.append(PipeService(fields[0], fields[3], fields[4], attributes, argv))
    return services


def postfix_checks(directory: Path, config: Config) -> list[Check]:
    """master.cf pipe service and main.cf settings, as postfix/master.cf.snippet and main.cf.snippet have them."""
    try:
        services = find_pipe_services(directory / "master.cf")
        main = read_main_cf(directory / "main.cf")
    except OSError as exc:
        return [Check("postfix", False, f"cannot read {directory}: {exc.strerror or exc}", "pass the right directory")]
    if not services:
        return [
            Check(
                "postfix master.cf",
                False,
                f"no pipe service running email2ticket-deliver in {directory / 'master.cf'}",
                "append postfix/master.cf.snippet to master.cf and `postfix reload`",
            )
        ]
    service = services[0]
    return [_master_check(service), _main_check(service, main, config)]


def _master_check(service: PipeService) -> Check:
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
    executable = service.argv[0]
    if not os.access(executable, os.X_OK):
        problems.append(f"{executable} is not executable")
    if problems:
        return Check(f"postfix master.cf ({service.name})", False, "; ".join(problems), "see postfix/master.cf.snippet")
    return Check(f"postfix master.cf ({service.name})", True, f"pipe service runs {executable} as {user}")


def _main_check(service: PipeService, main: dict[str, str], config: Config) -> Check:
    problems = []
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
        return Check("postfix main.cf", False, "; ".join(problems), "see postfix/main.cf.snippet")
    return Check("postfix main.cf", True, "transport_maps, recipient limit 1 and size limits are set")


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
