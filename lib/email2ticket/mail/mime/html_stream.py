"""HTML to text as the HTML is parsed, without a document tree: the machinery behind html_text.py.

inscriptis lays the text out (tables, lists, indentation, blank lines), but it reads a document tree, and
libxml2's tree of a large HTML body takes about 20 bytes for every byte of markup: a 5 MB HTML-only reply
peaked at 170-280 MB in delivery, most of it the tree. So no tree is built: an lxml parser target receives
the parser's events (start, data, end, comment) and hands them to inscriptis' own converter in the order
its tree walk (`Inscriptis._parse_html_tree`) would visit the nodes, so the text is the one `get_text`
gives (tests/mail/test_html_text.py compares both on the corpus and on random tag soup), and the memory it
takes is the text's.

Bounded work as well as memory: inscriptis costs about 30 microseconds per element, so after
`ELEMENT_BUDGET` elements (six times the largest HTML body of the shared corpus) its text is closed and
the rest of the document is read as plain lines, at the parser's speed: a line break at each block
element, runs of whitespace and blank lines collapsed, hidden elements (head, script, style) skipped.
A conversion may also `stop` at an element: the reply cut (reply/html.py) ends the text where the quote
container starts. The source is fed to the parser in pieces, because libxml2 given the whole source reads
on to its end after the target has stopped it; fed, the rest is never parsed. This module, inscriptis
and lxml are imported only when such a message arrives (html_text.py and reply/html.py import it lazily).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from msgspec import Struct

ELEMENT_BUDGET = 25_000
"""Elements laid out by inscriptis (under 1 s of CPU); the rest of a larger document becomes plain lines."""

StopAt = Callable[[str, Mapping[str, str]], str | None]
"""Called with each element's tag (lower case) and attributes, when it has any: a name ends the text there."""

# plain lines: whitespace within a line is one space, none at either end of a line, and no blank lines
# (each pattern matches only where there is something to change: a match costs more than a character)
_SPACE_RUN = re.compile(r"[\t\r\f\v\xa0][ \t\r\f\v\xa0]*| [ \t\r\f\v\xa0]+")
_LINE_BREAKS = re.compile(r" \n[\n ]*|\n[\n ]+")
_FEED_CHUNK = 65536  # characters handed to the parser at a time
_PLAIN_CHUNK = 4096  # pieces of plain text joined at a time: a list of millions of small strings is the cost
_TEXT, _COMMENT_TAIL, _DROP = 0, 1, 2  # what data that arrives now is in the tree: text/tail, a comment's tail, neither
_INLINE, _BREAK, _CELL, _HIDDEN = 1, 2, 3, 4  # how plain lines show a tag


class Converted(Struct, frozen=True):
    """The text of an HTML document, and the name `stop` gave the element it ends at (None: the whole document)."""

    text: str
    stopped_by: str | None


class _Stop(Exception):
    """Raised in the parser target to end the parse at a `stop` element; lxml re-raises it from the parse."""


def convert(source: str, stop: StopAt | None = None, budget: int = ELEMENT_BUDGET) -> Converted | None:
    """The text inscriptis gives for `lxml.html.document_fromstring(source)`, without building that tree.

    None when the document has no element (where document_fromstring raises ParserError). With `stop`, the
    text ends where the first element it names starts (the root element is not asked): the element, its
    content and everything after it in document order are left out, as if cut from the tree. Parser errors
    other than that propagate, and so does a BaseException (a delivery's deadline) raised in the middle.
    """
    from lxml.html import HTMLParser  # lazily: only HTML-only mail and HTML replies need it

    if not source:
        return None
    target = _Target(stop, budget)
    parser = HTMLParser(target=target)
    try:
        for offset in range(0, len(source), _FEED_CHUNK):  # fed in pieces, so that a stop ends the parse
            parser.feed(source[offset : offset + _FEED_CHUNK])
        parser.close()
    except _Stop:
        target.cut()
    if not target.started:
        return None
    return Converted(target.text(), target.stopped_by)


def _engine() -> Any:
    """An inscriptis converter with its tag handlers and an empty canvas, waiting for events instead of a tree."""
    from inscriptis.html_engine import Inscriptis

    class Engine(Inscriptis):  # type: ignore[misc]  # inscriptis has no type information
        def _parse_html_tree(self, state: Any, tree: Any) -> Any:
            self.state = state  # the constructor's walk of the (absent) tree: keep the state for the events
            return state.canvas

    return Engine(None)


