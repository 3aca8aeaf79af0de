"""postfix/setup.sh, the admin's guide (postfix/README.md) as a script, run as the guide says on a Postfix as
Debian 12 leaves it, with only the paths and names an admin would change set in its environment.

The Postfix is the tests' private one (tests/support/mta/postfix.py) with Debian's defaults and nothing of
email2ticket's (mailbox_size_limit = 0, no syslog: no maillog_file when there is no /dev/log, a help-desk
domain in mydestination without recipient validation for it); PostgreSQL is the tests' server, with its
administrator's account standing in for Debian's `postgres`. Then `email2ticket doctor` must report every
check OK, and each kind of delivery must do what the guide says it does: a new ticket, a reply that becomes
a comment, a duplicate, a bounce of an oversized message, a deferral while the database is down and one
delivery after it is back; and with the resident service (WIRING=lmtp) started as the guide starts it by
hand, an LMTP delivery whose log line carries Postfix's queue id.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from support.mta.mail import HELPDESK, bounce_text, message
from support.mta.postfix import PostfixDistribution, PostfixInstance
from support.mta.system import PIPE_USER, POSTFIX_USER, REPO, Install, submit, wait_for, world_readable_dir
from support.servers.pgserver import TEST_OS_USER

if TYPE_CHECKING:
    from support.servers.pgserver import PgServer

pytest_plugins = ["support.mta.fixtures"]
pytestmark = pytest.mark.mta

SCRIPT = REPO / "postfix" / "setup.sh"
SOURCE_FILES = ("pyproject.toml", "README.md", "lib", "bin")


def _without(text: str, *names: str) -> str:
    """main.cf text without the given parameters (and their continuation lines)."""
    out: list[str] = []
    dropping = False
    for line in text.splitlines():
        if line[:1].isspace() and dropping:
            continue
        dropping = any(re.match(rf"{name}\s*=", line) for name in names)
        if not dropping:
            out.append(line)
    return "\n".join(out) + "\n"


class DebianPostfix(PostfixInstance):
    """The private Postfix with a configuration as Debian's package leaves it, and nothing of email2ticket's."""

    def _write_config(self) -> None:
        shutil.copy2(self.dist.root / "etc" / "postfix" / "postfix-files", self.etc / "postfix-files")
        shutil.copy2(self.dist.root / "usr" / "share" / "postfix" / "dynamicmaps.cf", self.etc / "dynamicmaps.cf")
        for sub in ("dynamicmaps.cf.d", "postfix-files.d"):
            (self.etc / sub).mkdir(exist_ok=True)
        # No recipient validation for the help desk yet, no local(8) extras; Debian's unlimited mailboxes.
        dropped = ["local_recipient_maps", "forward_path", "mailbox_command", "recipient_delimiter"]
        if not _has_syslog():
            dropped.append("maillog_file")  # Debian 12 without rsyslog: setup.sh must set it
        main = _without(self._main_cf(), *dropped) + "mailbox_size_limit = 0\n"
        (self.etc / "main.cf").write_text(main)
        (self.etc / "master.cf").write_text(self._master_cf())

    def tool_env(self) -> dict[str, str]:
        """What root's shell has when it runs Postfix's commands on this instance (postconf, postmap, postfix)."""
        env = self.dist.env()
        env["PATH"] = f"{self.dist.sbin}:/usr/local/sbin:/usr/local/bin:{env['PATH']}"
        return {**env, "MAIL_CONFIG": str(self.etc), "HOME": "/root"}

    def postconf(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(self.dist.sbin / "postconf"), *args]
        return subprocess.run(argv, env=self.tool_env(), capture_output=True, text=True, timeout=60, check=True)


def _has_syslog() -> bool:
    from email2ticket.ops.checks import has_syslog

    return has_syslog()


@pytest.fixture(scope="module")
def venv_dir(mta_tmp: Path) -> Path:
    """Where setup.sh installs email2ticket (E2T_VENV), shared by this module's runs of the script."""
    return mta_tmp / "guide-venv"


@pytest.fixture(scope="module")
def source(mta_tmp: Path) -> Path:
    """A copy of the checkout for pip (E2T_SOURCE): building in place would write into the working tree."""
    target = mta_tmp / "guide-source"
    if not target.exists():
        target.mkdir()
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for name in SOURCE_FILES:
            if (REPO / name).is_dir():
                shutil.copytree(REPO / name, target / name, ignore=ignore)
            else:
                shutil.copy2(REPO / name, target / name)
    return target


