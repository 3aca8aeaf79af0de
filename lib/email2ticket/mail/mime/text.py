"""Charsets and text hygiene: bytes to text whatever the label says, RFC 2047 words, database-safe strings.

Mail in the wild mislabels its charset, uses unknown labels, or sends undeclared 8-bit bytes; every function
here returns text (lossy at worst) instead of raising.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import re
from typing import Protocol


class Notes(Protocol):
    """Where a problem met while decoding is noted (notes.Notes; a protocol, so this module imports nothing of it)."""

    def add(self, note: str) -> None: ...


SURROGATE_RUN = re.compile("[\udc80-\udcff]+")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@functools.cache
def _encoded_word() -> re.Pattern[str]:
    """Compiled on first use (an encoded word the header parser left): most mail never needs it."""
    return re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")


# Senders (Outlook, Windows mailers) routinely put superset bytes under the subset label (zammad mail031.box:
# GBK characters labelled gb2312).  The WHATWG encoding standard decodes these labels with the superset.
_SUPERSET_CODECS = {
    "iso8859-1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
}
UNICODE_CODECS = frozenset({"utf-8", "ascii"})
# A 7-bit charset cannot describe 8-bit bytes: Japanese mailers that label the body iso-2022-jp write raw
# header bytes in Shift_JIS (zammad mail093.box).
EIGHT_BIT_SIBLINGS = {"iso2022_jp": "cp932", "iso2022_kr": "cp949"}


def decode_text(data: bytes, charset: str | None, notes: Notes, location: str) -> str:
    """Declared charset, then UTF-8, then a lossy guess: an unknown or wrong label must not lose the text."""
    codec = python_codec(charset)
    if charset and codec is None:
        notes.add(f"{location}: unknown charset {charset!r}")
    if codec is not None:
        try:
            return data.decode(codec)
        except (UnicodeError, LookupError):
            notes.add(f"{location}: text is not valid {charset}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if codec is not None and codec not in UNICODE_CODECS:
        # A multibyte text (e.g. iso-2022-jp) with one broken sequence: keep the rest readable.
        return data.decode(codec, "replace")
    return data.decode("cp1252", "replace")


def python_codec(charset: str | None) -> str | None:
    """Python codec for a MIME charset label, tolerating junk around it; None when unknown."""
    if not charset:
        return None
    label = charset.strip().strip("\"'").strip().lower()
    # "x-" and "iso-" prefixes on otherwise known names: zammad mail060.box declares "iso-gb2312".
    for candidate in (label, label.removeprefix("x-"), label.removeprefix("iso-")):
        try:
            info = codecs.lookup(candidate)
        except (LookupError, ValueError, TypeError):
            continue
        if getattr(info, "_is_text_encoding", True):  # "base64", "zlib"... are codecs but not charsets
            return _SUPERSET_CODECS.get(info.name, info.name)
    return None


def guess_decode(data: bytes, hint: str | None = None) -> str:
    """Undeclared bytes: UTF-8 if they are UTF-8, else the hinted charset, else cp1252."""
    for codec in ("utf-8", hint):
        if codec is not None:
            try:
                return data.decode(codec)
            except (UnicodeError, LookupError):
                pass
    return data.decode("cp1252", "replace")


def decode_words(text: str, notes: Notes, location: str) -> str:
    """Decode RFC 2047 encoded words, leaving malformed ones as they were sent.

    Adjacent words in one charset are decoded together because mailers split multibyte characters across
    words; whitespace between encoded words is dropped (RFC 2047 section 6.2).
    """
    pieces: list[str] = []
    run_charset: str | None = None
    run = bytearray()
    position = 0
    for match in _encoded_word().finditer(text):
        gap, position = text[position : match.start()], match.end()
        charset = match.group(1).partition("*")[0].lower()  # RFC 2231 language suffix: "utf-8*de"
        data = _encoded_word_bytes(match.group(2), match.group(3))
        adjacent = run_charset is not None and not gap.strip()
        if data is not None and adjacent and charset == run_charset:
            run += data
            continue
        if run_charset is not None:
            pieces.append(decode_text(bytes(run), run_charset, notes, location))
        pieces.append("" if adjacent and data is not None else gap)
        if data is None:
            notes.add(f"{location}: malformed encoded word {match.group(0)[:60]!r}")
            pieces.append(match.group(0))
            run_charset = None
        else:
            run_charset, run = charset, bytearray(data)
    if run_charset is not None:
        pieces.append(decode_text(bytes(run), run_charset, notes, location))
    pieces.append(text[position:])
    return "".join(pieces)


def _encoded_word_bytes(encoding: str, encoded: str) -> bytes | None:
    raw = encoded.encode("utf-8", "surrogateescape")
    if encoding in "qQ":
        return binascii.a2b_qp(raw, header=True)
    raw = b"".join(raw.split())
    try:
        return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4))
    except binascii.Error:
        return None


def repair_surrogates(text: str, hint: str | None = None) -> str:
    """Turn surrogate-escaped 8-bit bytes back into text (UTF-8, else the hinted charset, else cp1252)."""
    if not SURROGATE_RUN.search(text):
        return text
    try:
        # A raw header value: decode it whole, as Shift_JIS trail bytes can be ASCII (zammad mail093.box).
        return guess_decode(text.encode("ascii", "surrogateescape"), hint)
    except UnicodeEncodeError:  # already partly decoded text: decode each run of escaped bytes on its own
        return SURROGATE_RUN.sub(lambda run: guess_decode(run.group().encode("utf-8", "surrogateescape"), hint), text)


def clean(text: str) -> str:
    """Text safe for a PostgreSQL text column: no NUL, no lone surrogates (which UTF-8 cannot encode)."""
    text = repair_surrogates(text).replace("\x00", "")
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text
