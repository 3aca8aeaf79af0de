"""Finding where the quoted history of a reply starts: the earliest line any separator matches.

A mail that quotes a quote contains every client's marker, and only the top one belongs to the reply being
delivered, so the earliest match wins; on one line, the separator earlier in the list. The search runs over
UTF-8 bytes with RE2 (linear time whatever the body), all plain separators as one alternation, each regular
expression on its own. A separator that cannot be evaluated is skipped with a reason, never raised: a broken
stored separator must not fail a delivery.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from . import separators as sep
from .separators import InvalidSeparator, Regex, Separator


@dataclass(frozen=True)
class Hit:
    """Where one separator first matches: the byte offset of the cut, and the separator's list position."""

    offset: int
    index: int


def _skip(text: str, reason: object) -> str:
    return f"separator '{text}' skipped: {reason}"


@functools.lru_cache(maxsize=32)
def _plain_matcher(patterns: tuple[str, ...]) -> Regex:
    """All plain separators as one RE2 alternation: one pass over the body instead of one per separator.

    Each separator is its own top-level branch with its own group, so on a line where several match
    the first one in the list wins, which is the tie rule. Every branch starts at the line start, so the
    leftmost match is also the earliest line.
    """
    branches = "|".join(f"{sep.LINE_START}({sep.tolerant_pattern(pattern)})" for pattern in patterns)
    return sep.re2_compile(f"^(?:{branches})")


def _plain_hit(data: bytes, plain: list[tuple[int, Separator]], skipped: list[str]) -> Hit | None:
    """The first line where any plain separator matches, and which one (the earliest in the list)."""
    if not plain:
        return None
    try:
        match = _plain_matcher(tuple(separator.pattern for _, separator in plain)).search(data)
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


def _regex_hit(data: bytes, index: int, separator: Separator, skipped: list[str], pos: int = 0) -> Hit | None:
    """The start of the line where this regular expression's first match (from `pos`) begins.

    A match that starts with the line break ending the line above, or with blank lines, begins at its first
    line with text: a pattern can so require a line above it (a header block is never the body's first line)
    and still cut at the line it is about.
    """
    try:
        regex = sep.compiled_regex(separator.pattern)
        match = regex.search(data, pos, min(len(data), pos + _WINDOW)) if pos else regex.search(data)
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


_WINDOW = 1 << 16  # how far past its first line a separator is followed when settling a tie


@functools.lru_cache(maxsize=32)
def _combined_matcher(patterns: tuple[str, ...]) -> tuple[Regex, tuple[int, ...]]:
    """All regular expressions as one RE2 alternation, and the group number of each one's branch."""
    regex = sep.re2_compile("|".join(f"(?P<e2tsep{number}>{pattern})" for number, pattern in enumerate(patterns)))
    index: dict[bytes, int] = getattr(regex, "groupindex", {})
    return regex, tuple(index[f"e2tsep{number}".encode()] for number in range(len(patterns)))


def _regexes_hit(data: bytes, regexes: list[tuple[int, Separator]], skipped: list[str]) -> Hit | None:
    """The earliest regular-expression hit: one pass over the body finds the line, then ties are settled there.

    The combined search gives the leftmost match and the branch that made it; a separator earlier in the list
    that matches on that same line wins the tie, so those are tried again from there, over a short window.
    Should the combined pattern fail (RE2 out of memory), each separator is searched on its own.
    """
    if not regexes:
        return None
    try:
        combined, groups = _combined_matcher(tuple(separator.pattern for _, separator in regexes))
        match = combined.search(data)
    except Exception:
        hits = [_regex_hit(data, index, separator, skipped) for index, separator in regexes]
        return min((hit for hit in hits if hit is not None), key=lambda hit: (hit.offset, hit.index), default=None)
    if match is None:
        return None
    branch = next(number for number, group in enumerate(groups) if match.span(group)[0] >= 0)
    best = Hit(offset=_line_of(data, match.start()), index=regexes[branch][0])
    for index, separator in regexes[:branch]:
        hit = _regex_hit(data, index, separator, skipped, pos=match.start())
        if hit is not None and hit.offset == best.offset:
            return hit
    return best


def first_hit(data: bytes, separators: Sequence[str], skipped: list[str]) -> Hit | None:
    """The earliest line any separator matches; on a tie, the separator earlier in the list."""
    plain: list[tuple[int, Separator]] = []
    regexes: list[tuple[int, Separator]] = []
    for index, text in enumerate(separators):
        try:
            separator = sep.parsed(text)
        except InvalidSeparator as exc:
            skipped.append(_skip(text, exc))
            continue
        (regexes if separator.is_regex else plain).append((index, separator))
    hits = [hit for hit in (_regexes_hit(data, regexes, skipped), _plain_hit(data, plain, skipped)) if hit]
    return min(hits, key=lambda hit: (hit.offset, hit.index), default=None)
