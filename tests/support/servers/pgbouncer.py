"""A throw-away PgBouncer in front of a test PostgreSQL (tests/support/servers/pgserver.py), for the tests
and for bench/scale_out.py.

``PgBouncer`` writes a private configuration (directory 0700, files 0600) and runs Debian's ``pgbouncer``
in the foreground: transaction pooling (``pool_mode = transaction``), listening on 127.0.0.1 at a free port
and on a Unix socket in its directory, trust authentication as the test server has (the user must still be
in ``auth_file``, which names the superuser alone), every database name passed through to the server.

PgBouncer refuses to run as root, so as root it runs as the tests' unprivileged user (``e2t-test``, the one
PostgreSQL runs as) and its directory belongs to that user.

Usage::

    with PgBouncer(server, pool_size=2) as bouncer:   # start; stop + delete on exit
        url = bouncer.url_for(db)                     # postgresql+psycopg://postgres@127.0.0.1:PORT/db
        bouncer.show("POOLS")                         # the admin console's rows, as dicts

``settings`` adds to (or overrides) the [pgbouncer] section: the test that shows what breaks without
email2ticket's ``pool_mode=transaction`` option runs one with ``ignore_startup_parameters = options`` (what many
installations are told to set, so that the connection gets through) and ``server_round_robin = 1``, where
psycopg's prepared statements then fail.

This module imports nothing from pytest, so a benchmark can import it with ``sys.path.insert(0, "<repo>/tests")``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg

from .pgserver import TEST_OS_USER, PgServer, _ensure_os_user, _find_system_tool, _free_port

PGBOUNCER = "pgbouncer"


class PgBouncerError(RuntimeError):
    """PgBouncer is missing, or did not start."""


def find_pgbouncer() -> str | None:
    """The pgbouncer executable (Debian installs it in /usr/sbin, often not on a user's PATH), or None."""
    return _find_system_tool(PGBOUNCER)


class PgBouncer:
    """One PgBouncer process in transaction pooling mode in front of ``server``."""

    host = "127.0.0.1"

    def __init__(
        self,
        server: PgServer,
        *,
        pool_size: int = 2,
        max_client_conn: int = 400,
        settings: Mapping[str, str | int] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        executable = find_pgbouncer()
        if executable is None:
            raise PgBouncerError("pgbouncer not found on PATH or in /usr/sbin: install Debian's 'pgbouncer' package")
        self.executable = executable
        self.server = server
        self.user = server.user
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.settings = dict(settings or {})
        self.start_timeout = start_timeout
        self.base_dir = Path(tempfile.mkdtemp(prefix="e2t-bouncer-", dir="/tmp"))  # 0700 already
        self.config_file = self.base_dir / "pgbouncer.ini"
        self.auth_file = self.base_dir / "userlist.txt"
        self.log_file = self.base_dir / "pgbouncer.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._os_user = _ensure_os_user(TEST_OS_USER) if os.geteuid() == 0 else None
        atexit.register(self.close)

    # -- configuration --------------------------------------------------------------------------

    def config_text(self) -> str:
        """The pgbouncer.ini this instance runs with (the README's sample is the same, less the test paths)."""
        settings: dict[str, str | int] = {
            "listen_addr": self.host,
            "listen_port": self.port,
            "unix_socket_dir": str(self.base_dir),
            "unix_socket_mode": "0700",
            "auth_type": "trust",
            "auth_file": str(self.auth_file),
            "admin_users": self.user,
            "pool_mode": "transaction",
            "default_pool_size": self.pool_size,
            "min_pool_size": 0,
            "reserve_pool_size": 0,
            "max_client_conn": self.max_client_conn,
            "log_connections": 0,
            "log_disconnections": 0,
            **self.settings,
        }
        lines = "".join(f"{name} = {value}\n" for name, value in settings.items())
        return f"""\
;; email2ticket test PgBouncer (tests/support/servers/pgbouncer.py)
[databases]
* = host={self.server.host} port={self.server.port}

[pgbouncer]
{lines}"""

    def _write_private(self, path: Path, text: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        if self._os_user is not None:
            os.chown(path, self._os_user.pw_uid, self._os_user.pw_gid)

    def _write_config(self) -> None:
        os.chmod(self.base_dir, 0o700)
        if self._os_user is not None:
            os.chown(self.base_dir, self._os_user.pw_uid, self._os_user.pw_gid)
        self._write_private(self.auth_file, f'"{self.user}" ""\n')
        self._write_private(self.config_file, self.config_text())

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> PgBouncer:
        """Start PgBouncer and wait until it accepts connections (a new free port if the first was taken)."""
        if self.process is not None and self.process.poll() is None:
            return self
        for attempt in range(5):
            self.port = _free_port()
            self._write_config()
            try:
                self._spawn()
                return self
            except PgBouncerError:
                if attempt == 4 or "address already in use" not in self.log_text().lower():
                    raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        kwargs: dict[str, Any] = {}
        if self._os_user is not None:  # pgbouncer refuses root; subprocess drops privileges before exec
            kwargs = {"user": self._os_user.pw_uid, "group": self._os_user.pw_gid, "extra_groups": []}
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [self.executable, str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.base_dir,
                env={"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C", "HOME": str(self.base_dir)},
                start_new_session=True,
                **kwargs,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PgBouncerError(f"pgbouncer exited with {self.process.returncode}:\n{self.log_text()}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                if probe.connect_ex((self.host, self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise PgBouncerError(f"pgbouncer did not listen within {self.start_timeout} s:\n{self.log_text()}")

    def stop(self) -> None:
        """SIGTERM (PgBouncer 1.18: immediate shutdown) and wait."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(15)

    def close(self) -> None:
        """Stop PgBouncer and delete its directory. Idempotent."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            with contextlib.suppress(Exception):
                atexit.unregister(self.close)

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    # -- connecting -----------------------------------------------------------------------------

    def url_for(self, database: str, *, query: str = "pool_mode=transaction") -> str:
        """SQLAlchemy URL of ``database`` through PgBouncer over TCP; ``query`` is email2ticket's option for a
        transaction-pooling pooler (pass "" for a URL without it)."""
        url = f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"
        return f"{url}?{query}" if query else url

    def unix_url_for(self, database: str, *, query: str = "pool_mode=transaction") -> str:
        """The same through PgBouncer's Unix socket (``.s.PGSQL.<port>`` in its directory)."""
        url = f"postgresql+psycopg://{self.user}@/{database}?host={self.base_dir}&port={self.port}"
        return f"{url}&{query}" if query else url

    def show(self, what: str) -> list[dict[str, Any]]:
        """``SHOW <what>`` on the admin console (POOLS, STATS, SERVERS, CLIENTS), one dict per row.

        The console speaks the simple query protocol only, so the statement goes through libpq's PQexec."""
        with psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="pgbouncer", autocommit=True, connect_timeout=10
        ) as conn:
            result = conn.pgconn.exec_(f"SHOW {what}".encode())
            if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
                raise PgBouncerError(f"SHOW {what}: {result.error_message.decode(errors='replace')}")
            names = [(result.fname(column) or b"").decode() for column in range(result.nfields)]
            rows = []
            for row in range(result.ntuples):
                values = [result.get_value(row, column) for column in range(result.nfields)]
                rows.append({n: (v.decode() if v is not None else None) for n, v in zip(names, values, strict=True)})
            return rows

    def pool(self, database: str) -> dict[str, Any]:
        """The admin console's POOLS row of ``database`` (empty when no client used it yet)."""
        return next((row for row in self.show("POOLS") if row["database"] == database), {})

    def stats(self, database: str) -> dict[str, Any]:
        """The admin console's STATS row of ``database``: total_xact_count, total_query_count, ..."""
        return next((row for row in self.show("STATS") if row["database"] == database), {})
