"""What both commands share: an argument parser that never exits 2, and the exit-code mapping.

argparse exits with status 2 on a bad command line; under Postfix that would bounce the mail for
what is really a wiring mistake in master.cf. Our parser raises ConfigurationError instead, which
maps to 75 like every other configuration problem.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import NoReturn, TextIO

from ..exits import DeliveryError, ExitCode, status_line


class ArgumentError(Exception):
    """A malformed command line; each command decides what exit status that means."""


class Parser(argparse.ArgumentParser):
    """argparse without sys.exit(2): errors raise, --help still prints and exits 0."""

    def error(self, message: str) -> NoReturn:
        raise ArgumentError(f"{self.prog}: {message}")


def report_failure(error: DeliveryError, stream: TextIO = sys.stderr) -> ExitCode:
    """First line: enhanced status code and one sentence (Postfix puts it in the bounce)."""
    print(error.first_line(), file=stream, flush=True)
    return error.exit_code


def report_crash(exc: BaseException, stream: TextIO = sys.stderr) -> ExitCode:
    """An unexpected error: keep the mail queued (75) and leave the traceback for the admin."""
    print(status_line(ExitCode.TEMPFAIL, f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]), file=stream)
    traceback.print_exception(exc, file=stream)
    return ExitCode.TEMPFAIL
