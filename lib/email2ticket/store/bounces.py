"""What a delivery failure report is checked against: whom the notifications it names were sent to.

A report is mail like any other, and anyone can write one: from <>, quoting the Message-ID of an
acknowledgement they received themselves (its token is genuine), with `Final-Recipient:` naming the
ticket's technician and a 5.1.1 status. Read at face value it would stop every notification to the
technician. So the failed recipient is compared with the recipient of the notification the report names,
looked up here by the Message-ID we sent it with; rules/loop.py blocks only an address found on both sides.

Read only for a bounce, in the delivery's transaction; one indexed query (notifications.outgoing_message_id).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import BindParameter, String, bindparam, select

from . import schema as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_ids: BindParameter[str] = bindparam("ids", type_=String, expanding=True)
NOTIFIED = select(t.notifications.c.recipient).where(t.notifications.c.outgoing_message_id.in_(_ids)).distinct()


def notified_recipients(conn: Connection, message_ids: tuple[str, ...]) -> frozenset[str]:
    """The recipients (lower-cased) of the notifications we sent with these Message-IDs; none for no IDs."""
    if not message_ids:
        return frozenset()
    rows = conn.execute(NOTIFIED, {"ids": list(message_ids)}).scalars()
    return frozenset(str(recipient).lower() for recipient in rows)
