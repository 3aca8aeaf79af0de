"""Reply separators, and cutting the quoted history off a reply so a ticket comment holds only what is new.

Every mail client quotes the previous message below a marker of its own: Outlook's
"-----Original Message-----" or its From:/Sent: block, Gmail's "On <date>, <name> wrote:", and the same
in every language the client speaks. Such a marker is a *separator*. An admin can add separators and
remove built-in ones; both are stored as text exactly as typed: a plain separator is matched at the
start of a line, a "/regular expression/" anywhere, with RE2 so that no pattern an admin types can make
delivery take exponential time.

The new part of a reply ends at the EARLIEST place any separator matches: a mail that quotes a quote
contains every client's marker, and only the top one belongs to the reply being delivered. Nothing
here does I/O, and re2 is imported only when a separator is first compiled, because this module is
imported for every delivered mail.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol


class InvalidSeparator(ValueError):
    """A separator an admin typed that cannot work; the message is one sentence meant for that admin."""


@dataclass(frozen=True)
class Separator:
    """One separator, validated.

    `text` is exactly what the admin wrote (what is stored and shown back); `pattern` is what is
    matched: the regular expression between the slashes, or the plain text without the surrounding
    whitespace that copy and paste tends to bring along.
    """

    text: str
    is_regex: bool
    pattern: str


@dataclass(frozen=True)
class ReplyCut:
    """What strip_reply kept and why, so the comment can say which separator cut the mail.

    `text` always has LF line endings. `skipped` names each separator that could not be evaluated,
    so that a broken stored separator shows up in the delivery log instead of silently never matching.
    """

    text: str
    separator: str | None
    line: int | None
    skipped: tuple[str, ...]


# Plain separators where the marker is a fixed line; regular expressions where a fixed line would also
# cut ordinary prose. Every regular expression starts at a line start and stays within a few lines,
# and each language is its own entry so that an admin can remove one without losing the others.
DEFAULT_SEPARATORS: tuple[str, ...] = (
    # Outlook desktop, in the languages it is most often installed in, and the rule line that Outlook
    # (desktop and web) puts above its From: block.
    "-----Original Message-----",
    "-----Ursprüngliche Nachricht-----",
    "-----Message d'origine-----",
    "-----Mensaje original-----",
    "-----Oorspronkelijk bericht-----",
    "-----Mensagem original-----",
    "-----Messaggio originale-----",
    "-----Oprindelig meddelelse-----",
    "________________________________",
    # Yahoo, AOL and Zimbra; then Thunderbird, Android and Samsung mail.
    "----- Original Message -----",
    "-------- Original Message --------",
    "-------- Ursprüngliche Nachricht --------",
    "-------- Message d'origine --------",
    "-------- Oprindelig besked --------",
    # The From:/Sent:/To:/Subject: block of Outlook and most webmails, localised: a From line followed
    # within three lines by another header line, so that a sentence starting "From: the manager" does
    # not cut, in European languages, Chinese and Japanese. The cut moves up to a rule line (dashes,
    # underscores) right above the block. French writes a (no-break) space before the colon; "*From:*"
    # is Outlook's bold header once its HTML part has been turned into text.
    r"/^([ \t>]*[-_=]{10,}[ \t]*\n([ \t>]*\n)?)?[ \t>]*\*?(From|Von|De|Van|Da|Fra|Från|Od"
    r"|发件人|寄件者|差出人)[ \t\x{00A0}]*[:：][^\n]*\n([^\n]*\n){0,2}[ \t>]*\*?(Sent|Date|To|Subject|Cc"
    r"|Gesendet|Datum|An|Betreff|Envoyé|À|Objet|Enviado|Fecha|Para|Asunto|Verzonden|Aan|Onderwerp|Enviada em"
    r"|Data|Assunto|Inviato|A|Oggetto|Sendt|Dato|Til|Emne|Skickat|Till|Ämne|Wysłano|Do|Temat"
    r"|发送时间|收件人|主题|日期|寄件日期|收件者|主旨|送信日時|宛先|件名)[ \t\x{00A0}]*[:：]/",
    # "On <date>, <name> wrote:" (Gmail, Apple Mail, Thunderbird) and its translations. The line must
    # contain a digit (every client writes a date or a time) and end with the verb and a colon, on the
    # same line or, as Gmail wraps it, the next one: "On the other hand, as I wrote:" mid-paragraph
    # does not cut. Zoho writes "---- On <date> <name> wrote ----", without the colon, and Zimbra puts
    # dashes in front. German, Dutch and the Scandinavian languages put the name after the verb.
    r"/^[ \t>]*(-+ )?On [^\n]*[0-9][^\n]*(\n[^\n]*)?\bwrote(:|:?[ \t]+-+)?[ \t]*$/",
    r"/^[ \t>]*(-+ )?Am [^\n]*[0-9][^\n]*(\bschrieb\b[^\n]*(\n[^\n]*)?|\n[^\n]*\bschrieb\b[^\n]*):[ \t]*$/",
    r"/^[ \t>]*(-+ )?Le [^\n]*[0-9][^\n]*(\n[^\n]*)?\ba[ \t\x{00A0}]+écrit[ \t\x{00A0}\x{202F}]*:[ \t]*$/",
    r"/^[ \t>]*(-+ )?El [^\n]*[0-9][^\n]*(\n[^\n]*)?\b(escribió|ha escrit):[ \t]*$/",
    r"/^[ \t>]*(-+ )?Op [^\n]*[0-9][^\n]*(\bschreef\b[^\n]*(\n[^\n]*)?|\n[^\n]*\bschreef\b[^\n]*):[ \t]*$/",
    r"/^[ \t>]*(-+ )?Em [^\n]*[0-9][^\n]*(\n[^\n]*)?\bescreveu:[ \t]*$/",
    r"/^[ \t>]*(-+ )?(Il|In data) [^\n]*[0-9][^\n]*(\n[^\n]*)?\bha scritto:[ \t]*$/",
    r"/^[^\n]*[0-9][^\n]*(\bskrev\b[^\n]*(\n[^\n]*)?|\n[^\n]*\bskrev\b[^\n]*):[ \t]*$/",
    # Whatever the language: a line with a date or time that ends with the sender's <address> and at
    # most a short verb before the colon, as Gmail writes it in Polish, Russian, Ukrainian, Finnish,
    # Chinese, Japanese or Korean ("2014-03-20 8:48 GMT+01:00 Rémi <remi@example.com>:", "... <a@b.c>
    # 写道："), also when the address was wrapped onto the next line.
    r"/^[^\n]*[0-9][^\n]*(\n[ \t>]*)?<[^\n<>@ ]+@[^\n<> ]+>[^\n<>]{0,40}[:：][ \t]*$/",
)


class _Match(Protocol):
    def start(self) -> int: ...

    def span(self, group: int) -> tuple[int, int]: ...


class _Regex(Protocol):
    def search(self, text: bytes) -> _Match | None: ...

    def finditer(self, text: bytes) -> Iterator[_Match]: ...


class _Unusable(Exception):
    """RE2 refused a pattern; the message is RE2's own reason, decoded."""


