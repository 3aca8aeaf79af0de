"""PostgreSQL servers with settings of their own, and a streaming-replication standby, for the failover tests.

``TunedServer`` is a PgServer (tests/support/servers/pgserver.py) with further postgresql.conf settings (a
``max_connections = 50`` server for the connection budget, a primary that waits for its standby). ``Standby``
is made from a running primary with ``pg_basebackup -R`` (a base backup that starts as a streaming standby of
it), as the same unprivileged user, in its own directory on its own port; ``promote()`` makes it the primary.
``crash()`` stops any of them as a power cut would (``pg_ctl stop -m immediate``: no shutdown checkpoint,
clients cut off at once).

    with TunedServer({"synchronous_commit": "on"}) as primary, Standby(primary) as standby:
        primary.require_synchronous_standby()   # commits now wait until the standby has them
        url = failover_url([primary, standby], "e2t_1")
        primary.crash(); standby.promote()

This module imports nothing from pytest, so a benchmark can import it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from support.servers.pgserver import SUPERUSER, PgServer, PgServerError


class TunedServer(PgServer):
    """A PgServer whose postgresql.conf ends with `settings` (the last occurrence of a setting counts)."""

    def __init__(self, settings: Mapping[str, str | int] | None = None, *, bindir: Path | str | None = None) -> None:
        super().__init__(bindir)
        self.settings = dict(settings or {})

    def _write_config(self) -> None:
        super()._write_config()
        lines = "".join(f"{name} = {_quoted(value)}\n" for name, value in self.settings.items())
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(f"# --- tests/support/servers/replication.py ---\n{lines}")

    def crash(self) -> None:
        """Stop at once, as a crash would: `pg_ctl stop -m immediate`."""
        proc = self._cmd(
            [self._tool("pg_ctl"), "--pgdata", str(self.data_dir), "--mode", "immediate", "--wait", "stop"], timeout=60
        )
        if proc.returncode != 0 and self._server_alive():
            raise PgServerError(f"pg_ctl stop -m immediate failed: {proc.stdout}{proc.stderr}")
        self._running = False

    def require_synchronous_standby(self, timeout: float = 60.0) -> None:
        """Wait until a standby streams from this server, then make every commit wait for it
        (synchronous_standby_names = '*'): what a committed delivery wrote survives the loss of this server."""
        deadline = time.monotonic() + timeout
        while not self.execute("SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'"):
            if time.monotonic() > deadline:
                raise PgServerError(f"no standby streams from the server on port {self.port}")
            time.sleep(0.1)
        self.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        self.execute("SELECT pg_reload_conf()")
        while self.execute("SELECT 1 FROM pg_stat_replication WHERE sync_state <> 'sync'"):
            if time.monotonic() > deadline:
                raise PgServerError("the standby did not become synchronous")
            time.sleep(0.1)


class Standby(TunedServer):
    """A hot standby of `primary`: its base backup, streaming from it (``pg_basebackup -R``) until promoted."""

    def __init__(self, primary: PgServer, settings: Mapping[str, str | int] | None = None) -> None:
        super().__init__(settings, bindir=primary.bindir)
        self.primary = primary

    def _initdb(self) -> None:
        proc = self._cmd(
            [
                self._tool("pg_basebackup"),
                "--pgdata",
                str(self.data_dir),
                "--host",
                str(self.primary.base_dir),
                "--port",
                str(self.primary.port),
                "--username",
                SUPERUSER,
                "--wal-method",
                "stream",
                "--write-recovery-conf",
                "--checkpoint",
                "fast",
                "--no-sync",
            ],
            timeout=300,
        )
        if proc.returncode != 0:
            raise PgServerError(f"pg_basebackup failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        self._initialised = True

    def promote(self, timeout: float = 60.0) -> None:
        """Make this standby the primary (`pg_ctl promote`), and wait until it accepts writes."""
        proc = self._cmd(
            [self._tool("pg_ctl"), "--pgdata", str(self.data_dir), "--wait", "--timeout", str(int(timeout)), "promote"],
            timeout=timeout + 30,
        )
        if proc.returncode != 0:
            raise PgServerError(f"pg_ctl promote failed: {proc.stdout}{proc.stderr}\n{self._log_tail()}")
        deadline = time.monotonic() + timeout
        while self.execute("SELECT pg_is_in_recovery()")[0][0]:
            if time.monotonic() > deadline:
                raise PgServerError("the promoted standby is still in recovery")
            time.sleep(0.1)


def failover_url(servers: Sequence[PgServer], database: str, *, read_write: bool = True) -> str:
    """The database_url of a primary and its standbys: libpq's multi-host syntax, one ``host=HOST:PORT`` each, as
    SQLAlchemy's psycopg dialect reads it; ``target_session_attrs=read-write`` skips a server that takes no writes."""
    hosts = "&".join(f"host={server.host}:{server.port}" for server in servers)
    attrs = "&target_session_attrs=read-write" if read_write else ""
    return f"postgresql+psycopg://{SUPERUSER}@/{database}?{hosts}{attrs}"


def _quoted(value: str | int) -> str:
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"
