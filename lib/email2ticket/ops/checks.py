"""What every `email2ticket doctor` check returns, and the checks that need nothing but the configuration.

A check is OK, FAIL (the installation cannot take mail as documented: the exit status is 1) or WARN (mail
flows, but something the admin relies on does not work, such as the delivery log): each with a fix.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgspec import Struct

if TYPE_CHECKING:
    from ..config.model import Config

SYSLOG_SOCKET = "/dev/log"


class Check(Struct, frozen=True):
    """One check's verdict; `fix` says what to do when it failed or warned."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False  # ok, but worth the admin's attention: printed as WARN, does not fail doctor

    def lines(self) -> list[str]:
        status = "FAIL" if not self.ok else "WARN" if self.warning else "OK  "
        out = [f"{status}  {self.name}: {self.detail}"]
        if (not self.ok or self.warning) and self.fix:
            out.append(f"      fix: {self.fix}")
        return out

    def as_json(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "warning": self.warning, "detail": self.detail, "fix": self.fix}


def has_syslog(socket_path: str = SYSLOG_SOCKET) -> bool:
    """Is a syslog daemon listening (rsyslog, systemd-journald)? Debian 12 may have neither."""
    try:
        return stat.S_ISSOCK(os.stat(socket_path).st_mode)
    except OSError:
        return False


def logging_check(config: Config, user: str | None = None, *, syslog: bool | None = None) -> Check:
    """Where the one line per delivery goes; a WARN when it goes nowhere (no syslog and no file, or no directory)."""
    settings = config.logging
    owner = f"{user or 'email2ticket'}"
    owner = f"-o {owner} -g {owner}"
    syslog = has_syslog() if syslog is None else syslog
    name = "delivery log"
    if settings.target == "none":
        return Check(name, True, "off (logging.target = none): deliveries are not logged")
    target = settings.target
    if target == "auto":
        target = "syslog" if syslog else ("file" if settings.file else "none")
    file_fix = (
        'set [logging] file = "/var/log/email2ticket/deliver.log" and create its directory for the pipe user: '
        f"install -d {owner} -m 0750 /var/log/email2ticket (postfix/setup.sh does both)"
    )
    if target == "syslog":
        if syslog:
            return Check(name, True, f"syslog ({SYSLOG_SOCKET}), facility {settings.facility}")
        return Check(
            name,
            True,
            f"logging.target = syslog, but nothing listens on {SYSLOG_SOCKET}: deliveries are logged nowhere",
            f'install rsyslog, or set [logging] target = "file" and {file_fix.removeprefix("set [logging] ")}',
            warning=True,
        )
    if target == "none":  # auto, without syslog and without a file
        return Check(
            name,
            True,
            f"logging.target = auto, but there is no syslog ({SYSLOG_SOCKET}) and no logging.file: "
            "deliveries are logged nowhere",
            file_fix,
            warning=True,
        )
    assert settings.file is not None  # config/load.py refuses target = "file" without a file
    directory = Path(settings.file).parent
    if not directory.is_dir():
        return Check(
            name,
            True,
            f"{settings.file}: its directory {directory} does not exist, so every delivery fails to log "
            "(could not write the delivery log (file): No such file or directory)",
            f"install -d {owner} -m 0750 {directory} (the pipe user must write there)",
            warning=True,
        )
    via = " (no syslog here)" if settings.target == "auto" else ""
    return Check(name, True, f"file {settings.file}{via}")
