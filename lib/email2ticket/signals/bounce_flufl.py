"""Mailman's flufl.bounce detectors, for delivery failure reports that are not RFC 3464 reports.

Run only on bounce candidates (signals/bounce.py decides which), over a bounded copy of the message: the detectors'
patterns take time quadratic in a line's length, so no line reaches them longer than MAX_LINE bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from ..mail.message import normalise_address

if TYPE_CHECKING:
    from email.message import Message

# flufl.bounce's LLNL detector takes any line with ", someone@example.org," for a failed recipient. Mailman only
# shows it mail sent to a list's bounce address; here it would read a quoted "To: a@x, b@y, c@z" line of a reply
# (talon comcast.eml, zammad mail054.box) as a hard bounce of b@y.
UNRELIABLE_DETECTORS = frozenset({"LLNL"})
MAX_SCAN_BYTES = 256 * 1024
MAX_LINE = 998  # RFC 5322's line limit


def run_flufl(raw: bytes) -> tuple[str, frozenset[bytes], frozenset[bytes]] | None:
    """(detector name, temporary, permanent) of the first flufl.bounce detector that finds a recipient."""
    try:
        msg = _bounded_message(raw)
        detectors = flufl_detectors()
    except Exception:  # flufl.bounce missing, or the compat32 parser failing (e.g. RecursionError)
        return None
    for name, process in detectors:
        try:
            temporary, permanent = process(msg)
        except Exception:  # one detector choking on odd input must not hide the others' findings
            continue
        if temporary or permanent:
            return name, frozenset(temporary), frozenset(permanent)
    return None


def flufl_detectors() -> list[tuple[str, Callable[[Message], tuple[frozenset[bytes], frozenset[bytes]]]]]:
    """flufl.bounce's detectors in its own order, named for the decision record, without UNRELIABLE_DETECTORS.

    `all_failures` runs the same list but neither says which detector answered, nor survives one that raises, nor
    can leave one out; the list is private, so a flufl.bounce without it falls back to `all_failures`.
    """
    try:
        from flufl.bounce._scan import _DETECTORS as classes

        return [(cls.__name__, cls().process) for cls in classes if cls.__name__ not in UNRELIABLE_DETECTORS]
    except (ImportError, AttributeError, TypeError):
        from flufl.bounce import all_failures

        return [("all detectors", all_failures)]


def _bounded_message(raw: bytes) -> Message:
    """A compat32 Message of the first MAX_SCAN_BYTES with no line (raw or decoded) over MAX_LINE bytes.

    flufl.bounce's patterns (e.g. '\\s*(?P<addr>\\S+@\\S+)') take time quadratic in a line's length: a hostile
    40 kB line costs seconds. Base64 and quoted-printable parts are decoded here and their long lines broken.
    """
    from email import message_from_bytes
    from email.policy import compat32

    lines = raw[:MAX_SCAN_BYTES].splitlines(keepends=True)
    clipped = b"".join(line if len(line) <= MAX_LINE else line[:MAX_LINE] + b"\n" for line in lines)
    msg = message_from_bytes(clipped, policy=compat32)
    for part in msg.walk():
        encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
        if not part.is_multipart() and encoding in ("base64", "quoted-printable"):
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                wrapped = re.sub(rb"[^\r\n]{%d}" % MAX_LINE, lambda m: m.group(0) + b"\n", data)
                part.set_payload(wrapped.decode("ascii", errors="surrogateescape"))
                part.replace_header("content-transfer-encoding", "8bit")
    return msg


def flufl_addresses(found: Iterable[bytes]) -> Iterator[str]:
    for item in sorted(found):
        address = normalise_address(item.decode("ascii", errors="replace"))
        if address:
            yield address
