"""Finding where the quoted history of a reply starts: the earliest line any separator matches.

A mail that quotes a quote contains every client's marker, and only the top one belongs to the reply being
delivered, so the earliest match wins; on one line, the separator earlier in the list. The search runs over
UTF-8 bytes with RE2 (linear time whatever the body), all plain separators as one alternation, each regular
expression on its own. A separator that cannot be evaluated is skipped with a reason, never raised: a broken
stored separator must not fail a delivery.

Linear is not always fast: on some patterns RE2's DFA runs out of memory and falls back to an engine a hundred
times slower per byte (reply/pattern_cost.py), and a C call cannot be interrupted. So a body is searched in
chunks of at most CHUNK bytes, smaller while the calls are slow, and the deadline (a time.monotonic() value)
is checked before every chunk and every separator: past it, exits.DeadlineExceeded, which no `except
Exception` here catches. Each call reads SPAN bytes past its chunk, so a match that crosses into the next
chunk is still found where it starts; a single match longer than SPAN (16 KB, where a header block or an
attribution line takes a few hundred bytes) may not be.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence

from msgspec import Struct

from ..exits import DeadlineExceeded
from . import separators as sep
from .separators import InvalidSeparator, Match, Regex, Separator

CHUNK = 1 << 20  # bytes one search call reads at most (besides SPAN), once the calls have proved fast
FIRST_CHUNK = 1 << 13  # the first call's: a slow pattern shows itself before it has read much
MIN_CHUNK = 1 << 12
CHUNK_SECONDS = 0.02  # what one call should take: the next chunk grows or shrinks towards it
SPAN = 1 << 14  # how far past its chunk a match may reach and still be found where it starts
TIE_WINDOW = 1 << 16  # how far past its first line a separator is followed when settling a tie (_regex_hit)


class Hit(Struct, frozen=True):
    """Where one separator first matches: the byte offset of the cut, and the separator's list position."""

    offset: int
    index: int


def _skip(text: str, reason: object) -> str:
    return f"separator '{text}' skipped: {reason}"


def check_deadline(deadline: float | None) -> None:
    """Raise DeadlineExceeded once time.monotonic() has reached `deadline` (None: no deadline)."""
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExceeded


def _char_start(data: bytes, end: int) -> int:
    """`end`, or the start of the UTF-8 character it falls inside, so that no chunk splits a character."""
    if end >= len(data):
        return len(data)
    while end > 0 and 0x80 <= data[end] < 0xC0:  # a continuation byte
        end -= 1
    return end


def chunked_search(regex: Regex, data: bytes, deadline: float | None) -> Match | None:
    """`regex.search(data)` one chunk at a time, checking `deadline` before each (see the module docstring).

    Each call reads its chunk and SPAN bytes more, and a match is taken when it starts inside the chunk: the
    leftmost one, as a single search would find it, unless it is longer than SPAN. RE2 sees the whole body
    as context whatever the chunk, so ^, $ and \\b read the bytes around it.
    """
    start, size = 0, FIRST_CHUNK
    while True:
        check_deadline(deadline)
        end = _char_start(data, start + size)
        began = time.monotonic()
        if end >= len(data):
            return regex.search(data, start, len(data))
        match = regex.search(data, start, _char_start(data, end + SPAN))
        if match is not None and match.start() < end:
            return match
        pace = CHUNK_SECONDS / max(time.monotonic() - began, 1e-6)
        size, start = max(MIN_CHUNK, min(CHUNK, int(size * min(4.0, pace)))), end


@functools.lru_cache(maxsize=32)
def _plain_matcher(patterns: tuple[str, ...]) -> Regex:
    """All plain separators as one RE2 alternation: one pass over the body instead of one per separator.

    Each separator is its own top-level branch with its own group, so on a line where several match
    the first one in the list wins, which is the tie rule. Every branch starts at the line start, so the
    leftmost match is also the earliest line.
    """
    branches = "|".join(f"{sep.LINE_START}({sep.tolerant_pattern(pattern)})" for pattern in patterns)
    return sep.re2_compile(f"^(?:{branches})")


def _plain_hit(
    data: bytes, plain: list[tuple[int, Separator]], skipped: list[str], deadline: float | None
) -> Hit | None:
    """The first line where any plain separator matches, and which one (the earliest in the list)."""
    if not plain:
        return None
    try:
        match = chunked_search(_plain_matcher(tuple(separator.pattern for _, separator in plain)), data, deadline)
    except Exception as exc:  # never fail a delivery over a separator; say why it was ignored
        skipped.extend(_skip(separator.text, exc) for _, separator in plain)
        return None
    if match is None:
        return None
    group = next(number for number in range(1, len(plain) + 1) if match.span(number)[0] >= 0)
    return Hit(offset=match.start(), index=plain[group - 1][0])


