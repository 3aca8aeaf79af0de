"""Structural limits: what one message may cost, checked on the raw bytes before the parser sees them.

The help-desk address is public, and the standard parser's cost grows with the structure of a message,
not its size: 50,000 empty MIME parts in half a megabyte cost seconds of CPU and a hundred megabytes,
and a From: header with 100,000 addresses costs a minute. So before anything expensive runs, one linear
scan over the bytes counts what the parser would have to build (header fields and their bytes, the
addresses of each address header, the MIME parts), and `bounded` hands the parser a copy cut to the
limits: the parts, header fields and addresses beyond them are left in the raw message, which the audit
trail keeps whole. What the parse itself finds (nesting depth, attachments) is checked as it walks.

A message over a limit is held for the admin (rules: `message-limits`), never bounced and never retried;
`messages release` delivers it with what the limits allow and notes what was left out. Ordinary mail,
mailing-list digests and long Received: chains stay far below every default.
"""

from __future__ import annotations

import functools
import heapq
import re
from collections.abc import Iterator
from itertools import pairwise

from msgspec import Struct

from ..config.model import Limits
from .mime.digest import body_offset

DEFAULT_LIMITS = Limits()

# The headers whose addresses the parser resolves one by one.
_ADDRESS_FIELD = re.compile(
    rb"^(from|sender|reply-to|to|cc|bcc|resent-from|resent-sender|resent-to|resent-cc|resent-bcc)[ \t]*:",
    re.IGNORECASE,
)
_FIELD_START = re.compile(rb"^[^ \t\r\n]", re.MULTILINE)


@functools.cache
def _boundary() -> re.Pattern[bytes]:
    """Compiled on first use (a declared boundary): most mail never needs it."""
    return re.compile(rb'boundary[ \t]*=[ \t]*"?([^"\r\n;]{1,200})', re.IGNORECASE)


_WINDOW, _OVERLAP = 1 << 20, 256  # declarations are searched window by window; a match may straddle two


class Scan(Struct, frozen=True):
    """What the scan found: the limits broken (one sentence each) and where the parser's copy ends."""

    breaches: tuple[str, ...] = ()
    parts_end: int | None = None  # where the MIME structure goes beyond max_mime_parts or max_mime_depth


