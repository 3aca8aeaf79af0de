"""Connecting to the database: SQLite (embedded default) or PostgreSQL (production), same behaviour.

What matters to the MTA contract lives here: lock and statement timeouts below the delivery budget,
SQLite deliveries that queue behind each other (BEGIN IMMEDIATE, WAL, a long busy timeout) instead of
failing with "database is locked", and a schema check that defers (75) a delivery into a database at
another schema revision than this code's, naming the command that fixes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exits import ConfigurationError, SchemaError
from .schema import SCHEMA_REVISION
from .sqlite_file import prepare_database_file

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

INIT_HINT = "run `email2ticket init` to create or upgrade it"


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs, which SQLAlchemy would hand to psycopg2, and use psycopg 3."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path | None:
    """The file behind a sqlite:///PATH URL (None for in-memory databases)."""
    path = url.split("///", 1)[1] if "///" in url else ""
    path = path.split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def make_engine(url: str, *, lock_timeout: float, pool_size: int | None = None) -> Engine:
    """An engine with our transaction semantics; `lock_timeout` seconds bounds every wait for a lock.

    Without `pool_size` (a short-lived pipe process) every connect opens a new connection and closing
    it really closes it. The resident service passes its number of delivery threads and keeps that
    many connections open. `?pool_mode=transaction` in a PostgreSQL URL: a pooler in transaction mode
    is in between, and nothing may outlive a transaction on the server (store/pooling.py).
    """
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError

    from .pooling import POOL_MODE, connect_arguments, set_per_transaction, split_pool_mode

    _silence_library_logging()
    url = normalise_url(url)
    try:
        if is_sqlite(url):
            if f"{POOL_MODE}=" in url:
                raise ValueError(f"{POOL_MODE} is for PostgreSQL behind a pooler, not for SQLite")
            return _sqlite_engine(url, lock_timeout, pool_size)
        millis = str(int(lock_timeout * 1000))
        settings = {"lock_timeout": millis, "statement_timeout": millis, "TimeZone": "UTC"}
        target, transaction_pooling = split_pool_mode(url)
        engine = create_engine(
            target,
            **_pool_arguments(pool_size),
            connect_args=connect_arguments(
                settings, max(1, int(lock_timeout / 3)), transaction_pooling=transaction_pooling
            ),
        )
        if transaction_pooling:
            set_per_transaction(engine, settings)
        return engine
    except (ArgumentError, ImportError, ValueError) as exc:
        raise ConfigurationError(f"database_url {redact(url)!r} is not usable: {exc}") from exc


def _silence_library_logging() -> None:
    """Keep SQLAlchemy's own warnings (e.g. "Exception during reset or similar" when a timeout
    interrupts a rollback) off stderr.

    Without a handler, Python's logging prints them to stderr ahead of our status line; Postfix reads
    stdout and stderr as one stream and only a leading enhanced status code counts, so the MTA must
    see our one sentence first. The failure itself still reaches the admin through our exception.
    """
    import logging

    library = logging.getLogger("sqlalchemy")
    if not library.handlers:
        library.addHandler(logging.NullHandler())


def _pool_arguments(pool_size: int | None) -> dict[str, Any]:
    from sqlalchemy.pool import NullPool, QueuePool

    if pool_size is None:
        return {"poolclass": NullPool}  # one short-lived process, one connection
    # One connection per delivery thread, plus as many again for the rare schema check beside a
    # delivery. No pre-ping: it would cost a round trip per message; a connection the server dropped
    # fails that one delivery with 75 (the MTA retries) and SQLAlchemy then replaces the pool's connections.
    return {"poolclass": QueuePool, "pool_size": pool_size, "max_overflow": pool_size, "pool_timeout": 30}


def _sqlite_engine(url: str, lock_timeout: float, pool_size: int | None = None) -> Engine:
    from sqlalchemy import create_engine, event

    path = sqlite_path(url)
    connect_args: dict[str, Any] = {"timeout": lock_timeout}
    if pool_size is not None:
        connect_args["check_same_thread"] = False  # pooled connections move between delivery threads
    engine = create_engine(url, **_pool_arguments(pool_size), connect_args=connect_args)

    @event.listens_for(engine, "do_connect")
    def _before_connect(*_args: Any) -> None:
        if path is not None:  # created 0600 before SQLite would create it 0644 (store/sqlite_file.py)
            prepare_database_file(path)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (the pysqlite driver would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(lock_timeout * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Take the write lock up front: concurrent deliveries then wait (busy_timeout) instead of
        # failing when a reader tries to upgrade its lock.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# The user-info part as SQLAlchemy's URL parser reads it: a password runs from the first ":" to the first "@".
_USERINFO = re.compile(r"(?P<head>[\w+]+://[^:/]*):(?P<password>[^@]*)@")
# A query parameter whose name suggests a credential: libpq's password, passfile, sslpassword, sslkey, and
# whatever a driver or proxy calls its secret, token or key.
_SECRET_PARAMETER = re.compile(r"([?&])([^=&]*(?:pass|pwd|secret|token|key|cred|auth)[^=&]*)=([^&]*)", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL without its credentials, for every message that shows it (logs, the MTA's status line, which
    Postfix copies into bounces and delay notices, `doctor`, the service's start-up line): the user-info
    password and every query parameter whose name suggests a secret are replaced by ***."""
    if "://" not in url:
        return url
    url = _USERINFO.sub(r"\g<head>:***@", url, count=1)
    return _SECRET_PARAMETER.sub(r"\1\2=***", url)


def current_revision(connection: Connection) -> str | None:
    """The schema revision recorded by Alembic, or None when the database was never initialised."""
    from sqlalchemy import inspect, text

    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def check_revision(revision: str | None) -> None:
    """Refuse (75, naming the fix) a database this code cannot safely write to."""
    if revision is None:
        raise SchemaError(f"the database has no email2ticket schema; {INIT_HINT}")
    if revision != SCHEMA_REVISION:
        raise SchemaError(
            f"the database schema is at revision {revision}, this email2ticket expects {SCHEMA_REVISION}; {INIT_HINT}"
        )


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise first-use schema creation between concurrent deliveries into a new SQLite file."""
    lock_path = path.with_name(path.name + ".init-lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigurationError(f"cannot create {lock_path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_schema(engine: Engine, url: str) -> None:
    """Check the schema before a delivery; on a brand-new SQLite file, create it first.

    The embedded default must just work on first use, so an empty SQLite database is initialised
    automatically. PostgreSQL is only ever changed by `email2ticket init`, and a database at an
    older or newer revision is never touched implicitly.
    """
    with engine.connect() as connection:
        revision = current_revision(connection)
    path = sqlite_path(url) if is_sqlite(url) else None
    if revision is None and path is not None:
        with _file_lock(path):
            with engine.connect() as connection:
                revision = current_revision(connection)
                empty = not _has_any_table(connection)
            if revision is None and empty:
                from .migrate import upgrade

                upgrade(engine)
                revision = SCHEMA_REVISION
    check_revision(revision)


def _has_any_table(connection: Connection) -> bool:
    from sqlalchemy import inspect

    return bool(inspect(connection).get_table_names())
