"""What the MTA is told about one delivery: the exit status, the first stderr line, `--json`, the LMTP reply.

The same `Answer` goes out of every entrance: the pipe command writes its stdout and stderr and exits
with its code, the resident service sends those bytes back to the thin client (which does the same),
and LMTP turns it into one reply line per recipient. The mapping from failures to exit and status
codes is exits.py's; this module only puts it into words.

The first stderr line always starts with the RFC 3463 status code: Postfix reads stdout and stderr as
one stream, and only a leading enhanced status code takes precedence over the exit status.
"""

from __future__ import annotations

import io
import traceback
from typing import Any

from msgspec import Struct

from ..exits import DEFAULT_STATUS, DeliveryError, ExitCode, smtp_code, status_line
from .run import Result, crash_reason


class Answer(Struct, frozen=True):
    """What the pipe command prints and exits with, and what LMTP answers for one recipient."""

    exit_code: int
    status: str  # RFC 3463 enhanced status code
    reason: str  # one sentence: why it failed, or what was done ("create ticket #7")
    stdout: str = ""
    stderr: str = ""

    def lmtp_reply(self, recipient: str) -> str:
        """One recipient's LMTP reply line (RFC 2033 answers once per recipient after DATA)."""
        reason = " ".join(self.reason.split())  # one line, whatever the reason contains
        code = smtp_code(self.exit_code, self.status)
        if code == 250:
            return f"250 {self.status} <{recipient}> {reason}"
        return f"{code} {self.status} {reason}"


def answer(result: Result, *, want_json: bool = False) -> Answer:
    """The answer to the MTA for a delivery's result."""
    out, err = io.StringIO(), io.StringIO()
    outcome, error = result.outcome, result.error
    if outcome is not None:
        code = ExitCode(outcome.exit_code)
        if code != ExitCode.OK:
            print(status_line(code, outcome.decision.status_reason), file=err)
        if want_json:
            print(_json(outcome.as_json()), file=out)
        summary = outcome.action + (f" ticket #{outcome.ticket}" if outcome.ticket is not None else "")
        reason = outcome.decision.status_reason if code else summary
        return Answer(int(code), DEFAULT_STATUS[code], reason, out.getvalue(), err.getvalue())
    if error is not None:
        print(error.first_line(), file=err)
        if _counted(error):  # a suspected poison message: the bug's traceback, for the admin
            traceback.print_exception(error.__cause__, file=err)
        if want_json:
            print(_json(_failure_json(error)), file=out)
        return Answer(int(error.exit_code), error.status, error.reason, out.getvalue(), err.getvalue())
    reason = crash_reason(result.crash)
    print(status_line(ExitCode.TEMPFAIL, reason), file=err)
    if result.crash is not None:
        traceback.print_exception(result.crash, file=err)
    return Answer(int(ExitCode.TEMPFAIL), DEFAULT_STATUS[ExitCode.TEMPFAIL], reason, out.getvalue(), err.getvalue())


def _counted(error: DeliveryError) -> bool:
    from .attempts import SuspectedPoison

    return isinstance(error, SuspectedPoison) and error.__cause__ is not None


def _failure_json(error: DeliveryError) -> dict[str, Any]:
    action = "reject" if error.exit_code != ExitCode.TEMPFAIL else "defer"
    return {"action": action, "ticket": None, "reasons": [f"error: {error.reason}"], "exit_code": int(error.exit_code)}


def _json(value: dict[str, Any]) -> str:
    from ..display import json_text

    return json_text(value, compact=True)