@pytest.fixture
def debian_postfix(postfix_dist: PostfixDistribution, venv_dir: Path) -> Iterator[DebianPostfix]:
    instance = DebianPostfix(postfix_dist, world_readable_dir("e2t-guide-"), Install(venv_dir))
    try:
        instance.start()
        yield instance
    finally:
        instance.delete_queue()
        instance.close()


class Guide:
    """One run of postfix/setup.sh on `postfix`, and what an admin does afterwards."""

    def __init__(self, postfix: DebianPostfix, pg: PgServer, venv: Path, source: Path, wiring: str) -> None:
        self.postfix, self.venv, self.base = postfix, venv, postfix.base
        self.etc = self.base / "etc-email2ticket"
        self.config = self.etc / "config.toml"
        self.state, self.logs = self.base / "lib-email2ticket", self.base / "log-email2ticket"
        self.bin = self.base / "bin"
        self.systemd = self.base / "systemd"
        for path in (self.bin, self.systemd):
            path.mkdir()
        self.database = f"guide_{wiring}_{os.getpid()}"
        # Every variable at the top of setup.sh that is not a default an admin keeps, and libpq's own
        # variables for where the tests' server listens (Debian's cluster needs none of them).
        self.variables = {
            "HELPDESK_ADDRESS": HELPDESK,
            "WIRING": wiring,
            "E2T_USER": PIPE_USER,
            "E2T_VENV": str(venv),
            "E2T_ETC": str(self.etc),
            "E2T_STATE": str(self.state),
            "E2T_LOG": str(self.logs),
            "E2T_BIN_LINK_DIR": str(self.bin),
            "E2T_SOURCE": str(source),
            "DB_NAME": self.database,
            "DB_USER": "e2t_guide",
            "DB_PORT": str(pg.port),
            "PG_OS_USER": TEST_OS_USER,
            "PGHOST": str(pg.base_dir),
            "PGPORT": str(pg.port),
            "PGUSER": pg.user,
            "POSTFIX_DIR": str(postfix.etc),
            "POSTFIX_MAILLOG": str(postfix.maillog),
            "SYSTEMD_DIR": str(self.systemd),
        }

    def run(self, *, service_down: bool = False) -> subprocess.CompletedProcess[str]:
        """setup.sh as root; it ends with doctor, whose exit status it returns: 0, or 1 where only the service
        (which setup.sh leaves to systemd, and this container has none) does not answer yet."""
        env = {**self.postfix.tool_env(), **self.variables, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        proc = subprocess.run(
            ["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=900, check=False, cwd="/root"
        )
        output = f"setup.sh exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        failed = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
        if service_down:  # doctor's service socket check, then the Postfix wiring's: both find no service
            assert proc.returncode == 1 and len(failed) == 2, output
            assert failed[0].startswith("FAIL  service lmtp socket: ") and "does not exist" in failed[0], output
            assert "nothing answers on" in failed[1], output
        else:
            assert proc.returncode == 0 and not failed, output
        assert "WARN" not in proc.stdout and ": warning: " not in proc.stderr, output  # e.g. postconf: warning: ...
        return proc

    def admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`email2ticket ...` as the admin types it after setup.sh: the link on root's PATH, the config named."""
        argv = [str(self.bin / "email2ticket"), "--config", str(self.config), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd="/")
        assert proc.returncode == 0, f"email2ticket {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.admin(*args, "--json").stdout)

    def doctor(self) -> list[dict[str, Any]]:
        argv = ["doctor", "--user", PIPE_USER, "--postfix-config", str(self.postfix.etc), "--json"]
        checks: list[dict[str, Any]] = json.loads(
            subprocess.run(
                [str(self.bin / "email2ticket"), "--config", str(self.config), *argv],
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            ).stdout
        )
        return checks

    def set_setting(self, key: str, value: str) -> None:
        """Edit config.toml as the admin would: the existing key's line."""
        text = self.config.read_text()
        new, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert count == 1, key
        self.config.write_text(new)


def _assert_all_ok(checks: list[dict[str, Any]]) -> None:
    bad = [c for c in checks if not c["ok"] or c["warning"]]
    assert not bad, json.dumps(bad, indent=1)


def _bounce_for(postfix: PostfixInstance, message_id: str) -> str:
    def probe() -> str | None:
        return next((bounce_text(b) for b in postfix.bounces() if message_id in b.as_string()), None)

    return wait_for(f"the bounce of {message_id}", probe, timeout=60)


def test_the_guide_on_debian_defaults_then_each_kind_of_delivery(
    debian_postfix: DebianPostfix, pg_admin: PgServer, venv_dir: Path, source: Path
) -> None:
    postfix = debian_postfix
    guide = Guide(postfix, pg_admin, venv_dir, source, "pipe")
    guide.run()

    # main.cf got the snippet's settings with postconf -e: Debian's unlimited mailboxes kept, no parameter
    # defined twice (Postfix warns "overriding earlier entry" on every command then), recipients validated.
    shown = postfix.postconf("-n")
    assert shown.stderr == "", shown.stderr
    assert postfix.postconf("-h", "mailbox_size_limit").stdout.strip() == "0"
    assert postfix.postconf("-h", "message_size_limit").stdout.strip() == "52428800"
    assert f"hash:{postfix.etc}/transport" in postfix.postconf("-h", "local_recipient_maps").stdout
    # master.cf got master.cf.snippet's service, with this installation's paths and user.
    from email2ticket.ops.postfix import find_pipe_services

    (service,) = find_pipe_services(postfix.etc / "master.cf")
    snippet = (REPO / "postfix" / "master.cf.snippet").read_text()
    snippet = snippet.replace("/opt/email2ticket", str(venv_dir)).replace("user=email2ticket", f"user={PIPE_USER}")
    snippet = snippet.replace("/etc/email2ticket/config.toml", str(guide.config))
    (documented,) = find_pipe_services(_write(postfix.base / "snippet.cf", snippet))
    assert service == documented
    # The key lives in the state directory, the pipe user's own; the admin command is on root's PATH.
    key = guide.state / "notification-keys"
    assert (key.owner(), oct(key.stat().st_mode & 0o777)) == (PIPE_USER, "0o600")
    assert (guide.bin / "email2ticket").resolve() == (venv_dir / "bin" / "email2ticket").resolve()
    _assert_all_ok(guide.doctor())

    # The guide's own test message (end of section 1), to the help-desk address. The unpacked Postfix's own
    # sendmail cannot run here (its postdrop loses LD_LIBRARY_PATH): a stand-in hands the same bytes to SMTP.
    block = _guide_block("**Send a test message**").replace("helpdesk@example.com", HELPDESK)
    block = block.replace("/usr/sbin/sendmail", str(_sendmail_stand_in(postfix)))
    subprocess.run(["sh", "-c", block], env=postfix.tool_env(), check=True, timeout=60, capture_output=True)
    (test_ticket,) = wait_for("the test message's ticket", lambda: guide.json("tickets", "list"), timeout=60)
    assert test_ticket["subject"].startswith("email2ticket test ")
    assert "status=sent (delivered via email2ticket service)" in postfix.log()

    # A new ticket from a customer, over SMTP.
    first = message("alice@customers.test", "Printer on fire", "guide-1@customers.test")
    qid = submit(postfix.port, "alice@customers.test", [HELPDESK], first)
    assert postfix.wait_status(qid, "sent") == "delivered via email2ticket service"
    ticket = guide.json("tickets", "list")[-1]
    assert ticket["subject"] == "Printer on fire"
    assert f"queue_id={qid} " in (guide.logs / "deliver.log").read_text()  # the delivery log, for the pipe user
    assert f"{qid}: to=<{HELPDESK}>" in postfix.log()  # and Postfix's own (maillog_file without syslog)

    # A reply becomes a comment; the same message again is a duplicate.
    reply = message("alice@customers.test", f"RE: Printer on fire [Ticket #{ticket['id']}]", "guide-2@c", "Out now.\n")
    postfix.wait_status(submit(postfix.port, "alice@customers.test", [HELPDESK], reply), "sent")
    postfix.wait_status(submit(postfix.port, "alice@customers.test", [HELPDESK], first), "sent")
    assert [m["action"] for m in guide.json("messages", "list")] == ["create", "create", "update", "duplicate"]
    assert [c["body"] for c in guide.json("ticket", "show", str(ticket["id"]))["comments"]] == ["Out now."]

    # Over max_message_bytes: exit 65, and Postfix bounces it with our reason.
    guide.set_setting("max_message_bytes", "4000")
    big = message("carol@customers.test", "Huge log", "guide-big@c", ("x" * 70 + "\n") * 100)
    postfix.wait_status(submit(postfix.port, "carol@customers.test", [HELPDESK], big), "bounced")
    text = _bounce_for(postfix, "guide-big@c")
    assert "message larger than max_message_bytes (4000 bytes)" in text and "Status: 5.3.4" in text
    guide.set_setting("max_message_bytes", "52428800")

    # The database down: deferred (75), kept in the queue, then delivered once when it is back.
    pg_admin.stop()
    down = message("dave@customers.test", "VPN down", "guide-db@c")
    qid = submit(postfix.port, "dave@customers.test", [HELPDESK], down)
    assert "unavailable" in postfix.wait_status(qid, "deferred")
    pg_admin.start()
    postfix.flush()
    postfix.wait_status(qid, "sent")
    postfix.wait_queue_empty()
    assert [t["subject"] for t in guide.json("tickets", "list")][1:] == ["Printer on fire", "VPN down"]
    # (the oversized message never reached the database: refused before it was read whole)
    actions = [m["action"] for m in guide.json("messages", "list")]
    assert actions == ["create", "create", "update", "duplicate", "create"]

    # setup.sh again (after an upgrade, say): nothing changes that worked, and everything still checks out.
    guide.run()
    assert postfix.postconf("-n").stderr == ""
    assert len(guide.json("tickets", "list")) == 3
    _assert_all_ok(guide.doctor())


def _sendmail_stand_in(postfix: PostfixInstance) -> Path:
    """`sendmail -f SENDER RECIPIENT...` with the message on stdin, submitted to the instance over SMTP."""
    path = postfix.base / "sendmail"
    path.write_text(
        "#!/usr/bin/python3\nimport smtplib, sys\n"
        "args = sys.argv[1:]\nsender = args[args.index('-f') + 1]\n"
        "recipients = [a for a in args[args.index('-f') + 2 :] if not a.startswith('-')]\n"
        f"smtplib.SMTP('127.0.0.1', {postfix.port}).sendmail(sender, recipients, sys.stdin.buffer.read())\n"
    )
    path.chmod(0o755)
    return path


def _guide_block(after: str) -> str:
    """The first ```sh block of postfix/README.md after the text `after`: a command the admin types."""
    text = (REPO / "postfix" / "README.md").read_text()
    rest = text[text.index(after) :]
    return rest[rest.index("```sh\n") + 6 : rest.index("\n```", rest.index("```sh\n"))] + "\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _unit(path: Path) -> dict[str, list[str]]:
    """A systemd unit's settings, name -> values in order."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            name, _, value = line.partition("=")
            settings.setdefault(name, []).append(value)
    return settings


def test_the_guide_with_the_resident_service_over_lmtp(
    debian_postfix: DebianPostfix, pg_server: PgServer, venv_dir: Path, source: Path
) -> None:
    postfix = debian_postfix
    guide = Guide(postfix, pg_server, venv_dir, source, "lmtp")
    assert "setpriv --reuid=" in guide.run(service_down=True).stdout  # the command that starts it by hand

    unit = _unit(guide.systemd / "email2ticket.service")
    for uri in unit["Documentation"]:  # pip installs no documentation: setup.sh puts it where the unit points
        assert Path(uri.removeprefix("file://").replace("/opt/email2ticket", str(venv_dir))).is_file(), uri
    (user,), (group,), (extra,) = unit["User"], unit["Group"], unit["SupplementaryGroups"]
    assert (user, extra) == (PIPE_USER, _group_of(POSTFIX_USER))
    # Started by hand as postfix/README.md section 6 does it: setpriv gives the unit's supplementary group
    # (runuser would not), which the service needs to hand its LMTP socket to Postfix's group.
    for pre in unit["ExecStartPre"]:
        subprocess.run(pre.lstrip("+").split(), check=True, timeout=60)
    (command,) = unit["ExecStart"]
    setpriv = ["setpriv", f"--reuid={user}", f"--regid={group}", f"--groups={extra}", "--reset-env"]
    log = (guide.base / "service.log").open("wb")
    service = subprocess.Popen([*setpriv, *command.split()], stdout=log, stderr=log, start_new_session=True)
    try:
        lmtp = guide.config.read_text().split("\nlmtp = ")[1].split("\n")[0].strip('"').removeprefix("unix:")
        wait_for("the service's LMTP socket", lambda: Path(lmtp).is_socket() or service.poll() is not None, 60)
        assert service.poll() is None, (guide.base / "service.log").read_text()
        checks = guide.doctor()
        _assert_all_ok(checks)
        assert any(c["check"].startswith("postfix lmtp") for c in checks)

        raw = message("erin@customers.test", "Over LMTP", "guide-lmtp@c")
        qid = submit(postfix.port, "erin@customers.test", [HELPDESK], raw)
        assert postfix.wait_status(qid, "sent").startswith("250 2.0.0")
        (record,) = guide.json("messages", "list")
        assert (record["action"], record["queue_id"]) == ("create", qid)  # from Postfix's Received: line
        assert f"queue_id={qid} " in (guide.logs / "deliver.log").read_text()
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        service.wait(90)
        log.close()


def _group_of(user: str) -> str:
    import grp
    import pwd

    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
