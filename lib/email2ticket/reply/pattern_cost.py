"""Recognising a separator RE2 would search slowly, so that `separators add` can refuse it.

RE2's time is linear in the body, but its fast engine (a DFA built as it reads) keeps one state per set of
positions the pattern could be at; when those sets multiply it runs out of memory and falls back to an engine
a hundred times slower per byte. The classic case is a counted repetition of a character class that can be
entered at many positions the text chooses: `a[ab]{20}c` (unanchored, so entered at every `a`) or
`[ab]*a[ab]{20}c`. Each `a` in the last 20 characters starts a thread that is still alive, and every subset
of them is a state: 2^20. A 6 MB reply took 14-40 s with it, against 0.2 s with the built-in list.

The check is a best effort over the pattern's structure (Python's own regular-expression parser reads RE2's
syntax once its few extensions are translated); a pattern it cannot read is left to the search's deadline.
It flags a repetition of a class spanning more than MAX_SPAN characters when (1) what comes before it can
recur at positions the text chooses (the pattern's unanchored start, or a loop such as `[ab]*`), (2) the
text that enters it is selective (`a` within a run of `[ab]`: entries at some positions, not all), and
(3) the repeated class can read that entering text, so older threads survive a new one. Without (2) the
threads stay in step (`[ab]*[ab]{20}`), without (3) each new one ends the others (`<[^<>]+>[^<>]{0,60}`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

MAX_SPAN = 10  # characters per entering text: 2^10 states is cheap, 2^14 already costs 0.5 µs a byte
MAX_PROGRAM = 5000  # RE2 instructions; the largest built-in separator (a tagline) has about 1,850

Node = tuple[Any, Any]  # (opcode, argument) as re._parser builds them
Chars = Callable[[str], bool]

_PROBE = "aAbBzZ09 \t\n.,:;-_<>@#*/'\"()[]=+?!"  # characters tried where a class must be compared with another
_ANYTHING: Chars = lambda char: True  # noqa: E731  (what the unanchored start of a search can skip over)


def costly_reason(pattern: str, program_size: int | None = None) -> str | None:
    """Why RE2 would search `pattern` slowly on some bodies, as a phrase; None when nothing says so."""
    if program_size is not None and program_size > MAX_PROGRAM:
        return f"it compiles to {program_size} RE2 instructions (at most {MAX_PROGRAM})"
    try:
        found = _walk(list(sre_parse.parse(_python_syntax(pattern), re.IGNORECASE)), _ANYTHING, [])
    except Exception:  # RE2 syntax our translation misses, or nesting too deep: the deadline still bounds the search
        return None
    if found is None:
        return None
    low, high = found
    text = _counted_text(pattern, low, high)
    return (
        f"the repetition {text} of a character class can start at many places the text chooses, and RE2 then "
        "tracks every combination of them"
    )


def _walk(items: Sequence[Node], loop: Chars | None, entering: list[Node]) -> tuple[int, int] | None:
    """The (min, max) of the first costly repetition in a concatenation.

    `loop` says what may recur before the current position (None right after an anchor), `entering` is the
    fixed text read since then: a repetition is entered through it.
    """
    for node in items:
        op, av = node
        if op is sre.AT:
            if av in (sre.AT_BEGINNING, sre.AT_BEGINNING_STRING):
                loop, entering = None, []
            continue
        if op in _REPEATS:
            low, high, item = av
            found = _costly_repeat(low, high, list(item), entering, loop) or _walk(list(item), loop, entering)
        elif op in (sre.SUBPATTERN, sre.BRANCH):
            found = next((f for b in _branches(node) if (f := _walk(b, loop, list(entering))) is not None), None)
        else:
            found = None
        if found is not None:
            return found
        width_low, width_high = _width([node])
        if width_high >= sre.MAXREPEAT or (width_low != width_high and op in _REPEATS):
            loop, entering = _matcher(node), []  # it can absorb text of any length, like a loop
        else:
            entering = [*entering, node]
    return None


def _costly_repeat(
    low: int, high: int, item: list[Node], entering: list[Node], loop: Chars | None
) -> tuple[int, int] | None:
    """(low, high) when this repetition is the costly shape (see the module docstring), else None."""
    width = _width(item)[1]
    count = low if high == sre.MAXREPEAT else high
    if loop is None or not item or not _is_class(item) or not width or width >= sre.MAXREPEAT:
        return None
    if not entering:  # entered straight from the loop: only a selective start of the item itself counts
        entering = item[:1] if len(item) > 1 or item[0][0] in (sre.SUBPATTERN, sre.BRANCH) else []
    entry = _width(entering)[0]
    if entry == 0 or count * width <= MAX_SPAN * entry:
        return None
    first = _matcher(entering[0])
    repeated = _matcher(("group", item))
    # A new thread starts where the entering text begins, and the older ones survive it...
    survives = any(first(c) and loop(c) and repeated(c) for c in _samples(entering[0]) | set(_PROBE))
    # ...and the text picks where: somewhere the loop and the repetition read, the entering text does not start.
    selective = any(loop(c) and repeated(c) and not first(c) for c in set(_PROBE) | _samples(("group", item)))
    return (low, high) if survives and selective else None


_REPEATS = tuple(op for op in (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None)) if op)


def _width(nodes: Sequence[Node]) -> tuple[int, int]:
    """The least and most characters `nodes` read (MAXREPEAT or more: no bound)."""
    low, high = sre_parse.SubPattern(sre_parse.State(), list(nodes)).getwidth()
    return int(low), int(high)


def _is_class(item: Sequence[Node]) -> bool:
    """Whether the repeated item reads more than one character: a class, `.`, or a group of anything."""
    return not (len(item) == 1 and item[0][0] is sre.LITERAL)


def _branches(node: Node) -> Iterable[list[Node]]:
    op, av = node
    if op is sre.SUBPATTERN:
        return [list(av[-1])]
    return [list(branch) for branch in av[1]]


def _matcher(node: Node) -> Chars:
    """Whether `node` can read a character as its first one (case-insensitive, as separators are searched)."""
    op, av = node
    if op is sre.LITERAL:
        return lambda c: c.lower() == chr(av).lower()
    if op is sre.NOT_LITERAL:
        return lambda c: c.lower() != chr(av).lower()
    if op is sre.ANY:
        return lambda c: c != "\n"
    if op is sre.IN:
        return lambda c: _in_class(av, c)
    if op in _REPEATS:
        return _matcher(("group", list(av[2])))
    if op is sre.AT:
        return lambda c: False
    branches = _branches(node) if op in (sre.SUBPATTERN, sre.BRANCH) else [list(av)]
    firsts = [_matcher(branch[0]) for branch in branches if branch]
    return lambda c: any(first(c) for first in firsts)


def _in_class(items: Sequence[Node], char: str) -> bool:
    negate = bool(items) and items[0][0] is sre.NEGATE
    hit = False
    for op, av in items[1:] if negate else items:
        for c in {char, char.lower(), char.upper()}:
            literal = op is sre.LITERAL and ord(c) == av
            in_range = op is sre.RANGE and av[0] <= ord(c) <= av[1]
            hit = hit or literal or in_range or (op is sre.CATEGORY and _in_category(av, c))
    return hit != negate


_CATEGORIES: dict[Any, Chars] = {
    sre.CATEGORY_DIGIT: str.isdigit,
    sre.CATEGORY_NOT_DIGIT: lambda c: not c.isdigit(),
    sre.CATEGORY_SPACE: str.isspace,
    sre.CATEGORY_NOT_SPACE: lambda c: not c.isspace(),
    sre.CATEGORY_WORD: lambda c: c.isalnum() or c == "_",
    sre.CATEGORY_NOT_WORD: lambda c: not (c.isalnum() or c == "_"),
}


def _in_category(category: Any, char: str) -> bool:
    return _CATEGORIES.get(category, _ANYTHING)(char)


def _samples(node: Node) -> set[str]:
    """Some characters `node` names (its literals, the ends of its ranges), to compare classes on."""
    op, av = node
    if op is sre.LITERAL:
        return {chr(av)}
    if op is sre.IN:
        return {chr(v) for o, v in av if o is sre.LITERAL} | {chr(v[0]) for o, v in av if o is sre.RANGE}
    if op in _REPEATS:
        return _samples(("group", list(av[2])))
    if op in (sre.SUBPATTERN, sre.BRANCH):
        return {c for branch in _branches(node) if branch for c in _samples(branch[0])}
    if op == "group":
        return {c for n in av[:1] for c in _samples(n)}
    return set()


# RE2 syntax that Python's parser does not read, and a stand-in that reads the same characters for our purpose.
_RE2_ONLY = re.compile(
    r"\\x\{(?P<hex>[0-9A-Fa-f]{1,8})\}|\\(?P<prop>[pP])(?:\{[^}]*\}|[A-Za-z])|\\C|\\z|\\Q(?P<quoted>.*?)(?:\\E|$)"
    r"|\(\?[imsU-]+\)|\[:(?P<negate>\^?)[a-z]+:\]|(?P<escape>\\.)",
    re.DOTALL,
)


def _python_syntax(pattern: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["escape"]:
            return match["escape"]
        if match["hex"]:
            return f"\\U{int(match['hex'], 16):08x}"
        if match["prop"]:
            return "\\w" if match["prop"] == "p" else "\\W"
        if match["quoted"] is not None:
            return re.escape(match["quoted"])
        text = match.group()
        if text.startswith("[:"):
            return "\\W" if match["negate"] else "\\w"
        return {"\\C": ".", "\\z": "\\Z"}.get(text, "")  # inline flags: case and lines are ours to set

    return _RE2_ONLY.sub(replace, pattern)


_COUNTED = re.compile(r"(\[(?:\\.|[^\]\\])*\]|\((?:\\.|[^()\\])*\)|\\.|[^\\{}()\[\]|])\{(\d+)(?:(,)(\d*))?\}")


def _counted_text(pattern: str, low: int, high: int) -> str:
    """The repetition as the admin wrote it ("[ab]{20}"), found by its bounds; else just the bounds."""
    for match in _COUNTED.finditer(pattern):
        first = int(match[2])
        last = first if match[3] is None else (int(match[4]) if match[4] else sre.MAXREPEAT)
        if (first, last) == (low, high):
            return match.group()
    return "{" + str(low) + ("" if high == low else "," + ("" if high == sre.MAXREPEAT else str(high))) + "}"
