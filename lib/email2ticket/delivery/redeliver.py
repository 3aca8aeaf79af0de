"""Deliver a stored message again: an admin's `messages release` and `quarantine replay` are one operation.

Both take the raw bytes the audit trail kept and deliver them as if they had just arrived, through the
same delivery layer as the MTA's mail, with today's code and rules. They differ only in what they
start from and what they skip:

  release  a message a loop rule held or ignored: skips exactly the rule that stopped it, and the
           stored record becomes `released`
  replay   a quarantined message: skips nothing (the bug it tripped may be fixed), and the stored
           record becomes `replayed`, with a note naming the new record

The record changes state in the same transaction as the delivery, so a failed redelivery leaves it
where it was. A failure is raised to the admin at once: nothing is counted, nothing is retried.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .outcome import Outcome, Redelivery
from .run import deliver_message, log_result, notify

if TYPE_CHECKING:
    from ..config.model import Config
    from ..store.delivery import DeliveryStore

Kind = Literal["release", "replay"]


def redeliver(row: int, kind: Kind, store: DeliveryStore, config: Config) -> tuple[Outcome, str | None]:
    """Deliver the stored message `row` again; returns the outcome and the rule a release skipped.

    Raises AdminError for a record this operation does not apply to, and the delivery's own
    failure (a DeliveryError, or the unexpected error itself) when it fails again.
    """
    from ..store.admin import AdminError

    stored = store.stored_message(row)
    if kind == "release":
        if stored is None:
            raise AdminError(f"there is no message {row} in the audit trail")
        if stored.action not in ("hold", "ignore") or not stored.held_by:
            raise AdminError(f"message {row} is not held or ignored (action {stored.action})")
        redelivery = Redelivery(row, stored.held_by, "released")
    else:
        if stored is None or stored.action != "quarantine":
            raise AdminError(f"message {row} is not in the quarantine (see `email2ticket quarantine list`)")
        redelivery = Redelivery(row, None, "replayed")
    result = deliver_message(stored.raw, stored.envelope, store, config, redelivery=redelivery)
    log_result(result, config)
    if result.error is not None:
        raise result.error
    if result.crash is not None:
        raise result.crash
    assert result.outcome is not None
    notify(result, store, config)
    return result.outcome, redelivery.skip
