"""What both commands share: an argument parser that never exits 2, the exit-code mapping, and printing
mail-derived text to a terminal (terminal_safe) or as JSON (json_text).

argparse exits with status 2 on a bad command line; under Postfix that would bounce the mail for
what is really a wiring mistake in master.cf. Our parser raises ConfigurationError instead, which
maps to 75 like every other configuration problem.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

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


# Every character a terminal may obey: C0 (ESC starts its sequences, BEL ends a title, CR returns the cursor),
# DEL, and C1 (U+009B is a CSI to many terminals also when it arrives as UTF-8). Tab only moves the cursor right.
_CONTROLS = [*range(0x20), 0x7F, *range(0x80, 0xA0)]
_ONE_LINE = {code: f"\\x{code:02x}" for code in _CONTROLS if code != 0x09}
_LINES = {code: text for code, text in _ONE_LINE.items() if code != 0x0A}
_JSON_C1 = {code: f"\\u{code:04x}" for code in _CONTROLS if code >= 0x7F}


def terminal_safe(text: object, *, multiline: bool = False) -> str:
    """Mail-derived text as the admin's terminal may be given it: every control character shown, none obeyed.

    A Subject, a file name or a body can carry ESC sequences (a new window title, a cleared screen, the cursor
    moved up to hide a line, a colour for the rest of the listing). Each control character (C0 but tab, DEL,
    and C1) is printed as a Python-style escape: ESC as `\\x1b`, BEL as `\\x07`, the 8-bit CSI as `\\x9b`,
    DEL as `\\x7f`. A one-line field (a subject, an address, a file name, a reason) shows its line breaks the
    same way (`\\x0a`), so that it cannot fake lines of a listing; `multiline=True` (a description, a
    comment, a rendered report) keeps them, with CRLF as LF. A backslash is left as it is: text that already
    reads `\\x1b` looks like an escaped ESC, which is harmless. Every human-readable printer in cli/ passes
    mail-derived text through here; `--json` (json_text) and the byte-exact `--raw` do not.
    """
    value = str(text)
    if multiline:
        return value.replace("\r\n", "\n").translate(_LINES)
    return value.translate(_ONE_LINE)


def json_text(value: Any, *, indent: int | None = None) -> str:
    """JSON as the admin commands print it: UTF-8 kept, and C1 and DEL written as \\u escapes.

    json.dumps escapes C0 already; the same text with U+0080-U+009F and U+007F escaped is the same JSON to
    any reader, and no longer a terminal's control sequence when a script's output is looked at.
    """
    return json.dumps(value, ensure_ascii=False, indent=indent).translate(_JSON_C1)


def print_json(value: Any) -> None:
    print(json_text(value))


def delivery_store(config: Config) -> DeliveryStore:
    """The delivery store on the configured database (notifications, release)."""
    from ..store.delivery import DeliveryStore

    return DeliveryStore(config.resolved_database_url(), lock_timeout=config.lock_timeout)
