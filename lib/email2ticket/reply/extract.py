"""Cutting the quoted history off a reply, so that a ticket comment holds only what is new.

Every mail client quotes the previous message below a marker of its own: Outlook's "-----Original
Message-----" or its From:/Sent: block, Gmail's "On <date>, <name> wrote:", and the same in every language the
client speaks. Such a marker is a *separator* (separators.py; the built-in list is separator_list.py). The
rule is the seed's: the new part of a reply is what stands above the EARLIEST line where any separator matches
(`reply/search.py`), also when the separator arrived quoted-printable or HTML-encoded (`reply/encoded_forms.py`).
When that would leave nothing (a bottom-posted reply, or no new text at all) the whole body is kept: an empty
comment would lose the mail, some quoted history only costs scrolling.

`extract_reply` is what delivery runs on a reply: for an HTML body, the quote is cut structurally first
(`reply/html.py`), the kept part converted to text, and the separators applied to that; device taglines end
the new part (they are separators too), and a dangling attribution line and trailing whitespace are removed
(`reply/taglines.py`). Nothing here does I/O.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

from msgspec import Struct
from msgspec.structs import replace

from .encoded_forms import decoded_view
from .search import Hit, check_deadline, first_hit
from .separator_list import DEFAULT_SEPARATORS
from .separators import InvalidSeparator, Separator, effective_separators, parse_separator, separators_from_edits
from .taglines import tidy_comment

if TYPE_CHECKING:
    from ..mail.message import ParsedMessage

__all__ = [
    "DEFAULT_SEPARATORS",
    "InvalidSeparator",
    "ReplyCut",
    "Separator",
    "effective_separators",
    "extract_reply",
    "parse_separator",
    "separators_from_edits",
    "strip_reply",
]


class ReplyCut(Struct, frozen=True):
    """What was kept of a reply and why, so the comment can say which separator cut the mail.

    `text` always has LF line endings. `separator` and `line` say where the body was cut (None when it was
    not). `quote_line` and `quote_separator` say where the quoted history starts and what matched there, also
    when the whole body was kept because nothing stood above it, so that `separators test` can show it.
    `from_html` is set when the cut was made in the HTML body (`line` then counts lines of its text form).
    `skipped` names each separator that could not be evaluated, so that a broken stored separator shows up in
    the delivery log instead of silently never matching.
    """

    text: str
    separator: str | None
    line: int | None
    skipped: tuple[str, ...]
    quote_line: int | None = None
    quote_separator: str | None = None
    from_html: bool = False


def _earliest(
    text: str, data: bytes, separators: Sequence[str], skipped: list[str], deadline: float | None
) -> Hit | None:
    """The earliest separator match in the body as sent or in its decoded view, as a byte offset in `data`."""
    hit = first_hit(data, separators, skipped, deadline)
    check_deadline(deadline)
    view = decoded_view(text)
    if view is None:
        return hit
    view_data = view.text.encode("utf-8", "surrogatepass")
    view_hit = first_hit(view_data, separators, [], deadline)
    if view_hit is None:
        return hit
    sent = view.sent_offset(len(view_data[: view_hit.offset].decode("utf-8", "surrogatepass")))
    offset = len(text[:sent].encode("utf-8", "surrogatepass"))
    if hit is None or (offset, view_hit.index) < (hit.offset, hit.index):
        return Hit(offset=offset, index=view_hit.index)
    return hit


def strip_reply(body: str, separators: Sequence[str], *, deadline: float | None = None) -> ReplyCut:
    """The new part of a reply: everything above the first line where a separator matches.

    When that would leave nothing (the separator is on the first line, as in a bottom-posted reply, or
    only blank lines precede it) the whole body is kept: an empty comment would lose the mail, a
    comment with some quoted history only costs a little scrolling. `deadline`: as for extract_reply.
    """
    text = body.replace("\r\n", "\n")
    skipped: list[str] = []
    data = text.encode("utf-8", "surrogatepass")
    hit = _earliest(text, data, separators, skipped, deadline)
    if hit is None:
        return ReplyCut(text=text, separator=None, line=None, skipped=tuple(skipped))
    kept = data[: hit.offset].decode("utf-8", "surrogatepass").rstrip()
    line = data.count(b"\n", 0, hit.offset) + 1
    matched = separators[hit.index]
    if not kept.strip():
        return ReplyCut(text, None, None, tuple(skipped), quote_line=line, quote_separator=matched)
    return ReplyCut(kept, matched, line, tuple(skipped), quote_line=line, quote_separator=matched)


def extract_reply(message: ParsedMessage, separators: Sequence[str], *, deadline: float | None = None) -> ReplyCut:
    """The comment a reply adds to its ticket: the one function delivery, the benchmark and `separators test` use.

    A text/plain body is cut with the separators. An HTML-only body is cut where its quote container starts
    (Gmail, Outlook, Thunderbird, Apple Mail, Yahoo ...) and the kept part converted to text, then cut with
    the separators too. A text/plain body in which no separator matched falls back to the structure of its
    HTML alternative, when it has one. Text converted from HTML loses the indentation of the HTML layout, and
    the result is tidied (`taglines.tidy_comment`).

    `deadline` is a time.monotonic() value (None: none): past it the search raises exits.DeadlineExceeded, a
    BaseException the delivery layer answers with 75. It is checked between separators and between chunks of
    a large body (`reply/search.py`), so a slow separator cannot hold a delivery past it.
    """
    if message.html is not None and message.html_converted:
        cut = _html_cut(message.html, separators, deadline) or strip_reply(message.text, separators, deadline=deadline)
    else:
        cut = strip_reply(message.text, separators, deadline=deadline)
        if message.html is not None and cut.separator is None and cut.quote_line is None:
            cut = _html_cut(message.html, separators, deadline) or cut
    text = textwrap.dedent(cut.text) if message.html_converted or cut.from_html else cut.text
    return replace(cut, text=tidy_comment(text, cut.separator is not None))


def _html_cut(html: str, separators: Sequence[str], deadline: float | None) -> ReplyCut | None:
    """The HTML body cut at its quote container, then cut with the separators; None without a container."""
    from .html import cut_html_quote

    check_deadline(deadline)
    quote = cut_html_quote(html)
    if quote is None or not quote.kept_text.strip():
        return None  # no container, or one at the very top (bottom-posting): the text body decides
    cut = strip_reply(quote.kept_text, separators, deadline=deadline)
    if cut.separator is not None:
        return replace(cut, from_html=True)
    if cut.quote_line is not None:
        return None  # only a separator above the container ("Sent from my iPhone"): nothing new in it
    line = len(cut.text.rstrip().split("\n")) + 1
    return ReplyCut(cut.text, quote.marker, line, cut.skipped, line, quote.marker, from_html=True)