def _re2_compile(pattern: str) -> _Regex:
    """Compile for matching UTF-8 bytes, case-insensitive and line-oriented, without logging to stderr.

    Bytes rather than str: re2's str API re-encodes the whole body on every search, which on a 5 MB
    body and twenty separators is most of the time spent. RE2 has no flag constants, hence "(?im)".
    """
    import re2  # lazily: most mails are delivered without ever compiling a separator

    options = re2.Options()
    options.log_errors = False  # a refused pattern is reported by us, not printed into the MTA log
    try:
        compiled: _Regex = re2.compile(("(?im)" + pattern).encode("utf-8", "surrogatepass"), options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):  # RE2 reports its reason as bytes
            reason = reason.decode("utf-8", "replace")
        raise _Unusable(str(reason)) from None
    return compiled


# Texts on which a pattern that can match nothing at all would show it: empty, blank, a word, a quote.
_EMPTY_PROBES = (b"", b"\n", b" ", b"a", b"a b\n", b"\na\n", b"> a\n")


def _matches_empty(regex: _Regex) -> bool:
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
    (backreferences, lookarounds) and one that matches empty text (it would cut every mail).
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
        regex = _compiled_regex(body)
    except _Unusable as exc:
        raise InvalidSeparator(
            f"The regular expression '{stripped}' is not valid RE2 syntax ({exc}); "
            "backreferences and lookarounds are not supported."
        ) from None
    if _matches_empty(regex):
        raise InvalidSeparator(
            f"The regular expression '{stripped}' can match empty text, which would cut every mail "
            "at its first line; make it require at least one character."
        )


