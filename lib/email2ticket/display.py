"""How text that came with a message is shown: on a terminal, as JSON, and where both end up.

Mail is hostile input and every command prints some of it: a Subject, an address, a file name, a reason
that quotes them. A terminal obeys control characters and reorders text around bidirectional overrides,
so what reaches it is escaped here, by the admin commands and by the pipe's `--json` alike.
"""

from __future__ import annotations

import json
from typing import Any

# Every character a terminal may obey: C0 (ESC starts its sequences, BEL ends a title, CR returns the cursor),
# DEL, and C1 (U+009B is a CSI to many terminals also when it arrives as UTF-8). Tab only moves the cursor right.
# The bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) reorder what follows
# them on screen ("Trojan Source"): a file name can end in "fdp.exe" and read as "exe.pdf". The marks
# (U+200E, U+200F, U+061C) only nudge neutral characters and belong to ordinary right-to-left text.
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_CONTROLS = [*range(0x20), 0x7F, *range(0x80, 0xA0)]
_ONE_LINE = {code: f"\\x{code:02x}" for code in _CONTROLS if code != 0x09}
_ONE_LINE |= {code: f"\\u{code:04x}" for code in _BIDI}
_LINES = {code: text for code, text in _ONE_LINE.items() if code != 0x0A}
_JSON_C1 = {code: f"\\u{code:04x}" for code in [*_CONTROLS, *_BIDI] if code >= 0x7F}


def terminal_safe(text: object, *, multiline: bool = False) -> str:
    """Mail-derived text as the admin's terminal may be given it: every control character shown, none obeyed.

    A Subject, a file name or a body can carry ESC sequences (a new window title, a cleared screen, the cursor
    moved up to hide a line, a colour for the rest of the listing). Each control character (C0 but tab, DEL,
    and C1) is printed as a Python-style escape: ESC as `\\x1b`, BEL as `\\x07`, the 8-bit CSI as `\\x9b`,
    DEL as `\\x7f`, a bidirectional override as `\\u202e`. A one-line field (a subject, an address, a file
    name, a reason) shows its line breaks the same way (`\\x0a`), so that it cannot fake lines of a listing;
    `multiline=True` (a description, a comment, a rendered report) keeps them, with CRLF as LF. A backslash
    is left as it is: text that already reads `\\x1b` looks like an escaped ESC, which is harmless. Every
    human-readable printer in cli/ passes mail-derived text through here; `--json` (json_text) and the
    byte-exact `--raw` do not.
    """
    value = str(text)
    if multiline:
        return value.replace("\r\n", "\n").translate(_LINES)
    return value.translate(_ONE_LINE)


def json_text(value: Any, *, indent: int | None = None, compact: bool = False) -> str:
    """JSON as the commands print it: UTF-8 kept, and C1, DEL and the bidi overrides written as \\u escapes.

    json.dumps escapes C0 already; the same text with U+0080-U+009F and U+007F escaped is the same JSON to
    any reader, and no longer a terminal's control sequence when a script's output is looked at.
    """
    separators = (",", ":") if compact else None
    return json.dumps(value, ensure_ascii=False, indent=indent, separators=separators).translate(_JSON_C1)


def printable(text: str) -> str:
    """`text` with every character that is not printable (line breaks, terminal escapes, C1 and
    bidirectional controls) written as its Python escape: for a log line, which stays one honest line."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
