"""What both commands share: an argument parser that never exits 2, the exit-code mapping, and printing
mail-derived text to a terminal (terminal_safe) or as JSON (json_text), both from display.py.

argparse exits with status 2 on a bad command line; under Postfix that would bounce the mail for
what is really a wiring mistake in master.cf. Our parser raises ConfigurationError instead, which
maps to 75 like every other configuration problem.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

# Every command in cli/ prints through these two; they live in display.py so the pipe's --json uses them too.
from ..display import json_text as json_text
from ..display import terminal_safe as terminal_safe
from ..exits import DeliveryError, ExitCode, status_line

if TYPE_CHECKING:
    from ..config.model import Config
    from ..store.admin import AdminStore
    from ..store.delivery import DeliveryStore


class ArgumentError(Exception):
    """A malformed command line; each command decides what exit status that means."""


class Parser(argparse.ArgumentParser):
    """argparse without sys.exit(2): errors raise, --help still prints and exits 0."""

    def error(self, message: str) -> NoReturn:
        raise ArgumentError(f"{self.prog}: {message}")


def report_failure(error: DeliveryError, stream: TextIO = sys.stderr) -> ExitCode:
    """First line: enhanced status code and one sentence (Postfix puts it in the bounce)."""
    print(terminal_safe(error.first_line()), file=stream, flush=True)
    return error.exit_code


def report_crash(exc: BaseException, stream: TextIO = sys.stderr) -> ExitCode:
    """An unexpected error: keep the mail queued (75) and leave the traceback for the admin."""
    line = status_line(ExitCode.TEMPFAIL, f"internal error: {type(exc).__name__}: {exc}".splitlines()[0])
    print(terminal_safe(line), file=stream)
    print(terminal_safe("".join(traceback.format_exception(exc)), multiline=True), end="", file=stream)
    return ExitCode.TEMPFAIL


def admin_store(config: Config) -> AdminStore:
    """The admin commands' store on the configured database."""
    from ..store.admin import AdminStore

    return AdminStore(config.resolved_database_url(), lock_timeout=config.lock_timeout)


def print_json(value: Any) -> None:
    print(json_text(value))


def delivery_store(config: Config) -> DeliveryStore:
    """The delivery store on the configured database (notifications, release)."""
    from ..store.delivery import DeliveryStore

    return DeliveryStore(config.resolved_database_url(), lock_timeout=config.lock_timeout)