def _line_of(data: bytes, start: int) -> int:
    """Where a match that starts at `start` cuts (see _regex_hit)."""
    if data[start : start + 1] == b"\n":  # a match that starts with a line break begins on the next line
        return _skip_blank_lines(data, start + 1)
    return _skip_blank_lines(data, data.rfind(b"\n", 0, start) + 1)


def _regex_hit(
    data: bytes, index: int, separator: Separator, skipped: list[str], deadline: float | None, pos: int = 0
) -> Hit | None:
    """The start of the line where this regular expression's first match (from `pos`, within TIE_WINDOW) begins.

    A match that starts with the line break ending the line above, or with blank lines, begins at its first
    line with text: a pattern can so require a line above it (a header block is never the body's first line)
    and still cut at the line it is about.
    """
    check_deadline(deadline)
    try:
        regex = sep.compiled_regex(separator.pattern)
        match = (
            regex.search(data, pos, min(len(data), pos + TIE_WINDOW)) if pos else chunked_search(regex, data, deadline)
        )
    except Exception as exc:  # an old stored pattern RE2 no longer accepts, or RE2 running out of memory
        skipped.append(_skip(separator.text, exc))
        return None
    if match is None:
        return None
    return Hit(offset=_line_of(data, match.start()), index=index)


def _skip_blank_lines(data: bytes, offset: int) -> int:
    """A match that begins with blank lines (a header block below an empty line) cuts at its first text."""
    while True:
        end = data.find(b"\n", offset)
        if end < 0 or data[offset:end].strip(b" \t>\r"):
            return offset
        offset = end + 1


@functools.lru_cache(maxsize=32)
def _combined_matcher(patterns: tuple[str, ...]) -> tuple[Regex, tuple[int, ...]]:
    """All regular expressions as one RE2 alternation, and the group number of each one's branch."""
    regex = sep.re2_compile("|".join(f"(?P<e2tsep{number}>{pattern})" for number, pattern in enumerate(patterns)))
    index: dict[bytes, int] = getattr(regex, "groupindex", {})
    return regex, tuple(index[f"e2tsep{number}".encode()] for number in range(len(patterns)))


def _regexes_hit(
    data: bytes, regexes: list[tuple[int, Separator]], skipped: list[str], deadline: float | None
) -> Hit | None:
    """The earliest regular-expression hit: one pass over the body finds the line, then ties are settled there.

    The combined search gives the leftmost match and the branch that made it; a separator earlier in the list
    that matches on that same line wins the tie, so those are tried again from there, over a short window.
    Should the combined pattern fail (RE2 out of memory), each separator is searched on its own.
    """
    if not regexes:
        return None
    try:
        combined, groups = _combined_matcher(tuple(separator.pattern for _, separator in regexes))
        match = chunked_search(combined, data, deadline)
    except Exception:
        hits = [_regex_hit(data, index, separator, skipped, deadline) for index, separator in regexes]
        return min((hit for hit in hits if hit is not None), key=lambda hit: (hit.offset, hit.index), default=None)
    if match is None:
        return None
    branch = next(number for number, group in enumerate(groups) if match.span(group)[0] >= 0)
    best = Hit(offset=_line_of(data, match.start()), index=regexes[branch][0])
    for index, separator in regexes[:branch]:
        hit = _regex_hit(data, index, separator, skipped, deadline, pos=match.start())
        if hit is not None and hit.offset == best.offset:
            return hit
    return best


def first_hit(data: bytes, separators: Sequence[str], skipped: list[str], deadline: float | None = None) -> Hit | None:
    """The earliest line any separator matches; on a tie, the separator earlier in the list.

    Past `deadline` (a time.monotonic() value), exits.DeadlineExceeded: see the module docstring.
    """
    check_deadline(deadline)
    plain: list[tuple[int, Separator]] = []
    regexes: list[tuple[int, Separator]] = []
    for index, text in enumerate(separators):
        try:
            separator = sep.parsed(text)
        except InvalidSeparator as exc:
            skipped.append(_skip(text, exc))
            continue
        (regexes if separator.is_regex else plain).append((index, separator))
    found = (_regexes_hit(data, regexes, skipped, deadline), _plain_hit(data, plain, skipped, deadline))
    hits = [hit for hit in found if hit]
    return min(hits, key=lambda hit: (hit.offset, hit.index), default=None)
