"""The quarantine as the admin sees it: list, show and delete poison messages (`email2ticket quarantine`).

A quarantined message is an audit record with action `quarantine` (delivery/attempts.py writes it, with
its failed attempts as `defer` records of the same idempotency key). Replaying one is a delivery like
any other, done by the delivery layer (delivery/redeliver.py).
"""

from __future__ import annotations

import json
from typing import Any

from msgspec import Struct
from msgspec.structs import asdict

DEFER = "defer"
QUARANTINE = "quarantine"


class Quarantined(Struct, frozen=True):
    """One quarantined message as `quarantine list` shows it."""

    id: int
    received_at: str
    attempts: int
    envelope_sender: str | None
    envelope_recipient: str | None
    sender: str | None
    message_id: str | None
    subject: str | None
    error: str
    size: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class QuarantineStore:
    """Quarantine queries over the audit table; replaying goes through the delivery layer (delivery/redeliver.py)."""

    def __init__(self, url: str, *, lock_timeout: float) -> None:
        from .admin import AdminStore

        self.url = url
        self.lock_timeout = lock_timeout
        self.admin = AdminStore(url, lock_timeout=lock_timeout)

    def entries(self) -> list[Quarantined]:
        from sqlalchemy import func, select

        from .models import Message

        with self.admin.session() as s:
            rows = s.scalars(select(Message).where(Message.action == QUARANTINE).order_by(Message.id)).all()
            counts = dict(
                s.execute(
                    select(Message.idempotency_key, func.count())
                    .where(Message.idempotency_key.in_({r.idempotency_key for r in rows}))
                    .where(Message.action.in_((DEFER, QUARANTINE)))
                    .group_by(Message.idempotency_key)
                ).all()
            )
            return [_quarantined(r, int(counts.get(r.idempotency_key, 1))) for r in rows]

    def count(self) -> int:
        from sqlalchemy import func, select

        from .models import Message

        with self.admin.session() as s:
            return int(s.scalar(select(func.count()).where(Message.action == QUARANTINE)) or 0)

    def show(self, row: int) -> tuple[Quarantined, list[str], bytes]:
        with self.admin.session() as s:
            message = self._get(s, row)
            return _quarantined(message, 0), json.loads(message.reasons), message.raw

    def delete(self, row: int) -> int:
        """Drop the quarantined message and its failed attempts; returns how many records went."""
        from sqlalchemy import delete

        from .models import Message

        with self.admin.session() as s:
            message = self._get(s, row)
            result = s.execute(
                delete(Message)
                .where(Message.idempotency_key == message.idempotency_key)
                .where(Message.action.in_((DEFER, QUARANTINE)))
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def ids(self) -> list[int]:
        return [q.id for q in self.entries()]

    def _get(self, s: Any, row: int) -> Any:
        from .admin import AdminError
        from .models import Message

        message = s.get(Message, row)
        if message is None or message.action != QUARANTINE:
            raise AdminError(f"message {row} is not in the quarantine (see `email2ticket quarantine list`)")
        return message


def _quarantined(m: Any, attempts: int) -> Quarantined:
    from .admin import iso

    reasons = json.loads(m.reasons)
    error = next((r.split(": ", 1)[1] for r in reasons if r.startswith("internal-error: ")), "")
    return Quarantined(
        id=m.id,
        received_at=iso(m.received_at),
        attempts=attempts,
        envelope_sender=m.envelope_sender,
        envelope_recipient=m.envelope_recipient,
        sender=m.sender,
        message_id=m.message_id,
        subject=m.subject,
        error=error,
        size=m.size,
    )
