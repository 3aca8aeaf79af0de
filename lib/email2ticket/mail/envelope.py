"""The SMTP envelope the MTA hands us, kept apart from the message headers it may contradict.

Postfix's pipe(8) passes envelope data only on the command line (`--sender ${sender}`); Exim (4.94+)
refuses tainted addresses in a pipe command and instead sets SENDER/RECIPIENT in the environment, as
Postfix's local(8) does for a .forward pipe. Arguments win, then the environment. local(8) also sets
ORIGINAL_RECIPIENT, the address as the sender wrote it before any aliasing or rewriting (`helpdesk+7@example.org`,
where RECIPIENT may read `e2t+7@localhost`): it is what chooses a queue and names a ticket by its plus-address
(rules/routing.py), so it comes before RECIPIENT, as the pipe(8) wiring passes `${original_recipient}`.

"No envelope sender given" (None) and "the null sender" ("") are different facts: the null sender
`<>` is what bounces and auto-replies carry, and later classification depends on it. Postfix passes
it as MAILER-DAEMON unless master.cf sets `null_sender=`, so that spelling is folded into "".

The MTA hands envelope data over as bytes, and nothing guarantees they are UTF-8 (`--sender $'caf\xe9@...'`,
an 8-bit `MAIL FROM` over LMTP). Python keeps such bytes as surrogate escapes, which no database column and
no log line can hold; so they are decoded here the way undeclared 8-bit bytes in a header are (UTF-8, else
cp1252: mail/mime/text.py), and the envelope carries a note saying so, which the audit record keeps.
"""

from __future__ import annotations

from collections.abc import Mapping

from msgspec import Struct

NULL_SENDER_SPELLINGS = frozenset({"", "<>", "mailer-daemon"})
_ESCAPED_BYTES = range(0xDC80, 0xDD00)  # how Python's surrogateescape keeps a byte that is not UTF-8


class Envelope(Struct, frozen=True):
    """Envelope sender/recipient and the MTA's queue id, as far as the MTA told us."""

    sender: str | None = None  # None: not given; "": the null sender <>
    recipient: str | None = None
    queue_id: str | None = None
    notes: tuple[str, ...] = ()  # what was wrong with the bytes the MTA handed over, and what we made of it
    # Came over LMTP on loopback TCP, where every local user can connect: nothing proves our MTA wrote its
    # headers, so its Authentication-Results are not honoured (service/lmtp.py sets it).
    loopback_tcp: bool = False

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
    """Arguments first, then SENDER and ORIGINAL_RECIPIENT/RECIPIENT from the environment (local(8), Exim); bytes
    that are not UTF-8 are decoded (see the module's docstring), never passed on as surrogates."""
    if sender is None:
        sender = environ.get("SENDER")
    if recipient is None:
        recipient = environ.get("ORIGINAL_RECIPIENT") or environ.get("RECIPIENT")
    notes: list[str] = []
    sender, recipient, queue_id = (
        _decoded(value, what, notes)
        for value, what in ((sender, "sender"), (recipient, "recipient"), (queue_id, "queue id"))
    )
    return Envelope(
        sender=normalise_envelope_sender(sender),
        recipient=recipient.strip().lower() if recipient and recipient.strip() else None,
        queue_id=queue_id or None,
        notes=tuple(notes),
    )


def _decoded(value: str | None, what: str, notes: list[str]) -> str | None:
    """`value` with its surrogate-escaped bytes decoded like a header's, and a note naming those bytes."""
    if value is None or value.isascii() or not any(ord(char) in _ESCAPED_BYTES for char in value):
        return value  # the usual case costs no import
    from .mime.text import clean

    escaped = "".join(f"\\x{ord(char) - 0xDC00:02x}" for char in value if ord(char) in _ESCAPED_BYTES)
    text = clean(value)
    notes.append(f"the envelope {what} has bytes that are not UTF-8 ({escaped}): read as {text!r}")
    return text
