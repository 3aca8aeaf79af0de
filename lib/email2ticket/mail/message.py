"""Parse raw message bytes into plain, immutable data.

This is the first thing the delivery filter does with every mail, and the mail can be anything: spam, bounces,
MIME torture tests, messages from broken mailers.  A crash here means the MTA keeps retrying (or bounces) a
message a customer sent to the help desk, so `parse_message` never raises: every problem it meets becomes a
human-readable note in `ParsedMessage.defects` instead.

The stdlib parser (`email.policy.default`) builds the MIME tree, but its header objects and content manager
raise on inputs seen in the wild (unknown charsets, RFC 2231 parameters that do not decode, deep nesting).
So header values are read raw and decoded here, every stdlib accessor is guarded with a `compat32` fallback,
and the tree is walked iteratively with a depth limit.  When the stdlib parser itself fails, it is retried
with `compat32`, and for nesting too deep for its recursion a depth-limited splitter builds the tree.  How each
of those steps works lives in `email2ticket.mail.mime`, one module per concept; this module is the public API.

Only the stdlib is imported at start-up (this runs once per delivered mail); inscriptis is imported only when
a message has HTML but no text/plain body.
"""

import email.utils
import hashlib
from email.message import Message

from msgspec import Struct
from msgspec.structs import force_setattr

from ..config.model import Limits
from ..errors import describe_error
from .lift import Lifted
from .limits import DEFAULT_LIMITS, bounded, scan
from .mime.body import body_text, charset_hint, is_inline, message_bytes, part_bytes
from .mime.digest import body_digest, body_offset
from .mime.filenames import fallback_name, safe_filename
from .mime.headers import (
    addresses,
    decode_header,
    first_message_id,
    first_raw,
    msg_ids,
    normalise_addr_spec,
    part_filename,
    part_param,
    raw_items,
)
from .mime.html_text import html_to_text
from .mime.notes import Notes
from .mime.text import UNICODE_CODECS, clean, guess_decode, python_codec
from .mime.tree import MAX_DEPTH, TREE_BUILDERS, Node, parse_compat, repair_header_block, walk

__all__ = ["MAX_DEPTH", "Attachment", "ParsedMessage", "normalise_address", "parse_message", "safe_filename"]


class Attachment(Struct, frozen=True):
    """One non-body leaf part of a message: a file, an inline image or an attached message."""

    filename: str | None
    content_type: str
    data: bytes
    sha256: str
    inline: bool

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def safe_filename(self) -> str:
        """The name to use on disk or in a download header: never a path, never empty."""
        return safe_filename(self.filename, fallback_name(self.content_type))


