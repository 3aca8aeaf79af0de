"""Fixtures shared by all tests.

Databases
  pg_server      session: the real PostgreSQL server (tests/support/servers/pgserver.py PgServer)
  pg_admin       function: the same PgServer, for superuser SQL / stop() / start();
                 guarantees the server is running again after the test
  database_url   function, parametrized [sqlite, postgresql]: URL of a fresh empty database
  sqlite_url     function: fresh SQLite URL only
  postgres_url   function: fresh PostgreSQL URL only

Executables
  run_deliver    function: run bin/email2ticket-deliver -> Result
  run_admin      function: run bin/email2ticket -> Result
  make_runner    function: factory for a runner of any script (same environment rules)

Tests that touch PostgreSQL are marked ``postgres`` automatically, so
``pytest -m "not postgres"`` runs without a server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support.servers.pgserver import PgServer, find_pg_bindir

REPO = Path(__file__).resolve().parent.parent
DELIVER = REPO / "bin" / "email2ticket-deliver"
ADMIN = REPO / "bin" / "email2ticket"

_PG_FIXTURES = frozenset({"pg_server", "pg_admin", "postgres_url"})


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # database_url[postgresql] carries the mark through its param; tests that
    # ask for the server directly get it here.
    for item in items:
        if _PG_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server for the whole session, stopped and deleted at the end."""
    bindir = find_pg_bindir()
    if bindir is None:
        reason = (
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in "
            "/usr/lib/postgresql/*/bin: install Debian's 'postgresql' package (scripts/test does "
            "this when run as root)"
        )
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    server = PgServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.close()


def _ensure_running(server: PgServer) -> None:
    # A test may stop the server to simulate "database down"; never let that
    # leak into the next test.
    if not server.running:
        server.start()


@pytest.fixture
def pg_admin(pg_server: PgServer) -> Iterator[PgServer]:
    """The session server, for superuser work: ``execute(sql, params, database=name_or_url)``,
    ``connect()``, ``terminate_connections(db)``, ``stop()``/``start()``, ``url_for(db)``.
    The server is restarted after the test if the test left it stopped."""
    _ensure_running(pg_server)
    yield pg_server
    _ensure_running(pg_server)


def _sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory}/email2ticket.db"


def _new_postgres_url(server: PgServer) -> str:
    _ensure_running(server)
    return server.url_for(server.create_database())


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty (no schema) database; the test runs once per backend."""
    if request.param == "sqlite":
        yield _sqlite_url(tmp_path)
        return
    # Looked up lazily so that sqlite-only runs never start PostgreSQL.
    server: PgServer = request.getfixturevalue("pg_server")
    yield _new_postgres_url(server)
    _ensure_running(server)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """``sqlite:///<tmp_path>/email2ticket.db`` (file not created yet)."""
    return _sqlite_url(tmp_path)


@pytest.fixture
def postgres_url(pg_server: PgServer) -> Iterator[str]:
    """``postgresql+psycopg://postgres@127.0.0.1:<port>/e2t_<n>``: a fresh empty database."""
    yield _new_postgres_url(pg_server)
    _ensure_running(pg_server)


# --------------------------------------------------------------------------
# Running the real executables
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """Outcome of one run of an executable."""

    returncode: int
    stdout: bytes
    stderr: bytes
    argv: tuple[str, ...] = field(default=(), compare=False)

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")

    @property
    def stderr_first_line(self) -> str:
        lines = self.stderr_text.splitlines()
        return lines[0] if lines else ""

    @property
    def json(self) -> Any:
        """stdout parsed as its single JSON line (AssertionError if it is not exactly one)."""
        lines = [line for line in self.stdout_text.splitlines() if line.strip()]
        if len(lines) != 1:
            raise AssertionError(f"expected exactly one JSON line on stdout, got {len(lines)}\n{self}")
        try:
            return json.loads(lines[0])
        except json.JSONDecodeError as exc:
            raise AssertionError(f"stdout is not JSON ({exc})\n{self}") from None

    def __str__(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\nexit status {self.returncode}\n"
            f"--- stdout ---\n{self.stdout_text}\n--- stderr ---\n{self.stderr_text}"
        )


class Runner:
    """Runs ``[sys.executable, script, *args]`` in a clean environment.

    The child gets only PATH, HOME (a per-test directory, also the working
    directory) and PYTHONPATH=<repo>/lib (so the working tree is what runs,
    installed or not); nothing else from the outer environment, in particular
    no EMAIL2TICKET_* variable.  ``env`` entries are merged over that; a value
    of None removes the variable.
    """

    def __init__(self, script: Path, home: Path) -> None:
        self.script = script
        self.home = home

    def base_env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(self.home),
            "PYTHONPATH": str(REPO / "lib"),
        }

    def __call__(
        self,
        *args: str | os.PathLike[str],
        stdin: bytes = b"",
        env: Mapping[str, str | None] | None = None,
        timeout: float = 120.0,
        cwd: Path | None = None,
    ) -> Result:
        child_env = self.base_env()
        for key, value in (env or {}).items():
            if value is None:
                child_env.pop(key, None)
            else:
                child_env[key] = value
        argv = (sys.executable, str(self.script), *(os.fspath(a) for a in args))
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            proc = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                env=child_env,
                cwd=cwd or self.home,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            partial = Result(-1, exc.stdout or b"", exc.stderr or b"", argv)
            pytest.fail(f"timed out after {timeout} s\n{partial}", pytrace=False)
        return Result(proc.returncode, proc.stdout, proc.stderr, argv)


@pytest.fixture
def child_home(tmp_path: Path) -> Path:
    """HOME of the child processes (shared by run_deliver and run_admin in one test)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return home


@pytest.fixture
def make_runner(child_home: Path) -> Any:
    """``make_runner(script_path) -> Runner`` with the same environment rules."""

    def factory(script: Path) -> Runner:
        return Runner(script, child_home)

    return factory


@pytest.fixture
def run_deliver(child_home: Path) -> Runner:
    """``run_deliver(*args, stdin=b"", env=None, timeout=120) -> Result`` for bin/email2ticket-deliver."""
    return Runner(DELIVER, child_home)


@pytest.fixture
def run_admin(child_home: Path) -> Runner:
    """``run_admin(*args, stdin=b"", env=None, timeout=120) -> Result`` for bin/email2ticket."""
    return Runner(ADMIN, child_home)
