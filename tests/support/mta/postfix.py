"""A private Postfix instance: unpacked from Debian's package (no system install: it conflicts with Exim),
its own config_directory, queue_directory and data_directory under /tmp, SMTP on 127.0.0.1:<free port>,
logging to a file (maillog_file through postlogd: no syslog needed).

Its master.cf, main.cf, transport table, procmailrc and .forward are built from the files in postfix/,
with only the paths and user names replaced (each replacement is asserted), so these tests check the
wiring we document. Bounces to the senders' domain (customers.test) go to a Maildir that the tests read.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import glob
import json
import os
import re
import shutil
import subprocess
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from .instance import MtaInstance, end_daemon, replaced
from .system import (
    PIPE_USER,
    POSTFIX_GROUP,
    POSTFIX_USER,
    REPO,
    Install,
    MtaUnavailable,
    chown,
    ensure_group,
    ensure_user,
    run,
    wait_for,
)

#: scripts/test puts the package here (apt-get download postfix); the tests fetch it themselves otherwise.
DEB_CACHE = Path("/var/cache/email2ticket-tests")
DEB_ENV = "E2T_POSTFIX_DEB"

HELPDESK = "helpdesk@helpdesk.test"
CUSTOMERS = "customers.test"
LOCAL_DOMAIN = "local.test"  # local(8) deliveries to the pipe user: procmail and .forward

_STATUS = re.compile(
    r"postfix/\w+\[\d+\]: (?P<qid>[0-9A-F]+): to=<(?P<rcpt>[^>]*)>.* status=(?P<status>\w+) \((?P<why>.*)\)$"
)


def find_deb() -> Path:
    """The postfix .deb: $E2T_POSTFIX_DEB, else the cache scripts/test fills, else apt-get download now."""
    if os.environ.get(DEB_ENV):
        return Path(os.environ[DEB_ENV])
    found = sorted(glob.glob(str(DEB_CACHE / "postfix_*.deb")))
    if found:
        return Path(found[-1])
    DEB_CACHE.mkdir(parents=True, exist_ok=True)
    try:
        run(["apt-get", "download", "postfix"], cwd=DEB_CACHE, timeout=300)
    except (RuntimeError, OSError) as exc:
        raise MtaUnavailable(f"cannot get the postfix package (apt-get download postfix): {exc}") from exc
    found = sorted(glob.glob(str(DEB_CACHE / "postfix_*.deb")))
    if not found:
        raise MtaUnavailable("apt-get download postfix produced no .deb")
    return Path(found[-1])


class PostfixDistribution:
    """Postfix's files from its package, unpacked with dpkg -x (binaries, daemons, shared libraries)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sbin = root / "usr" / "sbin"
        self.daemons = root / "usr" / "lib" / "postfix" / "sbin"
        self.libs = root / "usr" / "lib" / "postfix"

    @classmethod
    def unpack(cls, into: Path) -> PostfixDistribution:
        deb = find_deb()
        run(["dpkg-deb", "-x", deb, into], timeout=120)
        dist = cls(into)
        if not (dist.daemons / "master").exists():
            raise MtaUnavailable(f"{deb} has no master daemon")
        return dist

    def env(self) -> dict[str, str]:
        # The binaries look for their shared libraries in /usr/lib/postfix (RUNPATH): point them here.
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH": str(self.libs), "LANG": "C"}


