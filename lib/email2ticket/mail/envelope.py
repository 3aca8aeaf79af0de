"""The SMTP envelope the MTA hands us, kept apart from the message headers it may contradict.

Postfix's pipe(8) passes envelope data only on the command line (`--sender ${sender}`); Exim (4.94+)
refuses tainted addresses in a pipe command and instead sets SENDER/RECIPIENT in the environment, as
Postfix's local(8) does for a .forward pipe. Arguments win, then the environment.

"No envelope sender given" (None) and "the null sender" ("") are different facts: the null sender
`<>` is what bounces and auto-replies carry, and later classification depends on it. Postfix passes
it as MAILER-DAEMON unless master.cf sets `null_sender=`, so that spelling is folded into "".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

NULL_SENDER_SPELLINGS = frozenset({"", "<>", "mailer-daemon"})


@dataclass(frozen=True)
class Envelope:
    """Envelope sender/recipient and the MTA's queue id, as far as the MTA told us."""

    sender: str | None = None  # None: not given; "": the null sender <>
    recipient: str | None = None
    queue_id: str | None = None

    @property
    def is_null_sender(self) -> bool:
        return self.sender == ""


def normalise_envelope_sender(value: str | None) -> str | None:
    """Lower-case the address, fold the null-sender spellings into "", keep None as 'not given'."""
    if value is None:
        return None
    cleaned = value.strip().strip("<>").strip().lower()
    return "" if cleaned in NULL_SENDER_SPELLINGS else cleaned


def envelope_from(
    sender: str | None,
    recipient: str | None,
    queue_id: str | None,
    environ: Mapping[str, str],
) -> Envelope:
    """Arguments first, then SENDER/RECIPIENT from the environment (Exim, local(8))."""
    if sender is None:
        sender = environ.get("SENDER")
    if recipient is None:
        recipient = environ.get("RECIPIENT") or environ.get("ORIGINAL_RECIPIENT")
    return Envelope(
        sender=normalise_envelope_sender(sender),
        recipient=recipient.strip().lower() if recipient and recipient.strip() else None,
        queue_id=queue_id or None,
    )
