"""Header fields and MIME parameters, read raw and decoded defensively.

The stdlib's header registry raises on values seen in the wild (RFC 2231 parameters that do not decode,
hostile Content-Types), so every accessor here falls back to a compat32 reading of the same field.
"""

import email.policy
import email.utils
import functools
import re
from collections.abc import Callable, Iterable
from email.message import Message
from typing import Any

from .notes import Notes
from .text import SURROGATE_RUN, clean, decode_words, repair_surrogates

POLICY = email.policy.default
COMPAT = email.policy.compat32

_LINE_BREAK = re.compile(r"\r?\n|\r")

_MSG_ID_TOKEN = re.compile(r"<([^<>]*)>")
_WHITESPACE = re.compile(r"\s+")


# Linear on hostile input: the first run stops at the first @ (each @ is not tried as the split), and a bare
# address starts only where a token starts (not at every position of a long run without an @).
@functools.cache
def _angle_addr() -> re.Pattern[str]:
    """Compiled on first use (an address field neither parser reads): most mail never needs it."""
    return re.compile(r"<([^<>\s\"@]+@[^<>\s\"]+)(?:>|\s*$)")


@functools.cache
def _bare_addr() -> re.Pattern[str]:
    """Compiled on first use (an address field neither parser reads): most mail never needs it."""
    return re.compile(r"(?<![^\s<>(),;:\"])[^\s<>(),;:\"@]+@[^\s<>(),;:\"]+")


def part_content_type(part: Message) -> str:
    """The part's content type, safe to store (a hostile header may carry NUL or undecodable bytes)."""
    try:
        kind = part.get_content_type()
    except Exception:  # the header registry raising on a hostile Content-Type
        kind = _compat(part).get_content_type()
    return clean(kind)


def part_disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:
        return _compat(part).get_content_disposition()


def part_param(part: Message, name: str) -> str | None:
    """A Content-Type parameter; policy.default's parser raises on some RFC 2231 values, compat32 does not."""
    try:
        value = part.get_param(name)
    except Exception:
        value = _compat(part).get_param(name)
    if value is None:
        return None
    return clean(str(email.utils.collapse_rfc2231_value(value)))


def part_filename(part: Message, location: str, notes: Notes, hint: str | None) -> str | None:
    """Filename as sent: Content-Disposition filename, else Content-Type name, RFC 2231/2047 decoded."""
    items = raw_items(part)
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        raw = first_raw(items, header, hint)
        if raw is None:
            continue
        try:
            value = _registry_param(header, raw, param)
        except Exception:  # otobo PostMaster-Test12.box: RFC 2231 value in iso-2022-jp that does not decode
            value = _compat_param(header, raw, param)
        if value is not None:
            return clean(decode_words(value, notes, location) if "=?" in value else value)
    return None


def _registry_param(header: str, raw: str, param: str) -> str | None:
    params = getattr(POLICY.header_factory(header, raw), "params", {})
    value = params.get(param)
    return None if value is None else str(value)


def _compat_param(header: str, raw: str, param: str) -> str | None:
    message = Message(policy=COMPAT)
    message[header] = raw
    value = message.get_param(param, header=header)
    return None if value is None else str(email.utils.collapse_rfc2231_value(value)).strip()


def _compat(part: Message) -> Message:
    """A compat32 copy of the part's MIME headers: its string-based accessors do not raise."""
    message = Message(policy=COMPAT)
    for name, value in raw_items(part):
        if name.lower() in ("content-type", "content-disposition"):
            message[name] = unfold(value)
    return message


def raw_items(part: Message) -> list[tuple[str, str]]:
    """Header fields as parsed (8-bit bytes as surrogate escapes), without creating header objects."""
    return [(name, value if isinstance(value, str) else str(value)) for name, value in part.raw_items()]


def first_raw(items: list[tuple[str, str]], name: str, hint: str | None = None) -> str | None:
    return next((unfold(value, hint) for key, value in items if key.lower() == name), None)