class PostfixInstance(MtaInstance):
    """One Postfix, configured from postfix/*.snippet; start(), then submit mail to `port`."""

    name = "Postfix"

    def __init__(self, dist: PostfixDistribution, base: Path, install: Install) -> None:
        ensure_group(POSTFIX_GROUP)
        ensure_user(POSTFIX_USER)
        ensure_user(PIPE_USER)
        super().__init__(base, install)
        self.dist = dist
        self.etc, self.queue_dir, self.data = base / "etc", base / "queue", base / "data"
        self.maillog = base / "maillog"
        self.mail = base / "mail"  # virtual(8) Maildir for bounces to customers.test
        self.procmailrc = base / "procmailrc"
        self.forward_dir = base / "forward"
        for path in (self.etc, self.queue_dir, self.mail, self.forward_dir):
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.data.mkdir(mode=0o700, exist_ok=True)
        chown(self.data, POSTFIX_USER)
        chown(self.mail, PIPE_USER)
        self._write_config()

    # --- configuration, from postfix/ -----------------------------------------------------------

    def pipe_command(self) -> str:
        return f"{self.install.deliver} --config {self.config_toml}"

    def _write_config(self) -> None:
        postfix = REPO / "postfix"
        shutil.copy2(self.dist.root / "etc" / "postfix" / "postfix-files", self.etc / "postfix-files")
        shutil.copy2(self.dist.root / "usr" / "share" / "postfix" / "dynamicmaps.cf", self.etc / "dynamicmaps.cf")
        for sub in ("dynamicmaps.cf.d", "postfix-files.d"):
            (self.etc / sub).mkdir(exist_ok=True)
        main_snippet = replaced(
            (postfix / "main.cf.snippet").read_text(),
            "hash:/etc/postfix/transport",
            f"hash:{self.etc}/transport",
            where="postfix/main.cf.snippet",
        )
        (self.etc / "main.cf").write_text(self._main_cf() + "\n# --- postfix/main.cf.snippet ---\n" + main_snippet)
        master = (postfix / "master.cf.snippet").read_text()
        where = "postfix/master.cf.snippet"
        master = replaced(master, "user=email2ticket", f"user={PIPE_USER}", where=where)
        master = replaced(master, "/opt/email2ticket/bin/email2ticket-deliver", str(self.install.deliver), where=where)
        master = replaced(master, "/etc/email2ticket/config.toml", str(self.config_toml), where=where)
        (self.etc / "master.cf").write_text(self._master_cf() + "\n# --- postfix/master.cf.snippet ---\n" + master)
        transport = (postfix / "transport.example").read_text()
        transport = replaced(transport, "helpdesk@example.com", HELPDESK, where="postfix/transport.example")
        (self.etc / "transport").write_text(transport)
        run([self.dist.sbin / "postmap", "-c", self.etc, self.etc / "transport"], env=self.dist.env())
        procmailrc = replaced(
            (postfix / "procmailrc.example").read_text(),
            "/opt/email2ticket/bin/email2ticket-deliver --config /etc/email2ticket/config.toml",
            self.pipe_command(),
            where="postfix/procmailrc.example",
        )
        self.procmailrc.write_text(procmailrc)
        forward = replaced(
            (postfix / "dot-forward.example").read_text(),
            "/opt/email2ticket/bin/email2ticket-deliver --config /etc/email2ticket/config.toml",
            self.pipe_command(),
            where="postfix/dot-forward.example",
        )
        # local(8) runs a .forward only when the file belongs to the recipient.
        target = self.forward_dir / "forward+fwd"
        target.write_text(forward)
        chown(target, PIPE_USER)

    def _main_cf(self) -> str:
        d = self.dist
        return f"""# private test instance (tests/support/mta/postfix.py)
compatibility_level = 3.6
config_directory = {self.etc}
meta_directory = {self.etc}
queue_directory = {self.queue_dir}
data_directory = {self.data}
daemon_directory = {d.daemons}
command_directory = {d.sbin}
shlib_directory = {d.libs}
sendmail_path = {d.sbin}/sendmail
newaliases_path = {d.root}/usr/bin/newaliases
mailq_path = {d.root}/usr/bin/mailq
manpage_directory = {d.root}/usr/share/man
mail_owner = {POSTFIX_USER}
setgid_group = {POSTFIX_GROUP}
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME
  LD_LIBRARY_PATH={d.libs}
maillog_file = {self.maillog}
maillog_file_prefixes = /tmp
myhostname = mx.helpdesk.test
mydomain = helpdesk.test
myorigin = $myhostname
# The help-desk domain is local: recipient validation as postfix/README.md step 4 describes.
mydestination = helpdesk.test, {LOCAL_DOMAIN}
local_recipient_maps = proxy:unix:passwd.byname $alias_maps hash:{self.etc}/transport
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains =
smtp_dns_support_level = disabled
default_transport = error:this test instance sends nothing out
biff = no
# Bounces to the customers' domain land in one Maildir the tests read.
virtual_mailbox_domains = {CUSTOMERS}
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = static:bounces/
virtual_uid_maps = static:{os.stat(self.mail).st_uid}
virtual_gid_maps = static:{os.stat(self.mail).st_gid}
virtual_minimum_uid = 1
virtual_mailbox_limit = 0
# local(8) for the pipe user: procmail (postfix/procmailrc.example) and a .forward (dot-forward.example).
recipient_delimiter = +
forward_path = {self.forward_dir}/forward${{recipient_delimiter}}${{extension}}
mailbox_command = /usr/bin/procmail -p -a "$EXTENSION" {self.procmailrc}
"""

    def _master_cf(self) -> str:
        return f"""# private test instance (tests/support/mta/postfix.py): nothing chrooted, SMTP on loopback only
127.0.0.1:{self.port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

    # --- lifecycle ------------------------------------------------------------------------------

    def postfix(self, *args: str, timeout: float = 120) -> str:
        return run([self.dist.sbin / "postfix", "-c", self.etc, *args], env=self.dist.env(), timeout=timeout)

    def _start_daemon(self) -> None:
        self.postfix("start")

    def master_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        return None

    def _stop_daemon(self) -> None:
        pid = self.master_pid()
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.postfix("stop", timeout=60)
        if pid is not None:
            end_daemon(pid, group=True)

    def reload(self) -> None:
        self.postfix("reload")

    def flush(self) -> None:
        """postqueue -f: deliver the deferred mail now (and forget that the transport looked dead)."""
        run([self.dist.sbin / "postqueue", "-c", self.etc, "-f"], env=self.dist.env())

    def delete_queue(self) -> None:
        run([self.dist.sbin / "postsuper", "-c", self.etc, "-d", "ALL"], env=self.dist.env())

    # --- what happened --------------------------------------------------------------------------

    def queue(self) -> list[dict[str, Any]]:
        """postqueue -j: one dict per queued message (queue_name, queue_id, recipients with delay_reason)."""
        out = run([self.dist.sbin / "postqueue", "-c", self.etc, "-j"], env=self.dist.env())
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def log(self) -> str:
        return self._read_log(self.maillog)

    def statuses(self) -> dict[str, list[tuple[str, str]]]:
        """queue id -> [(status, reason)] for every delivery attempt logged so far."""
        found: dict[str, list[tuple[str, str]]] = {}
        for line in self.log().splitlines():
            match = _STATUS.search(line)
            if match:
                found.setdefault(match["qid"], []).append((match["status"], match["why"]))
        return found

    def wait_status(self, qid: str, wanted: str, timeout: float = 60) -> str:
        """Wait until the last logged attempt for `qid` has status `wanted`; return its reason text."""

        def probe() -> str | None:
            attempts = self.statuses().get(qid, [])
            return attempts[-1][1] or "-" if attempts and attempts[-1][0] == wanted else None

        try:
            return wait_for(f"{qid} status={wanted}", probe, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- maillog (tail) ---\n{self.log()[-4000:]}") from None

    def wait_queue_empty(self, timeout: float = 120) -> None:
        try:
            wait_for("the Postfix queue to empty", lambda: not self.queue(), timeout=timeout, interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {self.queue()[:3]}\n--- maillog (tail) ---\n{self.log()[-4000:]}") from None

    def bounces(self) -> list[EmailMessage]:
        """Bounce messages delivered to the customers' Maildir, oldest first."""
        found = sorted((self.mail / "bounces" / "new").glob("*"), key=lambda p: p.stat().st_mtime)
        return [
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for path in found
        ]
