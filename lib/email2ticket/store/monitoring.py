"""What monitoring reads from the database: the sizes an admin sets alerts on (the service's metrics endpoint).

The quarantine (messages that failed repeatedly and wait for an admin) and the notification queue by state:
`pending` (not tried yet, or leased to a sender), `failed` (waiting for a retry after a back-off), `given_up`
(failed MAX_SEND_ATTEMPTS times: only an admin's `notifications retry` sends it now) and `bounced`. One short
read, through the delivery store's transaction (so a missing schema says `email2ticket init`). And, for
`email2ticket metrics --textfile`, the audit trail's totals: messages by action and exit status, and when the
last one arrived.
"""

from __future__ import annotations

from datetime import datetime

from msgspec import Struct, field
from sqlalchemy import case, func, select

from . import schema as t
from .delivery import DeliveryStore

QUARANTINE = "quarantine"  # the audit action of a quarantined message (store/quarantine.py)
NOTIFICATION_STATES = ("pending", "failed", "given_up", "bounced")


class QueueSizes(Struct, frozen=True):
    """The quarantine's size and the notifications in each state of NOTIFICATION_STATES (sent ones not counted)."""

    quarantine: int = 0
    notifications: dict[str, int] = field(default_factory=dict)


def queue_sizes(store: DeliveryStore) -> QueueSizes:
    n = t.notifications
    state = case(
        ((n.c.status == "failed") & (n.c.attempts >= t.MAX_SEND_ATTEMPTS), "given_up"),
        else_=n.c.status,
    )
    with store.transaction(commit=False) as tx:
        quarantine = tx.conn.scalar(select(func.count()).where(t.messages.c.action == QUARANTINE))
        rows = tx.conn.execute(select(state, func.count()).where(n.c.status != "sent").group_by(state))
        counts = {name: 0 for name in NOTIFICATION_STATES}
        for name, count in rows:
            counts[str(name)] = int(count)
    return QueueSizes(int(quarantine or 0), counts)


class AuditTotals(Struct, frozen=True):
    """The audit trail's messages by (action, exit status), and the time the newest one arrived (None: none)."""

    messages: dict[tuple[str, int], int] = field(default_factory=dict)
    last_received: datetime | None = None


def audit_totals(store: DeliveryStore) -> AuditTotals:
    m = t.messages
    with store.transaction(commit=False) as tx:
        rows = tx.conn.execute(select(m.c.action, m.c.exit_code, func.count()).group_by(m.c.action, m.c.exit_code))
        counts = {(str(action), int(code)): int(count) for action, code, count in rows}
        last = tx.conn.scalar(select(func.max(m.c.received_at)))
    return AuditTotals(counts, last)
