"""What a private mail server is, whichever its make (postfix.py, exim.py): a directory of its own under /tmp
that goes away with it, SMTP on 127.0.0.1:<free port>, a daemon started and stopped, a queue to empty, and the
email2ticket configuration file its pipe reads, with a state directory for the pipe user.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import time
from pathlib import Path

from .system import PIPE_USER, Install, chown, free_port, wait_for


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_daemon(pid: int, *, group: bool = False, timeout: float = 20) -> None:
    """Wait up to `timeout` s for a daemon that was told to stop; then SIGKILL it (with its process group)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    if alive(pid):
        with contextlib.suppress(OSError):
            if group:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)


def replaced(text: str, old: str, new: str, *, where: str) -> str:
    """`text` with `old` replaced by `new`; `old` must be there (the files we document changed otherwise)."""
    assert old in text, f"{where} no longer contains {old!r}: update the MTA tests' copy of it"
    return text.replace(old, new)


class MtaInstance:
    """The common part of a private MTA; a make supplies `_start_daemon`, `_stop_daemon` and `delete_queue`."""

    name = "the MTA"

    def __init__(self, base: Path, install: Install) -> None:
        self.base, self.install = base, install
        self.state = base / "state"  # the pipe user's: SQLite database, delivery log
        self.config_toml = base / "email2ticket.toml"
        self.port = free_port()
        self.running = False
        atexit.register(self.close)  # even if the test session itself dies
        self.state.mkdir(mode=0o750, parents=True, exist_ok=True)  # as setup.sh makes it: doctor fails a 0755 one
        chown(self.state, PIPE_USER)

    def _start_daemon(self) -> None:
        raise NotImplementedError

    def _stop_daemon(self) -> None:
        raise NotImplementedError

    def delete_queue(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._start_daemon()
        self.running = True
        wait_for(f"{self.name} to accept SMTP connections", self._accepting, timeout=60)

    def _accepting(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        """Stop the daemon and its children; never leaves one behind."""
        if self.running:
            self._stop_daemon()
            self.running = False

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
        atexit.unregister(self.close)

    @staticmethod
    def _read_log(path: Path) -> str:
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
