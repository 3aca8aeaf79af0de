"""Where email2ticket's log lines go: one line per delivery, and error lines that need a human.

A delivery line carries the MTA's queue id, so `grep` on Postfix's queue id finds both halves of the
story. Lines go to syslog when there is one, else to a configured file; never to stdout, which Postfix
reads as our answer, and never fatally: a delivery that committed does not fail because logging did.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

from .config.model import LoggingConfig
from .display import printable


def token(value: str | None) -> str:
    """A log field's value as one token: as it is when it is plain printable ASCII without quotes, else
    quoted as a Python string literal. A Message-ID or queue id comes from the sender or the MTA; one
    holding spaces, line breaks or bidirectional controls must not forge fields or lines of its own."""
    if not value:
        return "-"
    if all("!" <= char <= "~" for char in value) and "'" not in value and '"' not in value and "\\" not in value:
        return value
    return repr(value)  # escapes line breaks and every character that is not printable (bidi controls too)


def format_line(
    *,
    queue_id: str | None,
    message_id: str | None,
    action: str,
    ticket: int | None,
    exit_code: int,
    duration: float,
    note: str = "",
) -> str:
    """The one line a delivery logs."""
    fields = [
        f"queue_id={token(queue_id)}",
        f"message_id={token(message_id)}",
        f"action={action}",
        f"ticket={ticket if ticket is not None else '-'}",
        f"exit={exit_code}",
        f"duration={duration * 1000:.0f}ms",
    ]
    if note:
        fields.append(f"reason={note!r}")
    return "delivery " + " ".join(fields)


def write_line(line: str, config: LoggingConfig, *, error: bool = False) -> None:
    """Send the line where the configuration says, at error priority with `error` (a quarantined message,
    a notification that could not be sent); failures go to stderr, never up the stack. Lines carry text
    from mail (Message-IDs, addresses, reasons): whatever is not printable is escaped here, for every line."""
    line = printable(line)
    target = config.target
    try:
        if target == "auto":
            target = "syslog" if os.path.exists("/dev/log") else ("file" if config.file else "none")
        if target == "syslog":
            _to_syslog(line, config.facility, error=error)
        elif target == "file" and config.file:
            # Created readable by its owner only: the lines carry Message-IDs and reasons naming senders.
            fd = os.open(config.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with open(fd, "a", encoding="utf-8") as handle:
                stamp = datetime.now(UTC).isoformat(timespec="seconds")
                handle.write(f"{stamp} email2ticket[{os.getpid()}] {'error: ' if error else ''}{line}\n")
    except Exception as exc:  # logging must never change the delivery's outcome
        kind = "error" if error else "delivery"
        print(f"email2ticket: could not write the {kind} log ({target}): {exc}", file=sys.stderr)


def _to_syslog(line: str, facility: str, *, error: bool) -> None:
    import syslog

    code = getattr(syslog, f"LOG_{facility.upper()}", syslog.LOG_MAIL)
    syslog.openlog("email2ticket", syslog.LOG_PID, code)
    syslog.syslog(syslog.LOG_ERR if error else syslog.LOG_INFO, line)
    syslog.closelog()