def scan(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> Scan:
    """Count, in one pass and without parsing, what the parser would build; never raises."""
    end = body_offset(raw)
    breaches = _header_breaches(raw[: min(end, limits.max_header_bytes + 1)], end, limits)
    structure, cut = _structure(raw, end, limits)
    if structure is not None:
        breaches.append(structure)
    return Scan(tuple(breaches), cut)


def bounded(raw: bytes, found: Scan, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The copy of `raw` the parser takes: cut to the limits `found` broke (the same bytes when none)."""
    if not found.breaches:
        return raw
    end = body_offset(raw)
    head, body = raw[:end], raw[end:]
    if found.parts_end is not None:
        body = raw[end : max(end, found.parts_end)]
    return _bounded_headers(head, limits) + body


def _header_breaches(head: bytes, end: int, limits: Limits) -> list[str]:
    breaches = []
    if end > limits.max_header_bytes:
        breaches.append(f"max_header_bytes: a header section of {end} bytes (limit {limits.max_header_bytes})")
    count = len(_FIELD_START.findall(head))
    if count > limits.max_header_count:
        breaches.append(f"max_header_count: {count} header fields (limit {limits.max_header_count})")
    for name, value in _fields(head):
        if _ADDRESS_FIELD.match(name + b":"):
            found = value.count(b"@")
            if found > limits.max_addresses_per_header:
                field = name.decode("ascii", "replace")
                breaches.append(
                    f"max_addresses_per_header: at least {found} addresses in {field}: "
                    f"(limit {limits.max_addresses_per_header})"
                )
    return breaches


def _fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """(name, value) of each header field of an (already size-capped) header section, unfolded."""
    starts = [m.start() for m in _FIELD_START.finditer(head)] + [len(head)]
    fields = []
    for start, stop in pairwise(starts):
        name, colon, value = head[start:stop].partition(b":")
        if colon:
            fields.append((name.strip(), value))
    return fields


def _structure(raw: bytes, end: int, limits: Limits) -> tuple[str | None, int | None]:
    """The MIME structure in one pass over the boundary declarations and delimiter lines, in order:
    the limit it breaks (a sentence) and the offset where the parser's copy must end, or (None, None).

    Every `boundary=` parameter is a multipart opening inside the one whose part it stands in; a
    delimiter line of an open multipart begins its next part and closes everything opened inside the
    previous one. The pass stops at the first limit broken, so millions of parts cost what a thousand do.
    """
    found_declarations = declarations(raw)
    delimiters = _delimiters(raw, end)
    known: set[bytes] = set()
    open_: list[bytes] = []
    parts = 0
    part_start = end  # where the part that holds the current position begins: a cut drops all of it
    for position, kind, token in heapq.merge(found_declarations, delimiters):
        if kind == 0:
            known.add(token)
            open_.append(token)
            if len(open_) > limits.max_mime_depth:
                return f"max_mime_depth: MIME parts nested deeper than {limits.max_mime_depth} levels", part_start
            if len(known) > limits.max_mime_parts:
                return f"max_mime_parts: more than {limits.max_mime_parts} MIME parts", part_start
            continue
        closing = token not in known and token.endswith(b"--") and token[:-2] in known
        boundary = token[:-2] if closing else token
        if boundary not in known or boundary not in open_:
            continue
        while open_[-1] != boundary:
            open_.pop()
        if closing:
            open_.pop()
            continue
        parts += 1
        part_start = position
        if parts > limits.max_mime_parts:
            return f"max_mime_parts: more than {limits.max_mime_parts} MIME parts", position
    return None, None


def declarations(raw: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(offset, 0, boundary) of every `boundary=` parameter, in any letter case, in order.

    Searched window by window in a lower-cased copy (a regular expression ignoring case is ten times
    slower over a 45 MB body), then read from the original bytes: a boundary's own case matters.
    """
    for start in range(0, len(raw), _WINDOW):
        window = raw[start : start + _WINDOW + _OVERLAP].lower()
        found = window.find(b"boundary")
        while found != -1 and found < _WINDOW:
            match = _boundary().match(raw, start + found)
            if match:
                yield match.start(), 0, match.group(1).strip()
            found = window.find(b"boundary", found + 8)


def _delimiters(raw: bytes, end: int) -> Iterator[tuple[int, int, bytes]]:
    """(offset, 1, text after the dashes) of every line of the body that starts with `--`, in order."""
    found = raw.find(b"\n--", max(0, end - 1))
    while found != -1:
        start = found + 1
        line_end = raw.find(b"\n", start, start + 205)
        token = raw[start + 2 : line_end if line_end != -1 else start + 205]
        yield start, 1, token.rstrip()
        found = raw.find(b"\n--", start)


def _bounded_headers(head: bytes, limits: Limits) -> bytes:
    """The header section cut to the limits: fields past the count or bytes dropped, addresses past the
    limit dropped from their field. The blank line that ends the section is kept."""
    fields_end = head.rstrip(b"\r\n")
    blank_line = b"\r\n" if head.endswith(b"\r\n") else b"\n"
    section = fields_end[: limits.max_header_bytes]
    kept = []
    for name, value in _fields(section + b"\n")[: limits.max_header_count]:
        if _ADDRESS_FIELD.match(name + b":") and value.count(b"@") > limits.max_addresses_per_header:
            value = b",".join(value.split(b",")[: limits.max_addresses_per_header]).rstrip() + b"\n"
        kept.append(name + b":" + value)
    return b"".join(kept) + blank_line
