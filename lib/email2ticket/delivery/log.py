"""One log line per delivery, for the admin tracing a mail through the MTA's log and ours.

The line carries the MTA's queue id, so `grep` on Postfix's queue id finds both halves of the story.
It goes to syslog when there is one, else to a configured file; never to stdout, which Postfix reads
as our answer, and never fatally: a delivery that committed does not fail because logging did.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

from ..config.model import LoggingConfig


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
    fields = [
        f"queue_id={queue_id or '-'}",
        f"message_id={message_id or '-'}",
        f"action={action}",
        f"ticket={ticket if ticket is not None else '-'}",
        f"exit={exit_code}",
        f"duration={duration * 1000:.0f}ms",
    ]
    if note:
        fields.append(f"reason={note!r}")
    return "delivery " + " ".join(fields)


def write_line(line: str, config: LoggingConfig) -> None:
    """Send the line where the configuration says; failures go to stderr, never up the stack."""
    target = config.target
    try:
        if target == "auto":
            target = "syslog" if os.path.exists("/dev/log") else ("file" if config.file else "none")
        if target == "syslog":
            _to_syslog(line, config.facility)
        elif target == "file" and config.file:
            with open(config.file, "a", encoding="utf-8") as handle:
                handle.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} email2ticket[{os.getpid()}] {line}\n")
    except Exception as exc:  # logging must never change the delivery's outcome
        print(f"email2ticket: could not write the delivery log ({target}): {exc}", file=sys.stderr)


def _to_syslog(line: str, facility: str) -> None:
    import syslog

    code = getattr(syslog, f"LOG_{facility.upper()}", syslog.LOG_MAIL)
    syslog.openlog("email2ticket", syslog.LOG_PID, code)
    syslog.syslog(syslog.LOG_INFO, line)
    syslog.closelog()
