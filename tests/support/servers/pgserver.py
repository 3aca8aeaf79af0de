"""A throw-away PostgreSQL server for the tests (and for scripts under bench/).

``PgServer`` runs ``initdb`` into a fresh directory under /tmp and starts a
real ``postgres`` with ``pg_ctl``: loopback TCP only (127.0.0.1, a free port),
a unix socket in that directory, trust authentication, ``fsync=off`` (the data
is thrown away, so durability buys nothing), ``max_connections=100``.

PostgreSQL refuses to run as root.  When this process is root the server runs
as the unprivileged system user ``e2t-test`` (created on first use) through
``runuser``; the directory is a new one directly under /tmp (whose ancestors
are world-traversable) owned by that user.

Usage::

    with PgServer() as server:          # initdb + start; stop + delete on exit
        db = server.create_database()   # "e2t_1", "e2t_2", ...
        url = server.url_for(db)        # postgresql+psycopg://postgres@127.0.0.1:PORT/e2t_1
        server.execute("select 1", database=db)
        server.stop(); server.start()   # simulate "database down", then restore

This module imports nothing from pytest, so a benchmark can import it with
``sys.path.insert(0, "<repo>/tests")``.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

#: Unprivileged OS user the server runs as when the tests run as root.
TEST_OS_USER = "e2t-test"
#: Database superuser created by initdb (trust authentication: no password).
SUPERUSER = "postgres"
#: Override for the directory holding initdb/pg_ctl/postgres.
BINDIR_ENV = "E2T_PG_BINDIR"

_REQUIRED = ("initdb", "pg_ctl", "postgres")
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


class PgServerError(RuntimeError):
    """The server could not be initialised, started or stopped."""


def _has_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in _REQUIRED)


def _version_key(bindir: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin: 9.6 < 10 < 15 < 16 (numeric, not lexical).
    version = Path(bindir).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def find_pg_bindir() -> Path | None:
    """Directory with initdb, pg_ctl and postgres, or None.

    Order: $E2T_PG_BINDIR, then ``initdb`` on PATH (symlinks resolved, so a
    /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb link finds its
    siblings), then the newest /usr/lib/postgresql/*/bin (Debian's layout,
    which does not put initdb on PATH).
    """
    override = os.environ.get(BINDIR_ENV)
    if override:
        return Path(override) if _has_binaries(Path(override)) else None
    on_path = shutil.which("initdb")
    if on_path:
        candidate = Path(os.path.realpath(on_path)).parent
        if _has_binaries(candidate):
            return candidate
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if _has_binaries(Path(bindir)):
            return Path(bindir)
    return None


def _find_system_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in _SBIN:
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK):
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    """Return the passwd entry of ``name``, creating a system user if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = _find_system_tool("useradd")
    if useradd is None:
        raise PgServerError(f"running as root and user {name!r} is missing, but useradd was not found")
    for attempt in range(5):
        proc = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            # A concurrent test session may have created it first (useradd exit 9), or held /etc/passwd's
            # lock while creating another user (exit 10: try again).
            return pwd.getpwnam(name)
        except KeyError:
            if proc.returncode != 10 or attempt == 4:
                break
            time.sleep(0.5)
    raise PgServerError(f"useradd {name} failed (exit {proc.returncode}): {proc.stderr.strip()}")


def dbname_of(database: str) -> str:
    """Accept a bare database name or a URL and return the database name."""
    if "://" not in database:
        return database
    path = urlsplit(database).path.lstrip("/")
    if not path:
        raise ValueError(f"URL has no database name: {database!r}")
    return unquote(path)


class PgServer:
    """One PostgreSQL server in a private temporary directory.

    Attributes after construction: ``bindir``, ``base_dir`` (the temp dir,
    also the unix socket directory), ``data_dir``, ``log_file``, ``port``,
    ``host`` ("127.0.0.1"), ``user`` (the database superuser).
    """

    host = "127.0.0.1"
    user = SUPERUSER

    def __init__(self, bindir: Path | str | None = None, *, start_timeout: float = 60.0) -> None:
        found = Path(bindir) if bindir is not None else find_pg_bindir()
        if found is None or not _has_binaries(found):
            raise PgServerError(
                "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH, "
                f"in ${BINDIR_ENV} or in /usr/lib/postgresql/*/bin"
            )
        self.bindir: Path = found
        self.start_timeout = start_timeout
        self._as_root = os.geteuid() == 0
        self._os_user: pwd.struct_passwd | None = None
        self._runuser: str | None = None
        if self._as_root:
            self._os_user = _ensure_os_user(TEST_OS_USER)
            self._runuser = _find_system_tool("runuser")
        # Directly under /tmp (not $TMPDIR, which may sit below a 0700 home
        # directory that the unprivileged server user cannot traverse).
        self.base_dir = Path(tempfile.mkdtemp(prefix="e2t-pg-", dir="/tmp"))
        os.chmod(self.base_dir, 0o755)
        if self._os_user is not None:
            os.chown(self.base_dir, self._os_user.pw_uid, self._os_user.pw_gid)
        self.data_dir = self.base_dir / "data"
        self.log_file = self.base_dir / "postgres.log"
        self.port = 0
        self._initialised = False
        self._running = False
        self._closed = False
        self._db_counter = itertools.count(1)
        atexit.register(self.close)

    # -- process plumbing ---------------------------------------------------

    def _cmd(self, argv: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool, as the unprivileged user when we are root."""
        env = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C", "TZ": "UTC"}
        full = list(argv)
        kwargs: dict[str, Any] = {}
        if self._os_user is not None:
            if self._runuser is not None:
                full = [self._runuser, "-u", TEST_OS_USER, "--", *full]
            else:  # no runuser (unusual): let subprocess drop privileges itself
                kwargs = {"user": self._os_user.pw_uid, "group": self._os_user.pw_gid, "extra_groups": []}
            env["HOME"] = str(self.base_dir)
        # pg_ctl hands the postmaster a redirected stdout/stderr (the log
        # file), so capturing our pipes here cannot hang on the daemon.
        return subprocess.run(
            full,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            cwd=self.base_dir,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    def _tool(self, name: str) -> str:
        return str(self.bindir / name)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def _initdb(self) -> None:
        proc = self._cmd(
            [
                self._tool("initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ],
            timeout=300,
        )
        if proc.returncode != 0:
            raise PgServerError(f"initdb failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        self._initialised = True

    def _write_config(self) -> None:
        # Appended settings win over initdb's defaults (last occurrence counts).
        settings = f"""
# --- email2ticket test server (tests/support/servers/pgserver.py) ---
listen_addresses = '{self.host}'
port = {self.port}
unix_socket_directories = '{self.base_dir}'
max_connections = 100
# Throw-away data: durability is pointless here and costs seconds per test run.
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
"""
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(settings)

    # -- lifecycle ----------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """initdb (first time only) and start the server; wait until it accepts connections."""
        if self._closed:
            raise PgServerError("server was closed")
        if self._running:
            return
        if not self._initialised:
            self._initdb()
            # The port is only known to us until the first start; if another
            # process grabs it in between, pick another one and retry.
            for attempt in range(5):
                self.port = _free_port()
                self._write_config()
                try:
                    self._pg_ctl_start()
                    return
                except PgServerError:
                    if attempt == 4 or "could not bind" not in self._log_tail(200).lower():
                        raise
            return
        self._pg_ctl_start()

    def _pg_ctl_start(self) -> None:
        proc = self._cmd(
            [
                self._tool("pg_ctl"),
                "--pgdata",
                str(self.data_dir),
                "--log",
                str(self.log_file),
                "--wait",
                "--timeout",
                str(int(self.start_timeout)),
                "start",
            ],
            timeout=self.start_timeout + 30,
        )
        if proc.returncode != 0:
            raise PgServerError(
                f"pg_ctl start failed (exit {proc.returncode}): {proc.stdout}{proc.stderr}\n"
                f"--- server log ---\n{self._log_tail()}"
            )
        self._running = True

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are terminated)."""
        if not self._initialised:
            return
        proc = self._cmd(
            [self._tool("pg_ctl"), "--pgdata", str(self.data_dir), "--mode", "fast", "--wait", "stop"],
            timeout=120,
        )
        if proc.returncode != 0 and self._server_alive():
            raise PgServerError(
                f"pg_ctl stop failed (exit {proc.returncode}): {proc.stdout}{proc.stderr}\n"
                f"--- server log ---\n{self._log_tail()}"
            )
        self._running = False

    def _server_alive(self) -> bool:
        proc = self._cmd([self._tool("pg_ctl"), "--pgdata", str(self.data_dir), "status"], timeout=30)
        return proc.returncode == 0

    def _kill_postmaster(self) -> None:
        """Last resort when pg_ctl stop failed: SIGQUIT (immediate shutdown)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGQUIT)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)

    def close(self) -> None:
        """Stop the server if running and delete its directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._initialised:
                try:
                    self.stop()
                except (PgServerError, subprocess.TimeoutExpired):
                    self._kill_postmaster()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            with contextlib.suppress(Exception):
                atexit.unregister(self.close)

    def __enter__(self) -> PgServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- databases and SQL --------------------------------------------------

    def url_for(self, database: str, *, driver: str = "postgresql+psycopg") -> str:
        """SQLAlchemy URL for ``database`` over TCP as the superuser."""
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def unix_url_for(self, database: str, *, driver: str = "postgresql+psycopg") -> str:
        """SQLAlchemy URL for ``database`` over the unix socket."""
        return f"{driver}://{self.user}@/{database}?host={self.base_dir}"

    def conninfo(self, database: str = "postgres") -> str:
        """libpq connection string (for psycopg.connect) for a name or URL."""
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=dbname_of(database),
            connect_timeout=10,
        )

    def connect(self, database: str = "postgres", *, autocommit: bool = True) -> psycopg.Connection[Any]:
        """New psycopg connection as the superuser (caller closes it)."""
        return psycopg.connect(self.conninfo(database), autocommit=autocommit)

    def execute(
        self,
        query: str | sql.Composable,
        params: Sequence[Any] | dict[str, Any] | None = None,
        *,
        database: str = "postgres",
    ) -> list[tuple[Any, ...]]:
        """Run one statement as the superuser (autocommit); return its rows (or [])."""
        with self.connect(database) as conn, conn.cursor() as cur:
            cur.execute(query, params)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description is not None else []

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (default name e2t_<n>) and return its name."""
        if name is None:
            name = f"e2t_{next(self._db_counter)}"
        if not _DB_NAME.match(name):
            raise ValueError(f"unsafe database name: {name!r}")
        self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def terminate_connections(self, database: str) -> int:
        """Terminate every other session on ``database``; return how many."""
        rows = self.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [dbname_of(database)],
        )
        return int(rows[0][0])
