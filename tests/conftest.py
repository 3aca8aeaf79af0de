"""Fixtures shared by all tests.

Databases
  pg_server      session: the real PostgreSQL server (tests/support/servers/pgserver.py PgServer)
  pg_admin       function: the same PgServer, for superuser SQL / stop() / start();
                 guarantees the server is running again after the test
  database_url   function, parametrized [sqlite, postgresql]: URL of a fresh empty database
  sqlite_url     function: fresh SQLite URL only
  postgres_url   function: fresh PostgreSQL URL only
  start_pgbouncer function: start_pgbouncer(**PgBouncer options) -> a running PgBouncer in transaction
                 pooling mode in front of pg_server (tests/support/servers/pgbouncer.py), stopped afterwards

Executables (tests/support/run.py)
  run_deliver    function: run bin/email2ticket-deliver -> Result
  run_admin      function: run bin/email2ticket -> Result
  make_runner    function: factory for a runner of any script (same environment rules)

The help desk (tests/support/desk.py)
  desk           function: a Desk on database_url, no configuration file
  make_desk      function: make_desk(settings=None, **Desk options) -> Desk on database_url; with settings,
                 its configuration file is <child_home>/email2ticket.toml

Servers
  start_service  function: start_service(url, **ServiceProcess options) -> a running `email2ticket serve`
                 (tests/support/servers/delivery_service.py), killed after the test
  smtp_sink      function: a running SMTP sink (tests/support/servers/smtpsink.py)
  postfix, exim, make_mta_desk, ...: the MTA tests' (tests/support/mta/fixtures.py)

Every test fails if it leaves a process of its own running (tests/support/processes.py).
Tests that touch PostgreSQL are marked ``postgres`` automatically, so
``pytest -m "not postgres"`` runs without a server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import processes
from support.desk import Desk, MakeDesk
from support.executables import ADMIN, DELIVER
from support.run import Runner
from support.servers.delivery_service import ServiceProcess, StartService
from support.servers.pgbouncer import PgBouncer, find_pgbouncer
from support.servers.pgserver import PgServer, find_pg_bindir

# Fixture modules, registered (not imported) so that pytest rewrites their asserts.
pytest_plugins = ["support.servers.smtpsink", "support.mta.fixtures"]

_PG_FIXTURES = frozenset({"pg_server", "pg_admin", "postgres_url", "start_pgbouncer"})


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # database_url[postgresql] carries the mark through its param; tests that
    # ask for the server directly get it here.
    for item in items:
        if _PG_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)
        # Under pytest-xdist (scripts/test runs two workers) the MTA tests stay on one worker, in order: they
        # share the host's MTA packages, users and /etc/exim4/trusted_configs.
        if item.get_closest_marker("mta") is not None:
            item.add_marker(pytest.mark.xdist_group("mta"))


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


@pytest.fixture
def start_pgbouncer(pg_server: PgServer) -> Iterator[Any]:
    """``start_pgbouncer(pool_size=2, settings=None) -> PgBouncer`` in front of pg_server, running;
    every one is stopped and its directory deleted after the test. Skips (fails under CI) without Debian's pgbouncer."""
    if find_pgbouncer() is None:
        reason = "pgbouncer not found: install Debian's 'pgbouncer' package (scripts/test does this when run as root)"
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    started: list[PgBouncer] = []

    def start(**options: Any) -> PgBouncer:
        _ensure_running(pg_server)
        bouncer = PgBouncer(pg_server, **options)
        started.append(bouncer)
        return bouncer.start()

    yield start
    for bouncer in started:
        bouncer.close()


# --------------------------------------------------------------------------
# Running the real executables
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# The help desk, the resident service
# --------------------------------------------------------------------------


@pytest.fixture
def make_desk(database_url: str, run_admin: Runner, run_deliver: Runner, child_home: Path) -> MakeDesk:
    """``make_desk(settings=None, **options) -> Desk`` on the test's database (see Desk for the options)."""

    def factory(settings: dict[str, Any] | None = None, **options: Any) -> Desk:
        if settings is not None:
            options.setdefault("config", child_home / "email2ticket.toml")
        return Desk(database_url, run_admin, run_deliver, settings=settings, **options)

    return factory


@pytest.fixture
def desk(make_desk: MakeDesk) -> Desk:
    """A help desk on database_url driven by the executables' defaults (no configuration file)."""
    return make_desk()


@pytest.fixture
def start_service() -> Iterator[StartService]:
    """``start_service(url, **ServiceProcess options)``: a running service; every one is killed afterwards."""
    started: list[ServiceProcess] = []

    def start(url: str, **options: Any) -> ServiceProcess:
        service = ServiceProcess(url, **options)
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.close()


# --------------------------------------------------------------------------
# No process outlives its test
# --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    """Fails a test that leaves a process it started running after its own teardown (and kills it).

    Autouse in the root conftest, this fixture is set up before the test's other function-scoped fixtures and
    torn down after them; the servers of session- and module-scoped fixtures are already running when it looks."""
    before = processes.snapshot()
    yield
    left = processes.leftovers(before)
    if left:
        listed = "\n".join(f"  pid {p.pid} (parent {p.ppid}): {p.command()}" for p in left)
        processes.kill(left)
        pytest.fail(f"the test left {len(left)} process(es) running (now killed):\n{listed}", pytrace=False)