class ParsedMessage(Struct, frozen=True):
    """Everything later stages need from a message, as plain data that cannot raise on access."""

    subject: str = ""
    from_addresses: tuple[str, ...] = ()
    from_header_count: int = 0
    message_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = ""  # the text body; None: `html` is, converted on first use
    html: str | None = None  # the text/html body (the source of `text`, or its alternative), for reply cutting
    html_converted: bool = False  # `text` is converted from `html`: the message had no usable text/plain
    attachments: tuple[Attachment, ...] = ()
    body_digest: str = hashlib.sha256(b"").hexdigest()
    defects: tuple[str, ...] = ()
    over_limits: tuple[str, ...] = ()  # the structural limits the message broke (mail/limits.py), one sentence each

    @property
    def text(self) -> str:
        """The body as text. An HTML-only body is converted on first use and kept: a reply needs only the part
        above its quote container (reply/html.py), a new ticket all of it."""
        if self.body is None:
            converted = clean(html_to_text(self.html or "", Notes()))
            force_setattr(self, "body", converted)  # a cache: the value is what it always would be
            return converted
        return self.body

    def header(self, name: str) -> str | None:
        """First value of the header field `name` (case-insensitive), None when absent."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def header_all(self, name: str) -> tuple[str, ...]:
        """Every value of the header field `name` (case-insensitive), in message order."""
        wanted = name.lower()
        return tuple(value for key, value in self.headers if key.lower() == wanted)


# ----------------------------------------------------------------------------------------------------
# Public functions


def parse_message(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> ParsedMessage:
    """Parse raw RFC 5322 message bytes, within `limits`.  Never raises: problems are reported in `defects`,
    broken limits in `over_limits` (what lies beyond them is not parsed).

    Only a deadline (exits.DeadlineExceeded, a BaseException) gets through: no fallback may swallow it.
    """
    notes = Notes()
    try:
        found = scan(bytes(raw), limits)
        data = repair_header_block(bounded(bytes(raw), found, limits), notes)
        lifted = Lifted(data)  # large bodies stay out of the parser (mail/lift.py)
        too_deep = False
        for label, build in TREE_BUILDERS:
            if too_deep and build is parse_compat:
                continue  # it would recurse just as deep
            try:
                root = build(lifted.skeleton)
                lifted.restore(root)
                return _extract(root, data, notes, limits, found.breaches, lifted)
            except Exception as exc:  # a stdlib failure: retry with the next, more defensive tree builder
                notes.add(f"{label} failed: {describe_error(exc)}")
                too_deep = too_deep or isinstance(exc, RecursionError)
        return _last_resort(data, notes, found.breaches)
    except Exception as exc:  # even the last resort failed (e.g. MemoryError, non-bytes input)
        notes.add(f"message could not be parsed: {describe_error(exc)}")
        return ParsedMessage(defects=notes.freeze())


def normalise_address(text: str) -> str | None:
    """Reduce an address (with or without display name) to a lower-cased addr-spec, None if unusable.

    Lower-casing the local part is technically lossy, but matching a customer must not depend on how their
    mail client capitalised the address.
    """
    try:
        _, addr = email.utils.parseaddr(clean(text))
        return normalise_addr_spec(addr)
    except Exception:  # parseaddr has raised on hostile input in some CPython versions
        return None


# ----------------------------------------------------------------------------------------------------
# Extraction


def _extract(
    root: Message, raw: bytes, notes: Notes, limits: Limits, breaches: tuple[str, ...], lifted: Lifted
) -> ParsedMessage:
    nodes, pruned = walk(root, notes, limits.max_mime_depth)
    depth_breach = f"max_mime_depth: MIME parts nested deeper than {limits.max_mime_depth} levels"
    if pruned and depth_breach not in breaches:
        breaches += (depth_breach,)
    hint = charset_hint(nodes)
    body = body_text(nodes[0], notes, lifted)
    leaves = [node for node in nodes if node.is_leaf and node not in body.nodes]
    if len(leaves) > limits.max_attachments:
        breaches += (f"max_attachments: {len(leaves)} attachments (limit {limits.max_attachments})",)
        leaves = leaves[: limits.max_attachments]
    attachments = tuple(_attachment(node, notes, hint, lifted) for node in leaves)
    for node in nodes:
        for defect in node.part.defects:
            notes.add(f"{node.location}: {describe_error(defect)}")
    raw_headers = raw_items(root)
    headers = tuple((clean(name), decode_header(name, value, notes, hint)) for name, value in raw_headers)
    from_values = [value for name, value in raw_headers if name.lower() == "from"]
    return ParsedMessage(
        subject=next((value for name, value in headers if name.lower() == "subject"), "").strip(),
        from_addresses=tuple(address for value in from_values for address in addresses(value)),
        from_header_count=len(from_values),
        message_id=first_message_id(first_raw(raw_headers, "message-id")),
        in_reply_to=msg_ids(raw_headers, "in-reply-to"),
        references=msg_ids(raw_headers, "references"),
        headers=headers,
        body=body.text,
        html=body.html,
        html_converted=body.from_html,
        attachments=attachments,
        body_digest=body_digest(raw),
        defects=notes.freeze(),
        over_limits=breaches,
    )


def _last_resort(raw: bytes, notes: Notes, breaches: tuple[str, ...]) -> ParsedMessage:
    """Every tree builder failed: keep the digest and the body bytes as text, so nothing is lost silently."""
    body = raw[body_offset(raw) :]
    text = clean(guess_decode(body))
    return ParsedMessage(body=text, body_digest=body_digest(raw), defects=notes.freeze(), over_limits=breaches)


def _attachment(node: Node, notes: Notes, hint: str | None, lifted: Lifted) -> Attachment:
    if node.content_type.startswith("message/"):
        data = message_bytes(node, notes)
    else:
        data = part_bytes(node.part, notes, node.location, lifted)
    own_codec = python_codec(part_param(node.part, "charset"))
    return Attachment(
        filename=part_filename(node.part, node.location, notes, own_codec if own_codec not in UNICODE_CODECS else hint),
        content_type=node.content_type,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        inline=is_inline(node),
    )
