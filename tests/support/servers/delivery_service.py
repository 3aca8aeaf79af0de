"""A real `email2ticket serve` process for the tests (and for bench/delivery.py), plus an LMTP client.

``ServiceProcess`` starts bin/email2ticket ... serve with its sockets in a short directory under /tmp
(a Unix socket path may not exceed 107 bytes, which pytest's tmp_path easily does), waits until both
sockets accept, and stops it with SIGTERM (graceful) or SIGKILL (a crash). It runs in its own process
group, so killing it also kills pre-forked workers.

This module imports nothing from pytest, so a benchmark can import it with
``sys.path.insert(0, "<repo>/tests")``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from support.executables import ADMIN, child_env


class ServiceProcess:
    """One `email2ticket serve` with a pipe socket and an LMTP Unix socket."""

    def __init__(
        self,
        database_url: str,
        *,
        config: Path | None = None,
        workers: int = 1,
        threads: int | None = None,
        lmtp_tcp: str | None = None,
        lmtp_socket: Path | None = None,
        home: Path | None = None,
        python_flags: Sequence[str] = (),
    ) -> None:
        self.database_url = database_url
        self.config = config
        self.workers = workers
        self.threads = threads
        self.lmtp_tcp = lmtp_tcp
        self.directory = Path(tempfile.mkdtemp(prefix="e2t-svc-", dir="/tmp"))
        self.home = home or self.directory
        self.socket = self.directory / "deliver.sock"
        self.lmtp_socket = lmtp_socket or self.directory / "lmtp.sock"  # where an MTA expects it, if given
        self.log = self.directory / "service.log"
        self.python_flags = tuple(python_flags)
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        argv = [sys.executable, *self.python_flags, str(ADMIN)]
        if self.config is not None:
            argv += ["--config", str(self.config)]
        argv += ["--database-url", self.database_url, "serve", "--socket", str(self.socket)]
        argv += ["--lmtp", self.lmtp_tcp or f"unix:{self.lmtp_socket}", "--workers", str(self.workers)]
        if self.threads is not None:
            argv += ["--threads", str(self.threads)]
        return argv

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        if self.process is not None and self.process.poll() is None:
            # A second start would lose track of the first process, which then outlives the test.
            raise RuntimeError(f"email2ticket serve is already running (pid {self.process.pid})")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=child_env(self.home),
                cwd=self.directory,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"email2ticket serve exited with {self.process.returncode}:\n{self.log_text()}")
            if self._accepts(str(self.socket)) and (self.lmtp_tcp or self._accepts(str(self.lmtp_socket))):
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"email2ticket serve did not start within {timeout} s:\n{self.log_text()}")

    @staticmethod
    def _accepts(path: str) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
            except OSError:
                return False
        return True

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (graceful shutdown) and wait; returns the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL the service and its workers: a crash, as far as clients can tell."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def lmtp(self) -> LmtpClient:
        if self.lmtp_tcp:
            host, _, port = self.lmtp_tcp.rpartition(":")
            return LmtpClient.tcp(host, int(port))
        return LmtpClient.unix(str(self.lmtp_socket))


StartService = Callable[..., ServiceProcess]  # the start_service fixture (tests/conftest.py)


class LmtpClient:
    """A minimal LMTP client that reads one reply per recipient after DATA (smtplib reads one)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")
        greeting = self.reply()
        assert greeting[0] == 220, greeting
        code, _ = self.command("LHLO tests.example")
        assert code == 250

    @classmethod
    def unix(cls, path: str) -> LmtpClient:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        return cls(sock)

    @classmethod
    def tcp(cls, host: str, port: int) -> LmtpClient:
        return cls(socket.create_connection((host, port)))

    def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("LMTP server closed the connection")
            lines.append(line[4:].rstrip(b"\r\n").decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return int(line[:3]), "\n".join(lines)

    def command(self, line: str) -> tuple[int, str]:
        self.sock.sendall(line.encode("utf-8") + b"\r\n")
        return self.reply()

    def send(self, raw: bytes, mail_from: str, recipients: Sequence[str]) -> list[tuple[int, str]]:
        """One transaction; the replies to MAIL/RCPT if one failed, else one reply per recipient."""
        code, text = self.command(f"MAIL FROM:<{mail_from}>")
        if code != 250:
            return [(code, text)]
        accepted = []
        for recipient in recipients:
            reply = self.command(f"RCPT TO:<{recipient}>")
            if reply[0] != 250:
                return [reply]
            accepted.append(recipient)
        code, text = self.command("DATA")
        assert code == 354, (code, text)
        lines = raw.replace(b"\r\n", b"\n").split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        body = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
        self.sock.sendall(body + b".\r\n")
        return [self.reply() for _ in accepted]

    def close(self) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            self.command("QUIT")
        self.file.close()
        self.sock.close()

    def __enter__(self) -> LmtpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
