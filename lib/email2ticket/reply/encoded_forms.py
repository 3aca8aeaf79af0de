"""Separators that arrive encoded: quoted-printable or HTML inside a text body, found on a decoded view.

Some text bodies still carry an encoding: a client that double-encodes ("-----Urspr=C3=BCngliche
Nachricht-----", a soft line break "wr=\\note:"), or one that pastes HTML source into text/plain
("Von:&nbsp;Bob<br>Gesendet: ..."). Separators are also searched in a decoded view of such a body, in which
quoted-printable escapes and soft breaks are decoded, entities unescaped and tags dropped (block tags become
line breaks); a match there is mapped back to the same place in the body as sent, so the comment keeps the
author's text exactly as it arrived.

Only bodies that show such forms get a view, and only their first VIEW_LIMIT characters (the new text and
the first separator are at the top): decoding runs in Python, so a 5 MB body must not pay for it twice.
"""

from __future__ import annotations

import bisect
import functools
import re

from msgspec import Struct

VIEW_LIMIT = 1 << 19

# Every alternative of _MARKERS starts with one of these characters (which have no other case): a text
# without any of them shows no encoded form, and most bodies are answered without compiling a pattern.
_MARKER_STARTS = ("=", "&", "<")
_MARKERS = r"=\n|=[0-9A-F]{2}|&(?:#\d{1,7}|#x[0-9a-f]{1,6}|[a-z]{2,8}\d?);|</?[a-z][a-z0-9]*\b[^<>@\n]*>"
_QP_SIGNS = r"=\n|=3D|=20|=C[2-9A-F]=[89AB][0-9A-F]"
_QP_TOKENS = r"(?P<soft>=\n)|(?P<hex>(?:=[0-9A-F]{2})+)|"
_HTML_TOKENS = (
    r"(?P<entity>&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,8}\d?);)"
    r"|(?P<block></?(?:br|p|div|tr|li|h[1-6]|hr|blockquote|table)\b[^<>@\n]{0,300}>)"
    r"|(?P<tag></?[a-zA-Z][a-zA-Z0-9:]*\b[^<>@\n]{0,300}>)"
)


@functools.cache
def _pattern(source: str, flags: int = 0) -> re.Pattern[str]:
    """Compiled on first use: the sre compiler runs in Python, and most deliveries never need these."""
    return re.compile(source, flags)


class DecodedView(Struct, frozen=True):
    """The decoded text, and where each of its pieces came from in the text as sent.

    Piece i starts at `view_starts[i]` in the view and at `sent_starts[i]` in the original; an unchanged
    piece maps character by character, a decoded one (`verbatim[i]` False) maps to its start.
    """

    text: str
    view_starts: tuple[int, ...]
    sent_starts: tuple[int, ...]
    verbatim: tuple[bool, ...]

    def sent_offset(self, view_offset: int) -> int:
        """The offset in the text as sent of a character offset in the view."""
        piece = bisect.bisect_right(self.view_starts, view_offset) - 1
        if piece < 0:
            return view_offset
        delta = view_offset - self.view_starts[piece] if self.verbatim[piece] else 0
        return self.sent_starts[piece] + delta


def _decode_qp(escapes: str) -> str:
    data = bytes(int(escapes[i + 1 : i + 3], 16) for i in range(0, len(escapes), 3))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _replacement(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "soft" or kind == "tag":
        return ""
    if kind == "hex":
        return _decode_qp(match.group())
    if kind == "entity":
        import html  # only for a body with entities: the module loads a table of 2,000 names

        return html.unescape(match.group())
    return "\n"  # a block tag


def decoded_view(text: str) -> DecodedView | None:
    """The view of `text` with encoded forms decoded, or None when it shows none (the usual case)."""
    head = text[:VIEW_LIMIT]
    if not any(start in head for start in _MARKER_STARTS) or not _pattern(_MARKERS, re.I).search(head):
        return None
    tokens = _pattern(_QP_TOKENS + _HTML_TOKENS) if _pattern(_QP_SIGNS).search(head) else _pattern(_HTML_TOKENS)
    pieces: list[str] = []
    view_starts: list[int] = []
    sent_starts: list[int] = []
    verbatim: list[bool] = []
    position = view_length = 0
    for match in tokens.finditer(head):
        for piece, sent_start, same in ((head[position : match.start()], position, True), (None, match.start(), False)):
            value = piece if piece is not None else _replacement(match)
            view_starts.append(view_length)
            sent_starts.append(sent_start)
            verbatim.append(same)
            pieces.append(value)
            view_length += len(value)
        position = match.end()
    view_starts.append(view_length)
    sent_starts.append(position)
    verbatim.append(True)
    pieces.append(head[position:])
    return DecodedView("".join(pieces), tuple(view_starts), tuple(sent_starts), tuple(verbatim))
