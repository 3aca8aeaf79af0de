"""A ticket's Cc participants, written: by a delivery (rules/people.py decided who), by the admin, by a merge.

Twenty colleagues answering one mail with Reply-All at once each add the others: the rows go in sorted, with
INSERT ... ON CONFLICT DO NOTHING, so concurrent deliveries neither fail on the primary key nor deadlock on
each other's rows (each takes them in the same order, after the ticket's own row lock).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import schema as t

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.engine import Connection

_INSERT: dict[str, Any] = {}  # per dialect, built on first use


def add_participants(conn: Connection, ticket_id: int, addresses: Iterable[str], message_row: int | None) -> None:
    """Make `addresses` participants of the ticket (those that are already stay as they were)."""
    rows = [
        {"ticket_id": ticket_id, "address": address, "message_row": message_row, "created_at": t.utcnow()}
        for address in sorted(set(addresses))
    ]
    if rows:
        conn.execute(_insert(conn.dialect.name), rows)


def _insert(dialect: str) -> Any:
    """INSERT INTO ticket_participants ... ON CONFLICT DO NOTHING, in the dialect's syntax."""
    if dialect not in _INSERT:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
        _INSERT[dialect] = dialect_insert(t.ticket_participants).on_conflict_do_nothing()
    return _INSERT[dialect]
