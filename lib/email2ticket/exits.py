"""The exit-code contract with the MTA, in one place.

Postfix's pipe(8), Exim's pipe transport and procmail all read our exit status. Only 75
(EX_TEMPFAIL) and 71 keep a message queued for a retry under Postfix; 1, 70 and 78 bounce it.
So anything that might succeed later - an unreachable database, a broken configuration file, a
bug - must end as 75, never as Python's default 1. Each failure is an exception carrying its
code and an RFC 3463 enhanced status code. The delivery layer (delivery/answer.py) turns every
outcome and failure into an answer through this module: the exit status, the status code printed
first on stderr (Postfix copies the first line into the bounce or the log and lets it take
precedence over the exit status), and for LMTP the SMTP reply code that says the same.

Two copies exist for start-up cost alone, and tests keep them equal: the thin client's EXIT_CODES
(service/client.py) and the 75 of bin/email2ticket-deliver when the package cannot even be imported.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The sysexits(3) codes email2ticket uses."""

    OK = 0
    DATAERR = 65  # no input at all, no sender anywhere, message too large: bounce
    NOPERM = 77  # policy refused the sender (unknown_senders = reject): bounce
    TEMPFAIL = 75  # anything that may succeed later: the MTA keeps the mail and retries


# The enhanced status code each exit status is reported with, unless an error says better.
DEFAULT_STATUS = {
    ExitCode.OK: "2.0.0",
    ExitCode.DATAERR: "5.6.0",
    ExitCode.NOPERM: "5.7.1",
    ExitCode.TEMPFAIL: "4.3.0",
}


class DeliveryError(Exception):
    """A failure with a known exit code and a one-line reason for the MTA's log or bounce."""

    exit_code: ExitCode = ExitCode.TEMPFAIL
    status: str = "4.3.0"

    def __init__(self, reason: str, *, status: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status

    def first_line(self) -> str:
        """The stderr line Postfix shows: enhanced status code, then one human sentence."""
        return f"{self.status} {self.reason}"


class TemporaryFailure(DeliveryError):
    """May succeed later: database down or locked, timeout, schema missing or outdated."""

    exit_code = ExitCode.TEMPFAIL
    status = "4.3.0"


class DeliveryTimeout(TemporaryFailure):
    """The delivery ran past delivery_timeout; the transaction is rolled back and the MTA retries."""


class DeadlineExceeded(BaseException):
    """The delivery's time ran out while it worked on the message itself (parsing it, cutting the reply).

    A BaseException, like KeyboardInterrupt, so that no `except Exception` on the way (a parser's
    fallback, a separator search) can swallow it; the delivery layer turns it into a DeliveryTimeout
    (75) that counts against the message, so a message that always takes too long is quarantined
    instead of being retried for days (delivery/deadline.py raises it, delivery/run.py answers it).
    """


class ConfigurationError(TemporaryFailure):
    """The configuration file or command line is wrong: an admin must fix it, so defer, never bounce."""

    status = "4.3.5"


class SchemaError(TemporaryFailure):
    """The database schema is missing or at another version than this code expects."""

    status = "4.3.5"


class DataError(DeliveryError):
    """The message itself can never be delivered: empty input, no sender, too large."""

    exit_code = ExitCode.DATAERR
    status = "5.6.0"


def status_line(code: ExitCode, reason: str) -> str:
    """The first stderr line for an outcome that is not an exception (for example a policy reject)."""
    return f"{DEFAULT_STATUS[code]} {reason}"


def smtp_code(exit_code: int, status: str) -> int:
    """The SMTP/LMTP reply code that says what an exit status says (LMTP answers once per recipient).

    0 -> 250; anything temporary -> 451, so the MTA keeps the mail as it would after a 75; a message
    over the size limit (5.3.4) -> 552; any other refusal -> 550.
    """
    if exit_code == ExitCode.OK:
        return 250
    if status.startswith("4"):
        return 451
    return 552 if status == "5.3.4" else 550
