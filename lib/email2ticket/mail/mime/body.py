"""Choosing the message body among the parts, and reading a part's content as bytes or text.

Body selection follows `EmailMessage.get_body` (text/plain preferred, then text/html), done iteratively over
the walked tree; the parts that make up the body are not attachments.
"""

import email.policy
import io
from email.generator import BytesGenerator
from email.message import Message
from typing import Any, Protocol

from msgspec import Struct

from ...errors import describe_error
from .headers import COMPAT, first_raw, part_param, raw_items
from .notes import Notes
from .text import EIGHT_BIT_SIBLINGS, UNICODE_CODECS, clean, decode_text, python_codec
from .tree import Node

_BODY_PREFERENCE = ("plain", "html")

# Re-serialising an attached message must not refold its long headers (policy.default's refold_source="long"
# would), so the stored .eml stays as close to what was sent as a parsed tree allows.
_GENERATOR_POLICY = email.policy.default.clone(refold_source="none", linesep="\n", max_line_length=None)


def charset_hint(nodes: list[Node]) -> str | None:
    """The message's first non-Unicode charset, for undeclared 8-bit bytes in headers and filenames.

    Mailers that put raw 8-bit text in headers mostly use the charset of the body (zammad mail093.box:
    Shift_JIS subject, iso-2022-jp body), so it is the best guess after UTF-8.
    """
    for node in nodes:
        codec = python_codec(part_param(node.part, "charset"))
        if codec is not None and codec not in UNICODE_CODECS:
            return EIGHT_BIT_SIBLINGS.get(codec, codec)
    return None


class Body(Struct, frozen=True):
    """The message text, the HTML it was converted from or sent beside, and the parts that make up the body."""

    text: str | None  # None: the HTML is the body, converted only when its text is asked for (html_text)
    html: str | None
    from_html: bool
    nodes: frozenset[Node]


class LiftedBodies(Protocol):
    """Bodies kept out of the parser (mail/lift.py): their transfer-decoded bytes, straight from the raw message."""

    def decoded(self, part: Message) -> bytes | None: ...


def body_text(top: Node, notes: Notes, lifted: LiftedBodies | None = None) -> Body:
    """The body: text/plain preferred, else text/html converted to text; the HTML source kept either way.

    The HTML is kept because its structure (Gmail's gmail_quote, Outlook's divRplyFwdMsg ...) says where
    the quoted history starts better than any text separator can; only a reply needs it.
    """
    body = _find_body(top, _BODY_PREFERENCE)
    if body is None:
        return Body("", None, False, frozenset())
    text = part_text(body, notes, lifted)
    chosen = {body}
    is_html = body.content_type == "text/html"
    if not is_html and not text.strip():
        # Some bulk mailers send an empty text/plain alternative next to the real HTML.
        html = _find_body(top, ("html",))
        if html is not None:
            body, text, is_html = html, part_text(html, notes, lifted), True
            chosen.add(html)
    alternatives = _alternatives_of(body)
    if is_html:
        # Converting a large HTML body costs seconds; a reply is cut at its quote container first
        # (reply/html.py) and only what is kept is converted, so the conversion waits until asked for.
        return Body(None, clean(text), True, frozenset(chosen | alternatives))
    html_part = _first_html(alternatives)
    source = clean(part_text(html_part, notes, lifted)) if html_part is not None else None
    return Body(clean(text), source, False, frozenset(chosen | alternatives))


def _first_html(nodes: set[Node]) -> Node | None:
    """The text/html alternative of a text/plain body, the first in document order if there are several."""
    html = [node for node in nodes if node.content_type == "text/html"]
    return min(html, key=lambda node: [int(step) for step in node.path.split(".") if step.isdigit()], default=None)


def _find_body(top: Node, preference: tuple[str, ...]) -> Node | None:
    """`EmailMessage.get_body` semantics, iterative and limited to the walked tree."""
    best, best_rank = None, len(preference)
    stack = [top]
    while stack:
        node = stack.pop()
        maintype, _, subtype = node.content_type.partition("/")
        if node.disposition == "attachment":
            continue
        if maintype == "text" and node.is_leaf:
            rank = preference.index(subtype) if subtype in preference else len(preference)
            if rank < best_rank:
                best, best_rank = node, rank
                if rank == 0:
                    return best
        elif maintype == "multipart" and node.children:
            candidates = [_related_start(node)] if subtype == "related" else node.children
            stack.extend(reversed(candidates))
    return best