def unfold(value: str, hint: str | None = None) -> str:
    """RFC 5322 unfolding, with undeclared 8-bit bytes decoded."""
    return repair_surrogates(_LINE_BREAK.sub("", value), hint)


def decode_header(name: str, value: str, notes: Notes, hint: str | None) -> str:
    """Unfold, decode 8-bit bytes and RFC 2047 encoded words, as unstructured text."""
    unfolded = _LINE_BREAK.sub("", value)
    if SURROGATE_RUN.search(unfolded):
        notes.add(f"header {name}: undeclared 8-bit bytes")
    text = repair_surrogates(unfolded, hint)
    return clean(decode_words(text, notes, f"header {name}") if "=?" in text else text)


def addresses(raw: str) -> tuple[str, ...]:
    """Usable addresses of one address header: registry parse, else getaddresses, else <...> salvage.

    The last few ordinary-sized headers are remembered: the participant and notification rules each read the
    same To: and Cc: of one message, and the header registry's parse is the dearest step of a small delivery
    (a long header is parsed each time, so that the memory kept stays small whatever the mail)."""
    return _remembered_addresses(raw) if len(raw) <= _REMEMBERED_LENGTH else tuple(_addresses(raw))


_REMEMBERED_LENGTH = 4096


@functools.lru_cache(maxsize=64)
def _remembered_addresses(raw: str) -> tuple[str, ...]:
    return tuple(_addresses(raw))


def _addresses(raw: str) -> list[str]:
    value = clean(unfold(raw))
    try:
        header = POLICY.header_factory("from", value)
    except Exception:
        header = None
    if header is not None and not header.defects:
        return _usable(getattr(header, "addresses", ()), lambda address: str(address.addr_spec))
    try:
        found = _usable(email.utils.getaddresses([value]), lambda pair: str(pair[1]))
    except Exception:
        found = []
    if found:
        return found
    # '"unterminated <bob@example.com': neither parser copes, but the angle-addr says what was meant.  A bare
    # address is only taken when there are no angle brackets: in '<power quadrant system@example.com>'
    # (zammad mail071.box), "system@example.com" is somebody else.
    angle = _angle_addr().findall(value)
    bare = _bare_addr().findall(value) if "<" not in value else []
    return _usable(angle, str) if angle else _usable(bare, str) if len(bare) == 1 else []


def _usable(items: Iterable[Any], spec_of: Callable[[Any], str]) -> list[str]:
    found = []
    for item in items:
        try:
            address = normalise_addr_spec(spec_of(item))
        except Exception:  # rendering a registry Address can raise on odd input
            address = None
        if address is not None:
            found.append(address)
    return found


def normalise_addr_spec(addr: str) -> str | None:
    addr = clean(addr).strip().strip("<>").strip().lower()
    local, at, domain = addr.rpartition("@")
    domain = domain.rstrip(".")
    if not at or not local or not domain or len(addr) > 320:
        return None
    quoted_local = len(local) > 1 and local.startswith('"') and local.endswith('"')
    if any(char in domain for char in ' \t<>(),;:"\\@') or not domain.replace(".", ""):
        return None
    if not quoted_local and any(char in local for char in ' \t<>(),;:"\\'):
        return None
    return f"{local}@{domain}"


def first_message_id(raw: str | None) -> str | None:
    """The first <msg-id>; monitoring tools that send bare ids get them wrapped in angle brackets."""
    if raw is None:
        return None
    ids = _msg_id_tokens(raw)
    if ids:
        return ids[0]
    bare = _WHITESPACE.sub("", clean(raw)).strip("<>")
    return f"<{bare}>" if bare else None


def msg_ids(items: list[tuple[str, str]], name: str) -> tuple[str, ...]:
    values = (unfold(value) for key, value in items if key.lower() == name)
    return tuple(token for value in values for token in _msg_id_tokens(value))


def _msg_id_tokens(value: str) -> list[str]:
    tokens = (_WHITESPACE.sub("", clean(inner)) for inner in _MSG_ID_TOKEN.findall(value))
    return [f"<{token}>" for token in tokens if token]