class _Target:
    """An lxml parser target that feeds inscriptis as `Inscriptis._parse_html_tree` feeds it from a tree.

    The tree walk writes an element's text after opening it and its tail after closing it, a comment's tail
    straight to the canvas, and nothing of a processing instruction's tail or of anything outside the first
    root element (a second `<html>` document is a sibling the walk never visits). Adjacent data events are
    joined first, as the tree's text nodes join them.
    """

    def __init__(self, stop: StopAt | None, budget: int) -> None:
        self.engine = _engine()
        self.state = self.engine.state
        self.stop, self.budget = stop, budget
        self.started = self.finished = False
        self.stopped_by: str | None = None
        self.depth = 0
        self.mode = _DROP
        self.pending: list[str] = []
        self.laid_out = ""  # inscriptis' text, once the budget is spent
        self.plain_lines = False  # the budget is spent: the rest of the document is read as plain lines
        self.plain: list[str] = []  # after that: plain text pieces, joined in chunks of _PLAIN_CHUNK
        self.chunks: list[str] = []
        self.hidden = 0  # depth inside an element inscriptis does not display, after the budget
        self.kinds: dict[str, int] = {}  # tag: _INLINE, _BREAK, _CELL or _HIDDEN, after the budget

    # --- the parser's events (after the budget, the plain lines come first: they are the many) ----------

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if self.plain_lines:
            if attrib and self.stop is not None:
                self._stop_at(tag, attrib)
            kind = self.kinds.get(tag) or self._kind(tag)
            if self.hidden or kind == _HIDDEN:
                self.hidden += 1
            elif kind != _INLINE:
                self.plain.append("\n" if kind == _BREAK else " ")
            return
        if self.finished:
            return
        if self.pending:
            self._flush()
        self.started = True
        if attrib and self.stop is not None and self.depth:
            self._stop_at(tag, attrib)
        self.budget -= 1
        if self.budget < 0:
            self._close_layout()
            self.start(tag, attrib)
            return
        self.depth += 1
        self.mode = _TEXT
        state = self.state
        state.apply_starttag_layout(tag, attrib)
        if handler := self.engine.start_tag_handler_dict.get(tag):
            handler(state, attrib)
        current = state.tags[-1]
        current.canvas.open_tag(current)

    def end(self, tag: str) -> None:
        if self.plain_lines:
            if self.hidden:
                self.hidden -= 1
            elif self.kinds.get(tag) == _BREAK:
                self.plain.append("\n")
            return
        if self.finished:
            return
        if self.pending:
            self._flush()
        self._end_layout(tag)
        self.depth -= 1
        self.mode = _TEXT if self.depth else _DROP
        self.finished = not self.depth

    def data(self, text: str) -> None:
        if self.plain_lines:
            if not self.hidden:
                self.plain.append(text)
                if len(self.plain) >= _PLAIN_CHUNK:
                    self.chunks.append("".join(self.plain))
                    self.plain.clear()
        elif self.mode != _DROP:
            self.pending.append(text)

    def comment(self, text: str) -> None:
        if self.finished or self.plain_lines:
            return
        self._flush()
        self.mode = _COMMENT_TAIL if self.depth else _DROP

    def pi(self, target: str, data: str | None = None) -> None:
        if self.finished or self.plain_lines:
            return
        self._flush()
        self.mode = _DROP

    def close(self) -> None:
        self._flush()

    # --- the result ----------------------------------------------------------------------------------

    def cut(self) -> None:
        """The parse stopped at an element: close the open ones, whose tails are after it and go too."""
        self.pending.clear()
        if not self.plain_lines:
            self._close_open()

    def text(self) -> str:
        if not self.plain_lines:
            return str(self.engine.get_text())
        self.chunks.append("".join(self.plain))
        plain = _LINE_BREAKS.sub("\n", _SPACE_RUN.sub(" ", "".join(self.chunks))).strip()
        laid_out = self.laid_out.rstrip()
        return f"{laid_out}\n{plain}" if laid_out and plain else laid_out or plain

    # --- inscriptis ----------------------------------------------------------------------------------

    def _flush(self) -> None:
        if not self.pending:
            return
        text = "".join(self.pending)
        self.pending.clear()
        top = self.state.tags[-1]
        if self.mode == _TEXT:
            top.write(text)
        elif self.mode == _COMMENT_TAIL:
            top.canvas.write(top, text)

    def _end_layout(self, tag: str) -> None:
        state = self.state
        if handler := self.engine.end_tag_handler_dict.get(tag):
            handler(state)
        previous = state.tags.pop()
        previous.canvas.close_tag(previous)

    def _close_open(self) -> None:
        """Close every open element for inscriptis, as the end of a tree cut there would (no tails follow)."""
        for _ in range(self.depth):
            self._end_layout(self.state.tags[-1].tag)

    def _close_layout(self) -> None:
        """End inscriptis' part: close the open elements, keep its text; plain lines follow."""
        self._close_open()
        self.laid_out, self.plain_lines = str(self.engine.get_text()), True

    def _stop_at(self, tag: str, attrib: dict[str, str]) -> None:
        """End the parse here if `stop` names this element."""
        name = self.stop(tag.lower(), attrib) if self.stop is not None else None
        if name is not None:
            self.stopped_by = name
            raise _Stop(name)

    # --- plain lines, after the budget ---------------------------------------------------------------

    def _kind(self, tag: str) -> int:
        """How inscriptis' default style sheet shows `tag`, in the few ways plain lines tell apart (cached)."""
        element = self.state.css.get(tag)
        display = "inline" if element is None else str(element.display.name)
        if display == "none":
            kind = _HIDDEN
        elif display == "block" or tag in ("br", "tr", "table"):
            kind = _BREAK
        else:
            kind = _CELL if tag in ("td", "th") else _INLINE
        self.kinds[tag] = kind
        return kind