def _related_start(node: Node) -> Node:
    """The root part of a multipart/related: the one named by `start`, else the first (RFC 2387)."""
    start = part_param(node.part, "start")
    if start:
        for child in node.children:
            if first_raw(raw_items(child.part), "content-id") == start.strip():
                return child
    return node.children[0]


def _alternatives_of(body: Node) -> set[Node]:
    """The text/plain and text/html parts of the body's multipart/alternative: the same text again."""
    alternative = body.parent
    while alternative is not None and alternative.content_type != "multipart/alternative":
        alternative = alternative.parent
    if alternative is None:
        return set()
    found: set[Node] = set()
    stack = list(alternative.children)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        is_text = node.content_type in ("text/plain", "text/html")
        if node.is_leaf and is_text and node.disposition != "attachment":
            found.add(node)
    return found


def is_inline(node: Node) -> bool:
    if node.disposition is not None:
        return node.disposition == "inline"
    # Clients that omit Content-Disposition on cid: images still mean them to be shown inline.
    in_related = node.parent is not None and node.parent.content_type == "multipart/related"
    return in_related and first_raw(raw_items(node.part), "content-id") is not None


# ----------------------------------------------------------------------------------------------------
# Part content


def part_bytes(part: Message, notes: Notes, location: str, lifted: LiftedBodies | None = None) -> bytes:
    """Transfer-decoded payload; the undecoded bytes if the stdlib cannot decode it."""
    lifted_data = lifted.decoded(part) if lifted is not None else None
    if lifted_data is not None:
        return lifted_data
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:
        notes.add(f"{location}: payload could not be decoded: {describe_error(exc)}")
        data = None
    if isinstance(data, bytes):
        return data
    payload = part.get_payload()
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


def part_text(node: Node, notes: Notes, lifted: LiftedBodies | None = None) -> str:
    data = part_bytes(node.part, notes, node.location, lifted)
    text = decode_text(data, part_param(node.part, "charset"), notes, node.location)
    return text.replace("\r\n", "\n")  # CRLF on the wire, LF from the MTA pipe: same message, same text


def message_bytes(node: Node, notes: Notes) -> bytes:
    """An attached message as .eml bytes.

    The shallow tree keeps the enclosed message as its raw text, used as is; the stdlib parser has parsed
    it, so it is re-serialised from the tree (LF line endings, headers not refolded).
    """
    payload: Any = node.part.get_payload()
    if isinstance(payload, str):
        data = payload.encode("utf-8", "surrogateescape")
    else:
        single = len(payload) == 1 and isinstance(payload[0], Message)
        try:
            data = _flatten(payload[0] if single else node.part)
        except Exception as exc:  # e.g. RecursionError on an attached message nested hundreds of levels deep
            notes.add(f"{node.location}: attached message not serialised: {describe_error(exc)}")
            return b""
        if not single:  # message/delivery-status: header blocks; drop the part's own header
            data = data[data.find(b"\n\n") + 2 :] if node.part.keys() else data
        data = data.removeprefix(b"\n")  # an attached message without headers (zammad mail092.box)
    encoding = first_raw(raw_items(node.part), "content-transfer-encoding")
    if encoding and encoding.strip().lower() in ("base64", "quoted-printable"):
        # Not allowed by RFC 2046, but some mailers transfer-encode message/rfc822 parts anyway.
        decoder = Message(policy=COMPAT)
        decoder["Content-Transfer-Encoding"] = encoding.strip()
        decoder.set_payload(data.decode("ascii", "surrogateescape"))
        decoded = decoder.get_payload(decode=True)
        data = decoded if isinstance(decoded, bytes) else data
    return data


def _flatten(message: Message) -> bytes:
    buffer = io.BytesIO()
    BytesGenerator(buffer, mangle_from_=False, policy=_GENERATOR_POLICY).flatten(message)  # type: ignore[arg-type]
    return buffer.getvalue()
