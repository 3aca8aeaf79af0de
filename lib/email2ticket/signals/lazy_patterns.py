"""Regular expressions compiled on first use, and a cheap, exact "cannot match" for the subject patterns.

Python's regular-expression compiler runs in Python, and a delivery pays for every pattern compiled while
its modules are imported. `LazyPattern` compiles one when it is first used: most of signals/' patterns read
bounce reports, which most mail is not.

The out-of-office and bounce subject patterns are alternations of a hundred phrases in twenty languages,
compiled case-insensitively, and compiling them cost
every delivery about as much as the rest of signals/ together, for subjects ("Printer jams", "Re: ...") that
start like none of the phrases. So each pattern is compiled on first use only, and a gate answers first
from the subject's first three characters: every phrase starts with a literal text (read from the
patterns' source by `literal_heads`), and when the subject's first three characters are ASCII, a
case-insensitive match needs them to be the first three of one of those texts, lowercased.

Why ASCII only: under re.IGNORECASE an ASCII letter matches exactly its other case, plus four non-ASCII
letters (İ ı ſ K: `FOLDS_TO_ASCII`). So for an ASCII subject start, lowercase comparison is what the
pattern does, provided no head contains one of those four; a subject starting with anything else goes to
the pattern. A phrase whose start the reader cannot take as literal text (a class, an optional first
character, an inline flag) makes `literal_heads` return None, and the gate then always says "maybe": the
gate can only make a delivery cheaper, never change an answer (tests/signals/test_lazy_patterns.py).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any

HEAD = 3
FOLDS_TO_ASCII = frozenset("\u0130\u0131\u017f\u212a")  # İ ı ſ K (Kelvin): re.I matches them to i, i, s, k
_META = frozenset("\\.^$*+?{}[]|()")
_QUANTIFIERS = frozenset("*+?{")


class LazyPattern:
    """re.compile(source, flags), done on the first use of one of the methods signals/ calls."""

    __slots__ = ("_compiled", "flags", "pattern")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self.flags = flags
        self._compiled: re.Pattern[str] | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self.pattern, self.flags)
        return self._compiled

    def match(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        return self.compiled.match(string, pos, endpos)

    def search(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        return self.compiled.search(string, pos, endpos)

    def findall(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> list[Any]:
        return self.compiled.findall(string, pos, endpos)

    def split(self, string: str, maxsplit: int = 0) -> list[str | Any]:
        return self.compiled.split(string, maxsplit)


def literal_heads(alternatives: Iterable[str]) -> frozenset[str] | None:
    """The lowercased first HEAD characters an ASCII subject must start with to match one of the alternatives.

    An alternative whose literal start has another non-ASCII character among its first HEAD cannot match
    such a subject at all and adds none; one whose start is shorter than HEAD, or holds one of
    FOLDS_TO_ASCII, makes the answer None (no gate).
    """
    heads = set()
    try:
        for alternative in alternatives:
            for branch in _branches(alternative):
                prefix = _literal_prefix(branch)[:HEAD]
                if FOLDS_TO_ASCII.intersection(prefix):
                    return None
                if not prefix.isascii():
                    continue
                if len(prefix) < HEAD:
                    return None
                heads.add(prefix.lower())
    except ValueError:  # a shape the reader does not follow: no gate
        return None
    return frozenset(heads)


def may_start(text: str, heads: frozenset[str] | None) -> bool:
    """False only when no alternative behind `heads` can match at the start of `text` (case-insensitively)."""
    if heads is None:
        return True
    head = text[:HEAD]
    return not head.isascii() or head.lower() in heads


def _branches(pattern: str) -> Iterator[str]:
    """The top-level alternatives of `pattern`, with a leading non-capturing group multiplied out."""
    for part in _split(pattern):
        if not part.startswith("(?:"):
            yield part
            continue
        close = _group_end(part)
        rest = part[close + 1 :]
        if rest[:1] in _QUANTIFIERS:
            raise ValueError(f"optional leading group in {part!r}")
        for inner in _branches(part[3:close]):
            yield inner + rest


def _structure(pattern: str) -> Iterator[tuple[int, str, int]]:
    """`(index, char, depth)` for each "(", ")" and "|" of `pattern` outside escapes and character classes:
    the depth inside a "(" or ")" is that of the group it opens or closes (1 for a top-level group), a top-level
    "|" is at depth 0. The one reader of the pattern's structure, for _split and _group_end."""
    depth, i = 0, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _class_end(pattern, i)
        elif char == "(":
            depth += 1
            yield i, char, depth
        elif char == ")":
            yield i, char, depth
            depth -= 1
        elif char == "|":
            yield i, char, depth
        i += 1


def _split(pattern: str) -> list[str]:
    """`pattern` split at its top-level "|"."""
    cuts = [i for i, char, depth in _structure(pattern) if char == "|" and depth == 0]
    return [pattern[start + 1 : end] for start, end in zip([-1, *cuts], [*cuts, len(pattern)], strict=True)]


def _group_end(part: str) -> int:
    """The index of the ")" closing the group that starts `part`."""
    for i, char, depth in _structure(part):
        if char == ")" and depth == 1:
            return i
    raise ValueError(f"unbalanced group in {part!r}")


def _class_end(pattern: str, start: int) -> int:
    """The index of the "]" closing the character class opened at `start`."""
    i = start + 1
    if pattern[i : i + 1] == "^":
        i += 1
    if pattern[i : i + 1] == "]":
        i += 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            return i
        i += 1
    raise ValueError(f"unclosed class in {pattern!r}")


def _literal_prefix(branch: str) -> str:
    """The literal text `branch` starts with, up to its first special character (without a quantified last one)."""
    for i, char in enumerate(branch):
        if char in _META:
            return branch[: i - 1] if char in _QUANTIFIERS and i > 0 else branch[:i]
    return branch
