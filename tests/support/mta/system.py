"""What every MTA test needs from the operating system: users, a world-readable install, ports, SMTP.

The MTAs run the pipe command as an unprivileged user, exactly as in production, so email2ticket must
be installed where that user can execute it: a virtual environment built from /usr/bin/python3 (the
system interpreter; a pyenv shim or a checkout under a 0700 home is unusable for that user) in a
world-readable directory under /tmp, with a non-editable copy of the package.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[3]
SYSTEM_PYTHON = Path("/usr/bin/python3")

#: The unprivileged user the MTAs run email2ticket-deliver as.
PIPE_USER = "e2t-pipe"
#: Postfix's mail_owner and setgid group for the private instance (never used for anything else).
POSTFIX_USER = "e2t-postfix"
POSTFIX_GROUP = "e2t-postdrop"

T = TypeVar("T")


class MtaUnavailable(RuntimeError):
    """A prerequisite is missing (not root, no package); the tests skip, or fail under CI."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise MtaUnavailable("the MTA tests run mail servers that switch users: run them as root (CI does)")


def run(argv: Sequence[str | os.PathLike[str]], *, timeout: float = 120, **kwargs: object) -> str:
    """Run a command; raise with its output when it fails; return stdout."""
    proc = subprocess.run(
        [os.fspath(a) for a in argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def _tool(name: str) -> str:
    for directory in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if os.access(f"{directory}/{name}", os.X_OK):
            return f"{directory}/{name}"
    raise MtaUnavailable(f"{name} not found")


def ensure_group(name: str) -> int:
    import grp

    with contextlib.suppress(KeyError):
        return grp.getgrnam(name).gr_gid
    subprocess.run([_tool("groupadd"), "--system", name], capture_output=True, check=False)
    return grp.getgrnam(name).gr_gid


USERADD_OPTIONS = (
    "--system",
    "--user-group",
    "--no-create-home",
    "--home-dir",
    "/nonexistent",
    "--shell",
    "/usr/sbin/nologin",
)


def ensure_user(name: str) -> pwd.struct_passwd:
    """A system user with its own group, no home, no login shell (created once, kept)."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    for _attempt in range(5):
        made = subprocess.run([_tool("useradd"), *USERADD_OPTIONS, name], capture_output=True, check=False)
        if made.returncode != 10:  # 10: another process (a second test worker) held /etc/passwd's lock
            break
        time.sleep(0.5)
    return pwd.getpwnam(name)  # KeyError if even a concurrent creation failed


def world_readable_dir(prefix: str) -> Path:
    """A new directory directly under /tmp (every ancestor traversable by every user), mode 0755."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def chown(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.1) -> T:
    """Poll until probe() returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# --- the install the MTAs run -----------------------------------------------------------------------


@dataclass(frozen=True)
class Install:
    """A non-editable email2ticket in a virtual environment of the system Python."""

    root: Path

    @property
    def deliver(self) -> Path:
        return self.root / "bin" / "email2ticket-deliver"

    @property
    def admin(self) -> Path:
        return self.root / "bin" / "email2ticket"


def build_install(parent: Path) -> Install:
    """`/usr/bin/python3 -m venv` + `pip install <copy of the checkout>` (not -e) under `parent`."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        raise MtaUnavailable(f"{SYSTEM_PYTHON} is missing")
    source = parent / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("lib", "bin"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    root = parent / "venv"
    run([SYSTEM_PYTHON, "-m", "venv", root], timeout=300)
    pip = [root / "bin" / "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check"]
    for attempt in range(2):  # one retry: the package index may hiccup
        try:
            run([*pip, source], timeout=600)
            break
        except RuntimeError:
            if attempt:
                raise
            time.sleep(5)
    shutil.rmtree(source, ignore_errors=True)
    for path in [parent, *parent.rglob("*")]:  # readable (and dirs traversable) by the pipe user
        mode = path.lstat().st_mode
        if not path.is_symlink():
            path.chmod(mode | 0o444 | (0o111 if path.is_dir() else 0))
    return Install(root)


# --- SMTP -------------------------------------------------------------------------------------------

_QUEUED = re.compile(rb"queued as ([0-9A-Za-z]+)|id=([0-9A-Za-z-]+)")


def submit(port: int, sender: str, recipients: Sequence[str], raw: bytes) -> str:
    """Send one message over SMTP to 127.0.0.1:port; return the MTA's queue id from the DATA reply."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        return submit_on(smtp, sender, recipients, raw)


def submit_on(smtp: smtplib.SMTP, sender: str, recipients: Sequence[str], raw: bytes) -> str:
    """One transaction on an open connection (MAIL, RCPT..., DATA); returns the queue id."""
    smtp.ehlo_or_helo_if_needed()
    code, reply = smtp.mail(sender)
    assert code == 250, (code, reply)
    for rcpt in recipients:
        code, reply = smtp.rcpt(rcpt)
        assert code in (250, 251), (rcpt, code, reply)
    code, reply = smtp.data(raw)
    assert code == 250, (code, reply)
    found = _QUEUED.search(reply)
    assert found, reply
    return (found.group(1) or found.group(2)).decode()


@contextlib.contextmanager
def smtp_session(port: int) -> Iterator[smtplib.SMTP]:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        smtp.ehlo("client.test")
        yield smtp


def as_user(user: str) -> dict[str, object]:
    """subprocess keyword arguments that run a child as `user` (with its own group only)."""
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
