"""The test infrastructure itself: the PostgreSQL server and the runners."""

from __future__ import annotations

import os
import pwd
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

from support.servers.pgserver import TEST_OS_USER, PgServer, dbname_of


def _select_one(server: PgServer, database: str) -> Any:
    with psycopg.connect(server.conninfo(database)) as conn:
        row = conn.execute("select 1").fetchone()
        assert row is not None
        return row[0]


def test_databases_stop_and_restart(pg_server: PgServer) -> None:
    first = pg_server.create_database()
    second = pg_server.create_database()
    assert first != second
    for name in (first, second):
        assert _select_one(pg_server, name) == 1

    pg_server.stop()
    try:
        assert not pg_server.running
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg_server.conninfo(first), connect_timeout=5).close()
    finally:
        pg_server.start()

    assert pg_server.running
    for name in (first, second):
        assert _select_one(pg_server, name) == 1
    # Databases survive the restart (same data directory).
    names = {row[0] for row in pg_server.execute("select datname from pg_database")}
    assert {first, second} <= names


def test_server_settings(pg_server: PgServer) -> None:
    def setting(name: str) -> str:
        return str(pg_server.execute("select current_setting(%s)", [name])[0][0])

    assert setting("listen_addresses") == "127.0.0.1"
    assert setting("fsync") == "off"
    assert setting("max_connections") == "100"
    assert setting("port") == str(pg_server.port)
    assert setting("unix_socket_directories") == str(pg_server.base_dir)
    if os.geteuid() == 0:
        # PostgreSQL refuses root; it runs as the unprivileged test user.
        owner = os.stat(pg_server.data_dir).st_uid
        assert owner == pwd.getpwnam(TEST_OS_USER).pw_uid


def test_unix_socket(pg_server: PgServer) -> None:
    name = pg_server.create_database()
    with psycopg.connect(host=str(pg_server.base_dir), port=pg_server.port, user="postgres", dbname=name) as conn:
        assert conn.execute("select current_database()").fetchone() == (name,)
    assert pg_server.unix_url_for(name).startswith("postgresql+psycopg://postgres@/")


def test_url_shape(pg_server: PgServer) -> None:
    url = pg_server.url_for("e2t_x")
    assert url == f"postgresql+psycopg://postgres@127.0.0.1:{pg_server.port}/e2t_x"
    assert dbname_of(url) == "e2t_x"
    assert dbname_of("plain") == "plain"


def test_database_url_is_fresh_and_empty(database_url: str) -> None:
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        assert path.is_absolute()
        assert not path.exists()
        with sqlite3.connect(path) as conn:  # writable location
            conn.execute("create table t (x)")
    else:
        assert database_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
        conninfo = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(conninfo) as conn:
            tables = conn.execute(
                "select count(*) from information_schema.tables where table_schema = 'public'"
            ).fetchone()
            assert tables == (0,)
            conn.execute("create table t (x int)")  # the next test must not see this


def test_postgres_url_fixture(postgres_url: str, pg_admin: PgServer) -> None:
    rows = pg_admin.execute(
        "select count(*) from information_schema.tables where table_schema = 'public'",
        database=postgres_url,
    )
    assert rows == [(0,)]
    pg_admin.execute("create table t (x int)", database=postgres_url)
    assert pg_admin.execute("select count(*) from t", database=postgres_url) == [(0,)]


def test_pg_admin_may_leave_server_stopped(pg_admin: PgServer) -> None:
    # Simulates "database down" without restoring it: pg_admin's teardown must.
    pg_admin.stop()
    assert not pg_admin.running


def test_server_running_again_after_previous_test(pg_server: PgServer) -> None:
    assert pg_server.running
    assert pg_server.execute("select 1") == [(1,)]


def test_terminate_connections(pg_admin: PgServer, postgres_url: str) -> None:
    with psycopg.connect(pg_admin.conninfo(postgres_url)) as victim:
        assert pg_admin.terminate_connections(postgres_url) == 1
        with pytest.raises(psycopg.OperationalError):
            victim.execute("select 1")


def test_runner_environment(make_runner: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "probe.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, os, sys
            data = sys.stdin.buffer.read()
            print(json.dumps({
                "args": sys.argv[1:],
                "stdin": data.decode(),
                "e2t": sorted(k for k in os.environ if k.startswith("EMAIL2TICKET_")),
                "home": os.environ.get("HOME"),
                "cwd": os.getcwd(),
                "extra": os.environ.get("EXTRA"),
            }))
            print("4.3.0 just a test", file=sys.stderr)
            sys.exit(75)
            """
        )
    )
    monkeypatch.setenv("EMAIL2TICKET_DATABASE_URL", "sqlite:////nonexistent")
    run = make_runner(script)
    result = run("--flag", "value", stdin=b"hello", env={"EXTRA": "1", "EMAIL2TICKET_CONFIG": "x"})
    assert result.returncode == 75, result
    data = result.json
    assert data["args"] == ["--flag", "value"]
    assert data["stdin"] == "hello"
    assert data["e2t"] == ["EMAIL2TICKET_CONFIG"]  # only what the test passed
    assert data["home"] == str(run.home)
    assert os.path.realpath(data["cwd"]) == os.path.realpath(run.home)
    assert data["extra"] == "1"
    assert result.stderr_first_line == "4.3.0 just a test"

    removed = run(env={"HOME": None})
    assert removed.json["home"] is None
