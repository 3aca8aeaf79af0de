"""Writing what routing decided (rules/routing.py): a new ticket's queue, priority, status and technician, and tags.

The queue, priority and status go into the new ticket's own INSERT, and a filter's `assign=EMAIL` into it as a
subquery (the technician's row, if that address is an enabled technician when the mail arrives), so routing costs a
new ticket no statement of its own. Tags are a statement only when a filter tagged the mail; a tag the ticket has
already is kept once (INSERT ... ON CONFLICT DO NOTHING, in the dialect's syntax).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import String, bindparam, insert, select

from . import schema as t
from .dialect import insert_tags

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from ..rules.routing_facts import Placement

_users = t.users.c
INSERT_TICKET = insert(t.tickets)
# assign=EMAIL: the technician's id, or NULL when the address is no enabled technician (any more).
INSERT_ASSIGNED_TICKET = insert(t.tickets).values(
    technician_id=select(_users.id)
    .where(_users.email == bindparam("assign_email", type_=String), _users.is_technician, ~_users.disabled)
    .scalar_subquery()
)


def ticket_insert(placement: Placement | None) -> Any:
    """The INSERT of a new ticket: with the technician's subquery when a filter assigns it."""
    return INSERT_ASSIGNED_TICKET if placement is not None and placement.technician else INSERT_TICKET


def ticket_values(placement: Placement | None) -> dict[str, Any]:
    """A new ticket's routing columns (status `open`, priority `normal` and no queue without a placement)."""
    if placement is None:
        return {"status": "open"}
    values: dict[str, Any] = {
        "status": placement.status or "open",
        "priority": placement.priority or "normal",
        "queue_id": placement.queue_id,
    }
    if placement.technician:
        values["assign_email"] = placement.technician
    return values


def add_tags(conn: Connection, ticket_id: int, placement: Placement | None) -> None:
    """The placement's tags on the ticket, each once."""
    if placement is None or not placement.tags:
        return
    rows = [{"ticket_id": ticket_id, "tag": tag, "created_at": t.utcnow()} for tag in placement.tags]
    conn.execute(insert_tags(conn.dialect.name), rows)
