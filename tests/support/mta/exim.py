"""A private Exim: the installed exim4-daemon-light binary with its own configuration file, spool, logs and
pid file under /tmp, listening on 127.0.0.1:<free port> only.

The router and transport come verbatim from postfix/exim4.conf.snippet (only the paths and the user
name are replaced, each replacement asserted). Exim gives up root for a configuration passed with -C
unless the file is listed in /etc/exim4/trusted_configs, and without root it could not run the pipe
as the pipe user; so the instance adds its file there while it runs and removes it afterwards.
"""

from __future__ import annotations

import contextlib
import mailbox
import os
import pwd
import re
import signal
from email.message import Message
from pathlib import Path

from .instance import MtaInstance, end_daemon, replaced
from .system import PIPE_USER, REPO, Install, MtaUnavailable, chown, ensure_user, run, wait_for

EXIM = Path("/usr/sbin/exim4")
EXIM_USER = "Debian-exim"
TRUSTED_CONFIGS = Path("/etc/exim4/trusted_configs")
SNIPPET = "postfix/exim4.conf.snippet"

HELPDESK = "helpdesk@helpdesk.test"
CUSTOMERS = "customers.test"

_LINE = re.compile(
    r"^\S+ \S+ (?P<id>[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2,4}) (?P<what>=>|==|\*\*|Completed)(?P<rest>.*)$"
)


def snippet_parts() -> tuple[str, str]:
    """The router and the transport from postfix/exim4.conf.snippet."""
    text = (REPO / SNIPPET).read_text()
    routers_at = text.index("ROUTERS (order matters)")
    transports_at = text.index("TRANSPORTS")
    routers = text[text.index("\n", routers_at) : transports_at].rsplit("\n", 1)[0]
    transports = text[text.index("\n", transports_at) :]
    return routers, transports


class EximInstance(MtaInstance):
    name = "Exim"

    def __init__(self, base: Path, install: Install) -> None:
        if not os.access(EXIM, os.X_OK):
            raise MtaUnavailable(f"{EXIM} is missing (apt-get install exim4-daemon-light; scripts/test does)")
        try:
            pwd.getpwnam(EXIM_USER)
        except KeyError:
            raise MtaUnavailable(f"the {EXIM_USER} user is missing: is exim4 installed?") from None
        ensure_user(PIPE_USER)
        super().__init__(base, install)
        self.conf = base / "exim.conf"
        self.spool, self.logs, self.mail = base / "spool", base / "log", base / "mail"
        self.pid_file = base / "exim.pid"
        for path in (self.spool, self.logs, self.mail):
            path.mkdir(mode=0o755, exist_ok=True)
        chown(self.spool, EXIM_USER)
        chown(self.logs, EXIM_USER)
        chown(self.mail, PIPE_USER)
        self._write_config()

    def _write_config(self) -> None:
        routers, transports = snippet_parts()
        transports = replaced(
            transports,
            "/opt/email2ticket/bin/email2ticket-deliver --config /etc/email2ticket/config.toml",
            f"{self.install.deliver} --config {self.config_toml}",
            where=SNIPPET,
        )
        transports = replaced(transports, "user = email2ticket", f"user = {PIPE_USER}", where=SNIPPET)
        self.conf.write_text(
            f"""# private test instance (tests/support/mta/exim.py)
primary_hostname = mx.helpdesk.test
qualify_domain = helpdesk.test
domainlist local_domains = helpdesk.test
spool_directory = {self.spool}
log_file_path = {self.logs}/%slog
pid_file_path = {self.pid_file}
local_interfaces = 127.0.0.1
daemon_smtp_ports = {self.port}
# Exim queues (instead of delivering) every message after the 10th on one SMTP connection unless this is 0.
smtp_accept_queue_per_connection = 0
tls_advertise_hosts =
host_lookup =
rfc1413_hosts =
keep_environment =
never_users = root
acl_smtp_rcpt = acl_check_rcpt

begin acl
acl_check_rcpt:
  accept domains = +local_domains : {CUSTOMERS}
  deny message = relay not permitted

begin routers
# --- postfix/exim4.conf.snippet (router) ---
{routers}

customers:
  driver = accept
  domains = {CUSTOMERS}
  transport = customer_mailbox

begin transports
# --- postfix/exim4.conf.snippet (transport) ---
{transports}

customer_mailbox:
  driver = appendfile
  file = {self.mail}/bounces
  user = {PIPE_USER}
  return_path_add
  envelope_to_add

begin retry
*   *   F,2h,1m; G,16h,1h,1.5; F,4d,6h
"""
        )
        self.conf.chmod(0o644)

    def exim(self, *args: str, timeout: float = 300) -> str:
        return run([EXIM, "-C", self.conf, *args], timeout=timeout)

    def _trust(self, add: bool) -> None:
        lines = TRUSTED_CONFIGS.read_text().splitlines() if TRUSTED_CONFIGS.exists() else []
        lines = [line for line in lines if line.strip() != str(self.conf)]
        if add:
            lines.append(str(self.conf))
        if not lines:  # Debian's exim4 ships no such file: leave none behind
            TRUSTED_CONFIGS.unlink(missing_ok=True)
            return
        TRUSTED_CONFIGS.write_text("".join(f"{line}\n" for line in lines))
        TRUSTED_CONFIGS.chmod(0o644)

    def _start_daemon(self) -> None:
        self._trust(True)
        self.exim("-bd")  # the daemon forks away; no periodic queue runner (-q): the tests flush explicitly

    def _stop_daemon(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
            end_daemon(pid)

    def stop(self) -> None:
        super().stop()
        self._trust(False)

    def flush(self) -> None:
        """exim -qff: deliver everything queued now, deferred or frozen, and return when done."""
        self.exim("-qff")

    def queue_count(self) -> int:
        return int(self.exim("-bpc").strip() or 0)

    def delete_queue(self) -> None:
        ids = self.exim("-bpr").split()
        for qid in [word for word in ids if re.fullmatch(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2,4}", word)]:
            with contextlib.suppress(RuntimeError):
                self.exim("-Mrm", qid)

    def log(self) -> str:
        return self._read_log(self.logs / "mainlog")

    def events(self, qid: str) -> list[tuple[str, str]]:
        """(=> delivered | == deferred | ** failed | Completed, rest of line) for one message, in order."""
        out = []
        for line in self.log().splitlines():
            match = _LINE.match(line)
            if match and match["id"] == qid:
                out.append((match["what"], match["rest"].strip()))
        return out

    def wait_event(self, qid: str, what: str, timeout: float = 60) -> str:
        def probe() -> str | None:
            return next((rest or "-" for kind, rest in self.events(qid) if kind == what), None)

        try:
            return wait_for(f"{qid} {what}", probe, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- mainlog (tail) ---\n{self.log()[-4000:]}") from None

    def bounces(self) -> list[Message]:
        path = self.mail / "bounces"
        if not path.exists():
            return []
        box = mailbox.mbox(str(path), create=False)
        try:
            return [box.get_message(key) for key in box.iterkeys()]
        finally:
            box.close()
