"""`email2ticket doctor`: is this installation able to take mail right now? Each check says OK or FAIL and a fix.

The checks follow a message's path: the configuration file, the database (reachable, schema at this
code's revision), the pipe user's access (can it run this interpreter, read the configuration, write
the SQLite database, its directory and the log file), where the delivery log goes (ops/checks.py), the
resident service's sockets when one is configured (ops/service_check.py), the Postfix wiring when given
the Postfix configuration directory (ops/postfix.py: the pipe, thin-client or LMTP service, main.cf
limits, the transport table), and the quarantine (empty, or an admin must look).
Nothing here writes anything: doctor is safe to run on a live system.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exits import DeliveryError
from .checks import Check, logging_check
from .postfix import postfix_checks
from .privacy import privacy_checks
from .service_check import service_checks

if TYPE_CHECKING:
    from ..config.model import Config

__all__ = ["Check", "notification_checks", "run_checks"]


def run_checks(
    config_file: str | None,
    *,
    database_url: str | None,
    environ: Mapping[str, str],
    cwd: str,
    user: str | None,
    postfix_dir: str | None,
) -> list[Check]:
    """Every check, in the order a message meets them; later checks are skipped when they cannot run."""
    from ..config.load import find_config_file, load_config

    found = find_config_file(config_file, dict(environ))  # absolute: else the pipe user's probe, run in /, reads
    path = None if found is None else str(Path(cwd, found))  # another file than the one checked here
    try:
        config = load_config(path, database_url=database_url, environ=dict(environ))
    except DeliveryError as exc:
        return [Check("configuration", False, exc.reason, "correct the file; until then every delivery exits 75")]
    where = config.source or "no configuration file (built-in defaults)"
    checks = [Check("configuration", True, f"{where} is valid")]
    checks.append(_database_url_check(config))
    database = _database_checks(config)
    checks += database
    checks.append(_pipe_user_check(config, user))
    checks.append(logging_check(config, user))
    checks += privacy_checks(config, user)
    checks += notification_checks(config, user)
    checks += service_checks(config)
    if postfix_dir:
        checks += postfix_checks(Path(postfix_dir), config)
    if all(c.ok for c in database):
        checks.append(_quarantine_check(config))
    return checks


def notification_checks(config: Config, user: str | None = None) -> list[Check]:
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
        fix = f"the pipe user must read it and nobody else: chown {user or 'email2ticket'}, chmod 600"
        if not settings.key_path().exists():
            fix = _access_fix(user or "email2ticket", config, str(settings.key_path()), "key")
        checks.append(Check("notification key", False, exc.reason, fix))
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
    from ..store.quarantine import QuarantineStore

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
    paths = _paths_to_check(config)
    argv = [sys.executable, "-c", _ACCESS_PROBE, json.dumps(paths)]
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
    results = json.loads(proc.stdout)
    denied = [f"{label} ({path})" for label, path, ok in results if not ok]
    if denied:
        modes = [mode for _, _, mode in paths]
        pairs = zip(results, modes, strict=True)
        fixes = [_access_fix(who, config, path, mode) for (_, path, ok), mode in pairs if not ok]
        return Check(name, False, f"{who} cannot " + "; cannot ".join(denied), "; ".join(dict.fromkeys(fixes)))
    return Check(name, True, f"{who} can run {sys.executable}, read the configuration and write where it must")


def _access_fix(who: str, config: Config, path: str, mode: str) -> str:
    """What gives the pipe user that access: chown/chmod only helps a file or directory that exists."""
    if mode == "key" and not os.path.exists(path):
        admin = Path(sys.executable).parent / "email2ticket"
        return (
            f"set [notifications] key_file to a file in a directory {who} owns (postfix/setup.sh: "
            f"/var/lib/email2ticket/notification-keys), then run `email2ticket init` as {who}: "
            f"runuser -u {who} -- {admin} --config {config.source or '/etc/email2ticket/config.toml'} init"
        )
    directory = path if mode == "dir" else os.path.dirname(path)
    if not os.path.isdir(directory):
        return f"create the directory for {who}: install -d -o {who} -g {who} -m 0750 {directory}"
    return f"give {who} access to {path} (chown/chmod)"


def _probe_env(entry: pwd.struct_passwd) -> dict[str, str]:
    # The package this very process runs (an installed site-packages, or a checkout's lib/ that the
    # bin/ shims put on sys.path): the pipe user must be able to read that copy. One level up per dot.
    package_root = str(Path(__file__).resolve().parents[__name__.count(".")])
    return {"PATH": os.environ.get("PATH", os.defpath), "HOME": entry.pw_dir, "PYTHONPATH": package_root}


def _install_fix() -> str:
    return (
        "install into a virtual environment built from the system Python under a world-readable directory "
        "such as /opt/email2ticket (not an editable install, not under a 0700 home, not a pyenv shim)"
    )
