"""Statements whose syntax differs between PostgreSQL and SQLite: INSERT ... ON CONFLICT, built once per dialect.

Both engines spell ON CONFLICT alike, but SQLAlchemy builds it only from each dialect's own `insert`; the
statements are built on first use and cached, like every statement delivery runs per message.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table

from . import schema as t

_BUILT: dict[tuple[str, str], Any] = {}


def dialect_insert(dialect: str, table: Table) -> Any:
    """The dialect's INSERT of `table`, which has on_conflict_do_update/do_nothing."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def upsert_user(dialect: str) -> Any:
    """INSERT INTO users ... ON CONFLICT (email) DO UPDATE ... RETURNING id, in the dialect's syntax."""
    key = (dialect, "upsert user")
    if key not in _BUILT:
        statement = dialect_insert(dialect, t.users)
        _BUILT[key] = statement.on_conflict_do_update(
            index_elements=[t.users.c.email], set_={"email": statement.excluded.email}
        ).returning(t.users.c.id)
    return _BUILT[key]


def insert_tags(dialect: str) -> Any:
    """INSERT INTO ticket_tags ... ON CONFLICT DO NOTHING: a tag the ticket has already is kept once."""
    key = (dialect, "insert tags")
    if key not in _BUILT:
        _BUILT[key] = dialect_insert(dialect, t.ticket_tags).on_conflict_do_nothing()
    return _BUILT[key]
