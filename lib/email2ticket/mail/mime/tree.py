"""The MIME tree: building it from bytes with ever more defensive parsers, and walking it without recursion.

When the stdlib parser fails it is retried with `compat32`, and for nesting too deep for its recursion a
depth-limited splitter builds the tree; the walk stops at MAX_DEPTH.
"""

import functools
import re
from collections.abc import Callable
from email.message import Message
from email.parser import BytesParser, Parser

from msgspec import Struct, field

from .digest import body_offset
from .headers import COMPAT, POLICY, part_content_type, part_disposition, part_param
from .notes import Notes

MAX_DEPTH = 50
"""Deepest MIME nesting walked.  Real mail stays below ~6 levels; torture tests nest thousands."""

_MAX_REPAIRED_HEADER_BLOCK = 1 << 20

_HEADER_LINE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[ \t]")  # the stdlib feedparser's headerRE


@functools.cache
def _known_field() -> re.Pattern[bytes]:
    """Compiled on first use (a damaged header section): most mail never needs it."""
    return re.compile(
        rb"^(?:from|sender|reply-to|to|cc|subject|date|message-id|received|return-path|mime-version|content-type)"
        rb"[ \t]*:",
        re.IGNORECASE | re.MULTILINE,
    )


def repair_header_block(raw: bytes, notes: Notes) -> bytes:
    """Recover header fields that follow a line without a colon.

    The stdlib, like RFC 5322, ends the header block at the first line that is not a header field, so what
    follows, often From and Subject, becomes body text.  Seen in the wild: a gateway that wraps a long header
    without indenting the continuation (zammad mail054.box, X-Brightmail-Tracker) and a junk line ahead of
    the headers (zammad mail068.box).  Repaired only when a well-known field follows the damage: such lines
    become continuations of the field before them, and are dropped before the first field.
    """
    end = body_offset(raw)
    if end >= len(raw) or end > _MAX_REPAIRED_HEADER_BLOCK:
        return raw  # no empty line: no header block to repair
    lines = raw[:end].splitlines(keepends=True)
    damaged = [i for i, line in enumerate(lines) if line.strip() and not _HEADER_LINE.match(line)]
    if not damaged or not _known_field().search(b"".join(lines[damaged[0] + 1 :])):
        return raw
    first_field = next((i for i, line in enumerate(lines) if _HEADER_LINE.match(line)), len(lines))
    for i in damaged:
        lines[i] = b"" if i < first_field else b" " + lines[i]
    notes.add(f"header block: {len(damaged)} line(s) without a colon joined to the previous field or dropped")
    return b"".join(lines) + raw[end:]


def parse_full(raw: bytes) -> Message:
    """The normal path: the stdlib parser, which handles the many MIME edge cases best."""
    return BytesParser(policy=POLICY).parsebytes(raw)


def parse_compat(raw: bytes) -> Message:
    """The stdlib parser with compat32 headers.

    policy.default decodes MIME parameters while parsing and raises when one does not decode (otobo
    PostMaster-Test12.box: an RFC 2231 filename in iso-2022-jp with an invalid sequence); compat32 reads
    parameters as plain strings, so the MIME structure survives.
    """
    return BytesParser(policy=COMPAT).parsebytes(raw)


def parse_shallow(raw: bytes) -> Message:
    """Tree for MIME structures nested too deep for the recursive stdlib parser.

    The stdlib parser recurses once per MIME level (RecursionError somewhere between 500 and 1,000 nested
    multiparts).  Header-only parses do not recurse, so split multiparts here, down to MAX_DEPTH + 1 levels;
    the walker ignores whatever lies below MAX_DEPTH.
    """
    root = BytesParser(policy=COMPAT).parsebytes(raw, headersonly=True)
    pending: list[tuple[Message, int]] = [(root, 0)]
    while pending:
        part, depth = pending.pop()
        body = part.get_payload()
        if depth > MAX_DEPTH or not isinstance(body, str) or not part_content_type(part).startswith("multipart/"):
            continue
        boundary = part_param(part, "boundary")
        chunks = split_multipart(body, boundary) if boundary else None
        if chunks is None:
            continue
        children = [Parser(policy=COMPAT).parsestr(chunk, headersonly=True) for chunk in chunks]
        part.set_payload(children)  # type: ignore[arg-type]  # typeshed: list is invariant
        pending.extend((child, depth + 1) for child in children)
    return root


TREE_BUILDERS: tuple[tuple[str, Callable[[bytes], Message]], ...] = (
    ("stdlib parser (policy.default)", parse_full),
    ("stdlib parser (policy.compat32)", parse_compat),
    ("depth-limited MIME splitter", parse_shallow),
)


def split_multipart(body: str, boundary: str) -> list[str] | None:
    """Body parts between boundary delimiter lines (RFC 2046 5.1.1); None when there is no delimiter."""
    delimiter = re.compile(r"^--" + re.escape(boundary) + r"(--)?[ \t]*\r?$", re.MULTILINE)
    chunks: list[str] = []
    start: int | None = None
    for match in delimiter.finditer(body):
        if start is not None:
            chunks.append(body[start : max(start, match.start() - 1)])
        if match.group(1):
            return chunks
        start = match.end() + 1
    if start is None:
        return None
    chunks.append(body[start:])  # no close delimiter: keep the last part
    return chunks


class Node(Struct, eq=False):
    """A walked part with what the extraction needs to know about it."""

    part: Message
    depth: int
    parent: "Node | None"
    path: str
    content_type: str
    disposition: str | None
    children: list["Node"] = field(default_factory=list)
    pruned: bool = False

    @property
    def location(self) -> str:
        return part_location(self.path)

    @property
    def is_leaf(self) -> bool:
        # A multipart left here is a container (boundary-less ones became text/plain), even if it is empty.
        return not self.children and not self.pruned and not self.content_type.startswith("multipart/")


def part_location(path: str) -> str:
    return f"part {path}" if path else "message"


def walk(root: Message, notes: Notes, max_depth: int = MAX_DEPTH) -> tuple[list[Node], bool]:
    """All parts down to `max_depth` in document order, iteratively (no RecursionError on deep trees), and
    whether anything deeper was left out."""
    order: list[Node] = []
    pruned = False
    stack = [_make_node(root, None, "", notes)]
    while stack:
        node = stack.pop()
        order.append(node)
        subparts = _subparts(node)
        if not subparts:
            continue
        if node.depth >= max_depth:
            node.pruned = pruned = True
            notes.add(f"MIME parts nested deeper than {max_depth} levels were ignored")
            continue
        node.children = [
            _make_node(sub, node, f"{node.path}.{i}".lstrip("."), notes) for i, sub in enumerate(subparts, 1)
        ]
        stack.extend(reversed(node.children))
    return order, pruned


def _make_node(part: Message, parent: Node | None, path: str, notes: Notes) -> Node:
    content_type = part_content_type(part)
    if content_type.startswith("multipart/") and not part.is_multipart():
        # No boundary, or one that never occurs (flanker missing-boundaries.eml): the stdlib keeps the body
        # as one string.  Read it as text rather than losing it.
        notes.add(f"{part_location(path)}: {content_type} without usable boundary read as text")
        content_type = "text/plain"
    depth = 0 if parent is None else parent.depth + 1
    return Node(part, depth, parent, path, content_type, part_disposition(part))


def _subparts(node: Node) -> list[Message]:
    if node.content_type.startswith("message/") or not node.part.is_multipart():
        return []  # attached messages are kept whole, as .eml attachments
    payload = node.part.get_payload()
    return [sub for sub in payload if isinstance(sub, Message)] if isinstance(payload, list) else []
