"""Reply separators as the admin types them: validation, the list in force, and compiling them for RE2.

A plain separator is matched at the start of a line after whitespace and `>` quote marks, case-insensitively
and tolerantly: a space in it matches any run of whitespace, also a line break followed by quote marks (a
client re-wrapped the line), and a run of three or more dashes, underscores or equals signs matches any such
run (Outlook writes "-----Original Message-----", Yahoo "----- Original Message -----", Thunderbird
"-------- Original Message --------"). A "/regular expression/" is searched with RE2, case-insensitive and
multi-line, so that no pattern an admin types can make delivery take exponential time. Both are stored
exactly as typed. re2 is imported only when a separator is first compiled.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from msgspec import Struct

from .separator_list import DEFAULT_SEPARATORS


class InvalidSeparator(ValueError):
    """A separator an admin typed that cannot work; the message is one sentence meant for that admin."""


class Separator(Struct, frozen=True):
    """One separator, validated.

    `text` is exactly what the admin wrote (what is stored and shown back); `pattern` is what is
    matched: the regular expression between the slashes, or the plain text without the surrounding
    whitespace that copy and paste tends to bring along.
    """

    text: str
    is_regex: bool
    pattern: str


class Match(Protocol):
    def start(self) -> int: ...

    def span(self, group: int) -> tuple[int, int]: ...


class Regex(Protocol):
    def search(self, text: bytes, pos: int | None = None, endpos: int | None = None) -> Match | None: ...

    def finditer(self, text: bytes) -> Iterator[Match]: ...


class Unusable(Exception):
    """RE2 refused a pattern; the message is RE2's own reason, decoded."""


def re2_compile(pattern: str) -> Regex:
    """Compile for matching UTF-8 bytes, case-insensitive and line-oriented, without logging to stderr.

    Bytes rather than str: re2's str API re-encodes the whole body on every search, which on a 5 MB
    body and twenty separators is most of the time spent. RE2 has no flag constants, hence "(?im)".
    """
    import re2  # lazily: most mails are delivered without ever compiling a separator

    options = re2.Options()
    options.log_errors = False  # a refused pattern is reported by us, not printed into the MTA log
    options.max_mem = 64 << 20  # the combined built-in list needs more DFA memory than RE2's default 8 MB
    try:
        compiled: Regex = re2.compile(("(?im)" + pattern).encode("utf-8", "surrogatepass"), options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):  # RE2 reports its reason as bytes
            reason = reason.decode("utf-8", "replace")
        raise Unusable(str(reason)) from None
    return compiled


# Texts on which a pattern that can match nothing at all would show it: empty, blank, a word, a quote.
_EMPTY_PROBES = (b"", b"\n", b" ", b"a", b"a b\n", b"\na\n", b"> a\n")


def _matches_empty(regex: Regex) -> bool:
    """Whether the pattern can match zero characters, which would cut every mail at its first line."""
    spans = (match.span(0) for probe in _EMPTY_PROBES for match in regex.finditer(probe))
    return any(start == end for start, end in spans)


def _regex_body(text: str) -> str | None:
    """The pattern between the slashes of "/pattern/", or None for a plain separator."""
    if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
        return text[1:-1]
    return None


def _looks_like_flagged_regex(text: str) -> bool:
    """Whether this is "/pattern/ims" as PHP or Perl write it, which must not silently become plain text."""
    head, _, flags = text.rpartition("/")
    return head.startswith("/") and bool(flags) and set(flags) <= set("imsxu")


def parse_separator(text: str) -> Separator:
    """Check a separator when the admin saves it, so that a mistake is reported there and then.

    Refused: empty text, text on several lines, a regular expression RE2 cannot compile
    (backreferences, lookarounds), one that matches empty text (it would cut every mail), and one whose
    search RE2 would slow down a hundredfold on some bodies (reply/pattern_cost.py).
    """
    stripped = text.strip()
    if not stripped:
        raise InvalidSeparator("A reply separator cannot be empty.")
    if "\n" in stripped or "\r" in stripped:
        raise InvalidSeparator("A reply separator must be one line; a /regular expression/ can match \\n.")
    body = _regex_body(stripped)
    if body is None:
        if _looks_like_flagged_regex(stripped):
            raise InvalidSeparator(
                f"The reply separator '{stripped}' has flags after its closing slash, which are not "
                "supported: matching is always case-insensitive and line by line, so write /pattern/ "
                "and use (?s) inside it if '.' must match newlines."
            )
        return Separator(text=text, is_regex=False, pattern=stripped)
    _check_regex(stripped, body)
    return Separator(text=text, is_regex=True, pattern=body)


