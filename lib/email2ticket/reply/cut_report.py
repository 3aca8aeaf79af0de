"""What `email2ticket separators test` prints: a message with the reply cut marked, and what matched there.

An admin about to add a separator wants to see, on a real message, where the comment would end and which
separator decided it, before the separator is live for every delivery. The cut comes from
`reply.extract_reply`, the very function delivery runs; this module only lays the result out. It is pure:
the command reads the message and the separators, this turns them into text or a JSON-ready dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..mail.message import ParsedMessage
from .extract import ReplyCut, extract_reply, parse_separator

CUT_MARK = "✂" * 3


def try_separators(message: ParsedMessage, in_force: Sequence[str], candidates: Sequence[str] = ()) -> ReplyCut:
    """Where delivery would cut `message` with the separators `in_force`, plus `candidates` not saved yet.

    `separators test --add` and the web admin's live test both call this: delivery's own extract_reply over the
    list in force with the candidates after it. A candidate that `separators add` would refuse raises
    InvalidSeparator.
    """
    for text in candidates:
        parse_separator(text)
    return extract_reply(message, [*in_force, *(text for text in candidates if text not in in_force)])


def summary(cut: ReplyCut) -> str:
    """One sentence: which separator cut where, or why nothing was cut."""
    where = " of the HTML body's text" if cut.from_html else ""
    if cut.separator is not None:
        return f"Cut at line {cut.line}{where}, where the separator {cut.separator} matched."
    if cut.quote_separator is not None:
        return (
            f"The separator {cut.quote_separator} matched at line {cut.quote_line}{where}, with nothing above it: "
            "the whole body is kept (a comment is never empty)."
        )
    return "No separator matched: the whole body is kept."


def _numbered(lines: list[str], first: int) -> list[str]:
    return [f"{number:5}  {line}" for number, line in enumerate(lines, first)]


def render(message: ParsedMessage, cut: ReplyCut) -> str:
    """The summary, the body with a cut line where the quoted history starts, and the comment as stored."""
    body = (message.text if not cut.from_html else cut.text).replace("\r\n", "\n").split("\n")
    out = [summary(cut), ""]
    start = cut.quote_line
    if start is None or start > len(body) + 1:
        out += _numbered(body, 1)
    else:
        label = cut.quote_separator or ""
        out += _numbered(body[: start - 1], 1)
        out.append(f"{CUT_MARK} cut here: quoted history below ({label}) {CUT_MARK}")
        out += _numbered(body[start - 1 :], start) if not cut.from_html else ["       (the quoted HTML)"]
    for note in cut.skipped:
        out.append(f"warning: {note}")
    out += ["", "--- the comment as stored ---", cut.text]
    return "\n".join(out)


def as_json(cut: ReplyCut) -> dict[str, Any]:
    """The cut as data, for scripts and tests."""
    return {
        "summary": summary(cut),
        "separator": cut.separator,
        "line": cut.line,
        "quote_separator": cut.quote_separator,
        "quote_line": cut.quote_line,
        "from_html": cut.from_html,
        "comment": cut.text,
        "skipped": list(cut.skipped),
    }