@functools.lru_cache(maxsize=256)
def _compiled_regex(body: str) -> _Regex:
    """A regular-expression separator, compiled once per process however many mails it is tried on."""
    return _re2_compile(body)


@functools.lru_cache(maxsize=256)
def _parsed(text: str) -> Separator:
    """parse_separator, remembered: the same few stored separators are parsed for every mail."""
    return parse_separator(text)


@functools.lru_cache(maxsize=32)
def _plain_matcher(patterns: tuple[str, ...]) -> _Regex:
    """All plain separators as one RE2 alternation: one pass over the body instead of one per separator.

    Each separator is its own top-level branch with its own group, so on a line where several match
    the first one in the list wins, which is the tie rule. Every branch starts at the line start, so the
    leftmost match is also the earliest line.
    """
    import re2  # lazily, as in _re2_compile

    branches = "|".join(f"[ \\t>]*({re2.escape(pattern)})" for pattern in patterns)
    return _re2_compile(f"^(?:{branches})")


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


@dataclass(frozen=True)
class _Hit:
    """Where one separator first matches: the byte offset of that line's start, and its list position."""

    line_start: int
    index: int


def _skip(text: str, reason: object) -> str:
    return f"separator '{text}' skipped: {reason}"


def _plain_hit(data: bytes, plain: list[tuple[int, Separator]], skipped: list[str]) -> _Hit | None:
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
    return _Hit(line_start=match.start(), index=plain[group - 1][0])


def _regex_hit(data: bytes, index: int, separator: Separator, skipped: list[str]) -> _Hit | None:
    """The start of the line where this regular expression's first match begins."""
    try:
        match = _compiled_regex(separator.pattern).search(data)
    except Exception as exc:  # an old stored pattern RE2 no longer accepts, or RE2 running out of memory
        skipped.append(_skip(separator.text, exc))
        return None
    if match is None:
        return None
    return _Hit(line_start=data.rfind(b"\n", 0, match.start()) + 1, index=index)


def _first_hit(data: bytes, separators: Sequence[str], skipped: list[str]) -> _Hit | None:
    """The earliest line any separator matches; on a tie, the separator earlier in the list."""
    plain: list[tuple[int, Separator]] = []
    hits: list[_Hit] = []
    for index, text in enumerate(separators):
        try:
            separator = _parsed(text)
        except InvalidSeparator as exc:
            skipped.append(_skip(text, exc))
            continue
        if separator.is_regex:
            hit = _regex_hit(data, index, separator, skipped)
            if hit is not None:
                hits.append(hit)
        else:
            plain.append((index, separator))
    plain_hit = _plain_hit(data, plain, skipped)
    if plain_hit is not None:
        hits.append(plain_hit)
    return min(hits, key=lambda hit: (hit.line_start, hit.index), default=None)


def strip_reply(body: str, separators: Sequence[str]) -> ReplyCut:
    """The new part of a reply: everything above the first line where a separator matches.

    When that would leave nothing (the separator is on the first line, as in a bottom-posted reply, or
    only blank lines precede it) the whole body is kept: an empty comment would lose the mail, a
    comment with some quoted history only costs a little scrolling.
    """
    text = body.replace("\r\n", "\n")
    skipped: list[str] = []
    data = text.encode("utf-8", "surrogatepass")
    hit = _first_hit(data, separators, skipped)
    if hit is not None:
        kept = data[: hit.line_start].decode("utf-8", "surrogatepass").rstrip()
        if kept.strip():
            line = data.count(b"\n", 0, hit.line_start) + 1
            return ReplyCut(text=kept, separator=separators[hit.index], line=line, skipped=tuple(skipped))
    return ReplyCut(text=text, separator=None, line=None, skipped=tuple(skipped))