def _check_regex(stripped: str, body: str) -> None:
    """Raise InvalidSeparator unless the pattern compiles under RE2 and always consumes something."""
    try:
        regex = compiled_regex(body)
    except Unusable as exc:
        raise InvalidSeparator(
            f"The regular expression '{stripped}' is not valid RE2 syntax ({exc}); "
            "backreferences and lookarounds are not supported."
        ) from None
    if _matches_empty(regex):
        raise InvalidSeparator(
            f"The regular expression '{stripped}' can match empty text, which would cut every mail "
            "at its first line; make it require at least one character."
        )
    if stripped in _BUILT_IN:
        return  # checked once by the tests (tests/reply/test_reply_deadline.py), not in every delivery
    from .pattern_cost import costly_reason  # only for an admin's own pattern, not on every delivery

    reason = costly_reason(body, getattr(regex, "programsize", None))
    if reason is not None:
        raise InvalidSeparator(
            f"The regular expression '{stripped}' is too costly to search in every mail: {reason}. Start it "
            "with ^ or with text the repeated class cannot read, or repeat fewer characters."
        )


_BUILT_IN = frozenset(DEFAULT_SEPARATORS)


@functools.lru_cache(maxsize=256)
def compiled_regex(body: str) -> Regex:
    """A regular-expression separator, compiled once per process however many mails it is tried on."""
    return re2_compile(body)


@functools.lru_cache(maxsize=256)
def parsed(text: str) -> Separator:
    """parse_separator, remembered: the same few stored separators are parsed for every mail.

    A built-in separator is taken as it is, unchecked: checking one compiles it with RE2 on its own and
    probes it for empty matches, which for the forty built-in expressions cost 7% of a standalone reply's
    instructions (bench/pipe_instructions.py), and tests/reply/test_reply.py checks every one
    (test_every_default_separator_is_valid).
    """
    if text not in _BUILT_IN:
        return parse_separator(text)
    stripped = text.strip()
    body = _regex_body(stripped)
    return Separator(text=text, is_regex=body is not None, pattern=stripped if body is None else body)


# Whitespace as mail clients mangle it: no-break and narrow spaces, bidi marks (Windows Mail puts U+200E
# around every field), or a line break followed by quote marks where a client re-wrapped the line.
WHITESPACE = r"(?:[ \t\x{00A0}\x{2007}\x{202F}\x{200E}\x{200F}]|\n[ \t>]*)+"
LINE_START = r"[ \t>\x{00A0}\x{200E}\x{200F}]*"  # indentation and quote marks before a plain separator
_HSPACE = r"[ \t\x{00A0}]*"
_TOKENS = re.compile(r"\s+|([-_=~*#])\1{2,}|.", re.DOTALL)


def tolerant_pattern(plain: str) -> str:
    """The RE2 pattern a plain separator is matched with (see the module docstring)."""
    import re2  # lazily, as in re2_compile

    pieces = []
    for token in _TOKENS.finditer(plain):
        text = token.group()
        if text.isspace():
            pieces.append(WHITESPACE)
        elif token.group(1):
            minimum = len(text) if len(text) == len(plain) else 3  # a bare rule line keeps its length
            pieces.append(f"{_HSPACE}{re2.escape(token.group(1))}{{{minimum},}}{_HSPACE}")
        else:
            pieces.append(re2.escape(text))
    return "".join(pieces)


def effective_separators(added: Sequence[str], removed: Sequence[str]) -> tuple[str, ...]:
    """The separators in force: the built-in ones minus those the admin removed, then the admin's own.

    `removed` only filters the built-in list: a separator the admin both removed and added is in
    force, because adding it is the later, explicit wish. Duplicates are dropped, first one kept.
    """
    gone = set(removed)
    result = [text for text in DEFAULT_SEPARATORS if text not in gone]
    for text in added:
        if text not in result:
            result.append(text)
    return tuple(result)


def separators_from_edits(edits: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The separators in force after the admin's stored (op, text) edits, oldest first."""
    ordered = list(edits)
    added = [text for op, text in ordered if op == "add"]
    removed = [text for op, text in ordered if op == "remove"]
    return effective_separators(added, removed)
