"""One line naming any error: for the MTA's status line, the logs, the audit trail and the defect notes.

Every error that reaches an admin is described here, so the same failure reads the same wherever it
is shown. It imports nothing: the thin client (service/client.py) describes socket errors with it on
the MTA's every delivery, where each import costs start-up time.
"""

from __future__ import annotations

MAX_LENGTH = 300  # a reason is one line for a log or a bounce, not a dump


def describe_error(exc: BaseException, *, name_type: bool = True) -> str:
    """The error in one line.

    Our own failures (exits.DeliveryError: they carry a `reason`) read as their reason, followed by the
    first line of what caused them when that adds something (the database's own words). Anything else
    reads "TypeName: first line" with `name_type`, or just the first line of the words closest to the
    cause without it: a database driver's message rather than SQLAlchemy's statement dump, an OS
    error's strerror ("Connection refused"), "timed out".
    """
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and hasattr(exc, "exit_code"):
        cause = getattr(exc.__cause__, "orig", None) or exc.__cause__
        detail = first_line(str(cause)) if cause is not None else ""
        return f"{reason} ({detail})" if detail and detail not in reason else reason
    if name_type:
        text = first_line(str(exc))
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    origin = getattr(exc, "orig", None) or exc
    if isinstance(origin, OSError) and origin.strerror:
        return origin.strerror
    text = first_line(str(origin))
    if text:
        return text
    return "timed out" if isinstance(origin, TimeoutError) else type(origin).__name__


def first_line(text: str) -> str:
    """The first non-blank line, stripped and cut to MAX_LENGTH characters."""
    for line in text.strip().splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= MAX_LENGTH else line[: MAX_LENGTH - 1] + "…"
    return ""
