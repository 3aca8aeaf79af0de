"""Parse raw message bytes into plain, immutable data.

This is the first thing the delivery filter does with every mail, and the mail can be anything: spam, bounces,
MIME torture tests, messages from broken mailers.  A crash here means the MTA keeps retrying (or bounces) a
message a customer sent to the help desk, so `parse_message` never raises: every problem it meets becomes a
human-readable note in `ParsedMessage.defects` instead.

The stdlib parser (`email.policy.default`) builds the MIME tree, but its header objects and content manager
raise on inputs seen in the wild (unknown charsets, RFC 2231 parameters that do not decode, deep nesting).
So header values are read raw and decoded here, every stdlib accessor is guarded with a `compat32` fallback,
and the tree is walked iteratively with a depth limit.  When the stdlib parser itself fails, it is retried
with `compat32`, and for nesting too deep for its recursion a depth-limited splitter builds the tree.

Only the stdlib is imported at start-up (this runs once per delivered mail); inscriptis is imported only when
a message has HTML but no text/plain body.
"""

import binascii
import codecs
import email.policy
import email.utils
import hashlib
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser, Parser
from typing import Any

__all__ = ["Attachment", "ParsedMessage", "normalise_address", "parse_message", "safe_filename"]

MAX_DEPTH = 50
"""Deepest MIME nesting walked.  Real mail stays below ~6 levels; torture tests nest thousands."""

MAX_DEFECT_NOTES = 100
"""A torture message can produce thousands of identical defects; keep the list readable."""

MAX_FILENAME_BYTES = 200

_MAX_REPAIRED_HEADER_BLOCK = 1 << 20
_DIGEST_CHUNK = 1 << 20
_BODY_PREFERENCE = ("plain", "html")
_POLICY = email.policy.default
_COMPAT = email.policy.compat32
# Re-serialising an attached message must not refold its long headers (policy.default's refold_source="long"
# would), so the stored .eml stays as close to what was sent as a parsed tree allows.
_GENERATOR_POLICY = email.policy.default.clone(refold_source="none", linesep="\n", max_line_length=None)

_SURROGATE_RUN = re.compile("[\udc80-\udcff]+")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_BREAK = re.compile(r"\r?\n|\r")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_MSG_ID_TOKEN = re.compile(r"<([^<>]*)>")
_WHITESPACE = re.compile(r"\s+")
_ANGLE_ADDR = re.compile(r"<([^<>\s\"]+@[^<>\s\"]+)(?:>|\s*$)")
_BARE_ADDR = re.compile(r"[^\s<>(),;:\"]+@[^\s<>(),;:\"]+")
_UNSAFE_NAME_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_DRIVE_PREFIX = re.compile(r"^[A-Za-z]:")
_SCRIPT_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_BLOCK_TAG = re.compile(r"<(?:br|/p|/div|/tr|/li|/h[1-6])\b[^>]*>", re.IGNORECASE)
_HEADER_LINE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[ \t]")  # the stdlib feedparser's headerRE
_KNOWN_FIELD = re.compile(
    rb"^(?:from|sender|reply-to|to|cc|subject|date|message-id|received|return-path|mime-version|content-type)"
    rb"[ \t]*:",
    re.IGNORECASE | re.MULTILINE,
)

# Senders (Outlook, Windows mailers) routinely put superset bytes under the subset label (zammad mail031.box:
# GBK characters labelled gb2312).  The WHATWG encoding standard decodes these labels with the superset.
_SUPERSET_CODECS = {
    "iso8859-1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
}
_UNICODE_CODECS = frozenset({"utf-8", "ascii"})
# A 7-bit charset cannot describe 8-bit bytes: Japanese mailers that label the body iso-2022-jp write raw
# header bytes in Shift_JIS (zammad mail093.box).
_EIGHT_BIT_SIBLINGS = {"iso2022_jp": "cp932", "iso2022_kr": "cp949"}

# Extensions for the fallback name of an attachment sent without one; deterministic, unlike mimetypes, which
# also reads the host's /etc/mime.types.
_EXTENSIONS = {
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "application/json": ".json",
    "application/msword": ".doc",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/pgp-signature": ".asc",
    "application/pkcs7-signature": ".p7s",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/csv": ".csv",
    "text/calendar": ".ics",
    "message/rfc822": ".eml",
    "message/global": ".eml",
    "message/delivery-status": ".txt",
}


@dataclass(frozen=True)
class Attachment:
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
        return safe_filename(self.filename, _fallback_name(self.content_type))


@dataclass(frozen=True)
class ParsedMessage:
    """Everything later stages need from a message, as plain data that cannot raise on access."""

    subject: str = ""
    from_addresses: tuple[str, ...] = ()
    from_header_count: int = 0
    message_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    text: str = ""
    html_converted: bool = False
    attachments: tuple[Attachment, ...] = ()
    body_digest: str = hashlib.sha256(b"").hexdigest()
    defects: tuple[str, ...] = ()

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


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse raw RFC 5322 message bytes.  Never raises: problems are reported in `defects`."""
    notes = _Notes()
    try:
        data = _repair_header_block(bytes(raw), notes)
        too_deep = False
        for label, build in _TREE_BUILDERS:
            if too_deep and build is _parse_compat:
                continue  # it would recurse just as deep
            try:
                return _extract(build(data), data, notes)
            except Exception as exc:  # a stdlib failure: retry with the next, more defensive tree builder
                notes.add(f"{label} failed: {_describe_exception(exc)}")
                too_deep = too_deep or isinstance(exc, RecursionError)
        return _last_resort(data, notes)
    except Exception as exc:  # even the last resort failed (e.g. MemoryError, non-bytes input)
        notes.add(f"message could not be parsed: {_describe_exception(exc)}")
        return ParsedMessage(defects=notes.freeze())


def normalise_address(text: str) -> str | None:
    """Reduce an address (with or without display name) to a lower-cased addr-spec, None if unusable.

    Lower-casing the local part is technically lossy, but matching a customer must not depend on how their
    mail client capitalised the address.
    """
    try:
        _, addr = email.utils.parseaddr(_clean(text))
        return _normalise_addr_spec(addr)
    except Exception:  # parseaddr has raised on hostile input in some CPython versions
        return None


def safe_filename(name: str | None, fallback: str = "attachment") -> str:
    """Make an attachment name safe for anything touching a file system.

    Keeps only the last path component (senders put "../../etc/passwd" or "C:\\Windows\\evil.exe" in
    filename parameters), drops control and bidi-override characters (used to disguise ".exe" as ".pdf"),
    strips leading dots (no hidden files, no ".."), and caps the UTF-8 length while keeping the extension.
    """
    return _sanitise_name(name or "") or _sanitise_name(fallback) or "attachment"


# ----------------------------------------------------------------------------------------------------
# Defect notes


class _Notes:
    """Ordered, de-duplicated, capped collection of defect notes."""

    def __init__(self) -> None:
        self._notes: dict[str, None] = {}
        self._dropped = 0

    def add(self, note: str) -> None:
        note = _clean(note)
        if note in self._notes:
            return
        if len(self._notes) >= MAX_DEFECT_NOTES:
            self._dropped += 1
            return
        self._notes[note] = None

    def freeze(self) -> tuple[str, ...]:
        notes = tuple(self._notes)
        if self._dropped:
            notes += (f"... {self._dropped} more defect notes omitted",)
        return notes


def _describe_exception(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


# ----------------------------------------------------------------------------------------------------
# Building the MIME tree


def _repair_header_block(raw: bytes, notes: _Notes) -> bytes:
    """Recover header fields that follow a line without a colon.

    The stdlib, like RFC 5322, ends the header block at the first line that is not a header field, so what
    follows, often From and Subject, becomes body text.  Seen in the wild: a gateway that wraps a long header
    without indenting the continuation (zammad mail054.box, X-Brightmail-Tracker) and a junk line ahead of
    the headers (zammad mail068.box).  Repaired only when a well-known field follows the damage: such lines
    become continuations of the field before them, and are dropped before the first field.
    """
    end = _body_offset(raw)
    if end >= len(raw) or end > _MAX_REPAIRED_HEADER_BLOCK:
        return raw  # no empty line: no header block to repair
    lines = raw[:end].splitlines(keepends=True)
    damaged = [i for i, line in enumerate(lines) if line.strip() and not _HEADER_LINE.match(line)]
    if not damaged or not _KNOWN_FIELD.search(b"".join(lines[damaged[0] + 1 :])):
        return raw
    first_field = next((i for i, line in enumerate(lines) if _HEADER_LINE.match(line)), len(lines))
    for i in damaged:
        lines[i] = b"" if i < first_field else b" " + lines[i]
    notes.add(f"header block: {len(damaged)} line(s) without a colon joined to the previous field or dropped")
    return b"".join(lines) + raw[end:]


def _parse_full(raw: bytes) -> Message:
    """The normal path: the stdlib parser, which handles the many MIME edge cases best."""
    return BytesParser(policy=_POLICY).parsebytes(raw)


def _parse_compat(raw: bytes) -> Message:
    """The stdlib parser with compat32 headers.

    policy.default decodes MIME parameters while parsing and raises when one does not decode (otobo
    PostMaster-Test12.box: an RFC 2231 filename in iso-2022-jp with an invalid sequence); compat32 reads
    parameters as plain strings, so the MIME structure survives.
    """
    return BytesParser(policy=_COMPAT).parsebytes(raw)


def _parse_shallow(raw: bytes) -> Message:
    """Tree for MIME structures nested too deep for the recursive stdlib parser.

    The stdlib parser recurses once per MIME level (RecursionError somewhere between 500 and 1,000 nested
    multiparts).  Header-only parses do not recurse, so split multiparts here, down to MAX_DEPTH + 1 levels;
    the walker ignores whatever lies below MAX_DEPTH.
    """
    root = BytesParser(policy=_COMPAT).parsebytes(raw, headersonly=True)
    pending: list[tuple[Message, int]] = [(root, 0)]
    while pending:
        part, depth = pending.pop()
        body = part.get_payload()
        if depth > MAX_DEPTH or not isinstance(body, str) or not _content_type(part).startswith("multipart/"):
            continue
        boundary = _param(part, "boundary")
        chunks = _split_multipart(body, boundary) if boundary else None
        if chunks is None:
            continue
        children = [Parser(policy=_COMPAT).parsestr(chunk, headersonly=True) for chunk in chunks]
        part.set_payload(children)  # type: ignore[arg-type]  # typeshed: list is invariant
        pending.extend((child, depth + 1) for child in children)
    return root


_TREE_BUILDERS: tuple[tuple[str, Callable[[bytes], Message]], ...] = (
    ("stdlib parser (policy.default)", _parse_full),
    ("stdlib parser (policy.compat32)", _parse_compat),
    ("depth-limited MIME splitter", _parse_shallow),
)


def _split_multipart(body: str, boundary: str) -> list[str] | None:
    """Body parts between boundary delimiter lines (RFC 2046 5.1.1); None when there is no delimiter."""
    delimiter = re.compile(r"^--" + re.escape(boundary) + r"(--)?[ \t]*\r?$", re.MULTILINE)
    chunks: list[str] = []
    start: int | None = None
    for match in delimiter.finditer(body):
        if start is not None:
            chunks.append(body[start : max(start, match.start() - 1)])
        if match.group(1):
            return chunks
        start = match.end() + 1
    if start is None:
        return None
    chunks.append(body[start:])  # no close delimiter: keep the last part
    return chunks


@dataclass(eq=False)
class _Node:
    """A walked part with what the extraction needs to know about it."""

    part: Message
    depth: int
    parent: "_Node | None"
    path: str
    content_type: str
    disposition: str | None
    children: list["_Node"] = field(default_factory=list)
    pruned: bool = False

    @property
    def location(self) -> str:
        return _location(self.path)

    @property
    def is_leaf(self) -> bool:
        # A multipart left here is a container (boundary-less ones became text/plain), even if it is empty.
        return not self.children and not self.pruned and not self.content_type.startswith("multipart/")


def _location(path: str) -> str:
    return f"part {path}" if path else "message"


def _walk(root: Message, notes: _Notes) -> list[_Node]:
    """All parts down to MAX_DEPTH in document order, iteratively (no RecursionError on deep trees)."""
    order: list[_Node] = []
    stack = [_make_node(root, None, "", notes)]
    while stack:
        node = stack.pop()
        order.append(node)
        subparts = _subparts(node)
        if not subparts:
            continue
        if node.depth >= MAX_DEPTH:
            node.pruned = True
            notes.add(f"MIME parts nested deeper than {MAX_DEPTH} levels were ignored")
            continue
        node.children = [
            _make_node(sub, node, f"{node.path}.{i}".lstrip("."), notes) for i, sub in enumerate(subparts, 1)
        ]
        stack.extend(reversed(node.children))
    return order


def _make_node(part: Message, parent: _Node | None, path: str, notes: _Notes) -> _Node:
    content_type = _content_type(part)
    if content_type.startswith("multipart/") and not part.is_multipart():
        # No boundary, or one that never occurs (flanker missing-boundaries.eml): the stdlib keeps the body
        # as one string.  Read it as text rather than losing it.
        notes.add(f"{_location(path)}: {content_type} without usable boundary read as text")
        content_type = "text/plain"
    depth = 0 if parent is None else parent.depth + 1
    return _Node(part, depth, parent, path, content_type, _disposition(part))


def _subparts(node: _Node) -> list[Message]:
    if node.content_type.startswith("message/") or not node.part.is_multipart():
        return []  # attached messages are kept whole, as .eml attachments
    payload = node.part.get_payload()
    return [sub for sub in payload if isinstance(sub, Message)] if isinstance(payload, list) else []


# ----------------------------------------------------------------------------------------------------
# Extraction


def _extract(root: Message, raw: bytes, notes: _Notes) -> ParsedMessage:
    nodes = _walk(root, notes)
    hint = _charset_hint(nodes)
    text, html_converted, body_nodes = _body_text(nodes[0], notes)
    leaves = [node for node in nodes if node.is_leaf and node not in body_nodes]
    attachments = tuple(_attachment(node, notes, hint) for node in leaves)
    for node in nodes:
        for defect in node.part.defects:
            notes.add(f"{node.location}: {_describe_exception(defect)}")
    raw_headers = _raw_items(root)
    headers = tuple((_clean(name), _decode_header(name, value, notes, hint)) for name, value in raw_headers)
    from_values = [value for name, value in raw_headers if name.lower() == "from"]
    return ParsedMessage(
        subject=next((value for name, value in headers if name.lower() == "subject"), "").strip(),
        from_addresses=tuple(address for value in from_values for address in _addresses(value)),
        from_header_count=len(from_values),
        message_id=_message_id(_first_raw(raw_headers, "message-id")),
        in_reply_to=_msg_ids(raw_headers, "in-reply-to"),
        references=_msg_ids(raw_headers, "references"),
        headers=headers,
        text=text,
        html_converted=html_converted,
        attachments=attachments,
        body_digest=_body_digest(raw),
        defects=notes.freeze(),
    )


def _last_resort(raw: bytes, notes: _Notes) -> ParsedMessage:
    """Every tree builder failed: keep the digest and the body bytes as text, so nothing is lost silently."""
    body = raw[_body_offset(raw) :]
    text = _clean(_guess_decode(body))
    return ParsedMessage(text=text, body_digest=_body_digest(raw), defects=notes.freeze())


def _charset_hint(nodes: list[_Node]) -> str | None:
    """The message's first non-Unicode charset, for undeclared 8-bit bytes in headers and filenames.

    Mailers that put raw 8-bit text in headers mostly use the charset of the body (zammad mail093.box:
    Shift_JIS subject, iso-2022-jp body), so it is the best guess after UTF-8.
    """
    for node in nodes:
        codec = _codec(_param(node.part, "charset"))
        if codec is not None and codec not in _UNICODE_CODECS:
            return _EIGHT_BIT_SIBLINGS.get(codec, codec)
    return None


def _body_text(top: _Node, notes: _Notes) -> tuple[str, bool, set[_Node]]:
    """The message text, whether it came from HTML, and the parts that make up the body."""
    body = _find_body(top, _BODY_PREFERENCE)
    if body is None:
        return "", False, set()
    text = _part_text(body, notes)
    chosen = {body}
    is_html = body.content_type == "text/html"
    if not is_html and not text.strip():
        # Some bulk mailers send an empty text/plain alternative next to the real HTML.
        html = _find_body(top, ("html",))
        if html is not None:
            body, text, is_html = html, _part_text(html, notes), True
            chosen.add(html)
    if is_html:
        text = _html_to_text(text, notes)
    return _clean(text), is_html, chosen | _alternatives_of(body)


def _find_body(top: _Node, preference: tuple[str, ...]) -> _Node | None:
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


def _related_start(node: _Node) -> _Node:
    """The root part of a multipart/related: the one named by `start`, else the first (RFC 2387)."""
    start = _param(node.part, "start")
    if start:
        for child in node.children:
            if _first_raw(_raw_items(child.part), "content-id") == start.strip():
                return child
    return node.children[0]


def _alternatives_of(body: _Node) -> set[_Node]:
    """The text/plain and text/html parts of the body's multipart/alternative: the same text again."""
    alternative = body.parent
    while alternative is not None and alternative.content_type != "multipart/alternative":
        alternative = alternative.parent
    if alternative is None:
        return set()
    found: set[_Node] = set()
    stack = list(alternative.children)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        is_text = node.content_type in ("text/plain", "text/html")
        if node.is_leaf and is_text and node.disposition != "attachment":
            found.add(node)
    return found


def _attachment(node: _Node, notes: _Notes, hint: str | None) -> Attachment:
    if node.content_type.startswith("message/"):
        data = _message_bytes(node, notes)
    else:
        data = _part_bytes(node.part, notes, node.location)
    own_codec = _codec(_param(node.part, "charset"))
    return Attachment(
        filename=_filename(node, notes, own_codec if own_codec not in _UNICODE_CODECS else hint),
        content_type=node.content_type,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        inline=_is_inline(node),
    )


def _is_inline(node: _Node) -> bool:
    if node.disposition is not None:
        return node.disposition == "inline"
    # Clients that omit Content-Disposition on cid: images still mean them to be shown inline.
    in_related = node.parent is not None and node.parent.content_type == "multipart/related"
    return in_related and _first_raw(_raw_items(node.part), "content-id") is not None


# ----------------------------------------------------------------------------------------------------
# Part content


def _part_bytes(part: Message, notes: _Notes, location: str) -> bytes:
    """Transfer-decoded payload; the undecoded bytes if the stdlib cannot decode it."""
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:
        notes.add(f"{location}: payload could not be decoded: {_describe_exception(exc)}")
        data = None
    if isinstance(data, bytes):
        return data
    payload = part.get_payload()
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


def _part_text(node: _Node, notes: _Notes) -> str:
    data = _part_bytes(node.part, notes, node.location)
    text = _decode_text(data, _param(node.part, "charset"), notes, node.location)
    return text.replace("\r\n", "\n")  # CRLF on the wire, LF from the MTA pipe: same message, same text


def _message_bytes(node: _Node, notes: _Notes) -> bytes:
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
            notes.add(f"{node.location}: attached message not serialised: {_describe_exception(exc)}")
            return b""
        if not single:  # message/delivery-status: header blocks; drop the part's own header
            data = data[data.find(b"\n\n") + 2 :] if node.part.keys() else data
        data = data.removeprefix(b"\n")  # an attached message without headers (zammad mail092.box)
    encoding = _first_raw(_raw_items(node.part), "content-transfer-encoding")
    if encoding and encoding.strip().lower() in ("base64", "quoted-printable"):
        # Not allowed by RFC 2046, but some mailers transfer-encode message/rfc822 parts anyway.
        decoder = Message(policy=_COMPAT)
        decoder["Content-Transfer-Encoding"] = encoding.strip()
        decoder.set_payload(data.decode("ascii", "surrogateescape"))
        decoded = decoder.get_payload(decode=True)
        data = decoded if isinstance(decoded, bytes) else data
    return data


def _flatten(message: Message) -> bytes:
    buffer = io.BytesIO()
    BytesGenerator(buffer, mangle_from_=False, policy=_GENERATOR_POLICY).flatten(message)  # type: ignore[arg-type]
    return buffer.getvalue()


def _decode_text(data: bytes, charset: str | None, notes: _Notes, location: str) -> str:
    """Declared charset, then UTF-8, then a lossy guess: an unknown or wrong label must not lose the text."""
    codec = _codec(charset)
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
    if codec is not None and codec not in _UNICODE_CODECS:
        # A multibyte text (e.g. iso-2022-jp) with one broken sequence: keep the rest readable.
        return data.decode(codec, "replace")
    return data.decode("cp1252", "replace")


def _codec(charset: str | None) -> str | None:
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


def _guess_decode(data: bytes, hint: str | None = None) -> str:
    """Undeclared bytes: UTF-8 if they are UTF-8, else the hinted charset, else cp1252."""
    for codec in ("utf-8", hint):
        if codec is not None:
            try:
                return data.decode(codec)
            except (UnicodeError, LookupError):
                pass
    return data.decode("cp1252", "replace")


def _html_to_text(html: str, notes: _Notes) -> str:
    if not html.strip():
        return ""
    try:
        from inscriptis import get_text  # lazy: ~30 ms of imports most mails never need

        return str(get_text(html.replace("\x00", "")))
    except Exception as exc:
        notes.add(f"HTML body could not be converted by inscriptis: {_describe_exception(exc)}")
        return _strip_tags(html)


def _strip_tags(html: str) -> str:
    """Crude HTML-to-text, only for when inscriptis fails."""
    import html as html_module  # lazy: only needed on this rare path

    text = _BLOCK_TAG.sub("\n", _SCRIPT_STYLE.sub("", html))
    return html_module.unescape(_TAG.sub("", text))


# ----------------------------------------------------------------------------------------------------
# MIME parameters, read defensively


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # the header registry raising on a hostile Content-Type
        return _compat(part).get_content_type()


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:
        return _compat(part).get_content_disposition()


def _param(part: Message, name: str) -> str | None:
    """A Content-Type parameter; policy.default's parser raises on some RFC 2231 values, compat32 does not."""
    try:
        value = part.get_param(name)
    except Exception:
        value = _compat(part).get_param(name)
    if value is None:
        return None
    return _clean(str(email.utils.collapse_rfc2231_value(value)))


def _filename(node: _Node, notes: _Notes, hint: str | None) -> str | None:
    """Filename as sent: Content-Disposition filename, else Content-Type name, RFC 2231/2047 decoded."""
    items = _raw_items(node.part)
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        raw = _first_raw(items, header, hint)
        if raw is None:
            continue
        try:
            value = _registry_param(header, raw, param)
        except Exception:  # otobo PostMaster-Test12.box: RFC 2231 value in iso-2022-jp that does not decode
            value = _compat_param(header, raw, param)
        if value is not None:
            return _clean(_decode_words(value, notes, node.location) if "=?" in value else value)
    return None


def _registry_param(header: str, raw: str, param: str) -> str | None:
    params = getattr(_POLICY.header_factory(header, raw), "params", {})
    value = params.get(param)
    return None if value is None else str(value)


def _compat_param(header: str, raw: str, param: str) -> str | None:
    message = Message(policy=_COMPAT)
    message[header] = raw
    value = message.get_param(param, header=header)
    return None if value is None else str(email.utils.collapse_rfc2231_value(value)).strip()


def _compat(part: Message) -> Message:
    """A compat32 copy of the part's MIME headers: its string-based accessors do not raise."""
    message = Message(policy=_COMPAT)
    for name, value in _raw_items(part):
        if name.lower() in ("content-type", "content-disposition"):
            message[name] = _unfold(value)
    return message


# ----------------------------------------------------------------------------------------------------
# Headers


def _raw_items(part: Message) -> list[tuple[str, str]]:
    """Header fields as parsed (8-bit bytes as surrogate escapes), without creating header objects."""
    return [(name, value if isinstance(value, str) else str(value)) for name, value in part.raw_items()]


def _first_raw(items: list[tuple[str, str]], name: str, hint: str | None = None) -> str | None:
    return next((_unfold(value, hint) for key, value in items if key.lower() == name), None)


def _unfold(value: str, hint: str | None = None) -> str:
    """RFC 5322 unfolding, with undeclared 8-bit bytes decoded."""
    return _repair_surrogates(_LINE_BREAK.sub("", value), hint)


def _decode_header(name: str, value: str, notes: _Notes, hint: str | None) -> str:
    """Unfold, decode 8-bit bytes and RFC 2047 encoded words, as unstructured text."""
    unfolded = _LINE_BREAK.sub("", value)
    if _SURROGATE_RUN.search(unfolded):
        notes.add(f"header {name}: undeclared 8-bit bytes")
    text = _repair_surrogates(unfolded, hint)
    return _clean(_decode_words(text, notes, f"header {name}") if "=?" in text else text)


def _decode_words(text: str, notes: _Notes, location: str) -> str:
    """Decode RFC 2047 encoded words, leaving malformed ones as they were sent.

    Adjacent words in one charset are decoded together because mailers split multibyte characters across
    words; whitespace between encoded words is dropped (RFC 2047 section 6.2).
    """
    pieces: list[str] = []
    run_charset: str | None = None
    run = bytearray()
    position = 0
    for match in _ENCODED_WORD.finditer(text):
        gap, position = text[position : match.start()], match.end()
        charset = match.group(1).partition("*")[0].lower()  # RFC 2231 language suffix: "utf-8*de"
        data = _encoded_word_bytes(match.group(2), match.group(3))
        adjacent = run_charset is not None and not gap.strip()
        if data is not None and adjacent and charset == run_charset:
            run += data
            continue
        if run_charset is not None:
            pieces.append(_decode_text(bytes(run), run_charset, notes, location))
        pieces.append("" if adjacent and data is not None else gap)
        if data is None:
            notes.add(f"{location}: malformed encoded word {match.group(0)[:60]!r}")
            pieces.append(match.group(0))
            run_charset = None
        else:
            run_charset, run = charset, bytearray(data)
    if run_charset is not None:
        pieces.append(_decode_text(bytes(run), run_charset, notes, location))
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


def _addresses(raw: str) -> list[str]:
    """Usable addresses of one address header: registry parse, else getaddresses, else <...> salvage."""
    value = _clean(_unfold(raw))
    try:
        header = _POLICY.header_factory("from", value)
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
    angle = _ANGLE_ADDR.findall(value)
    bare = _BARE_ADDR.findall(value) if "<" not in value else []
    return _usable(angle, str) if angle else _usable(bare, str) if len(bare) == 1 else []


def _usable(items: Iterable[Any], spec_of: Callable[[Any], str]) -> list[str]:
    found = []
    for item in items:
        try:
            address = _normalise_addr_spec(spec_of(item))
        except Exception:  # rendering a registry Address can raise on odd input
            address = None
        if address is not None:
            found.append(address)
    return found


def _normalise_addr_spec(addr: str) -> str | None:
    addr = _clean(addr).strip().strip("<>").strip().lower()
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


def _message_id(raw: str | None) -> str | None:
    """The first <msg-id>; monitoring tools that send bare ids get them wrapped in angle brackets."""
    if raw is None:
        return None
    ids = _msg_id_tokens(raw)
    if ids:
        return ids[0]
    bare = _WHITESPACE.sub("", _clean(raw)).strip("<>")
    return f"<{bare}>" if bare else None


def _msg_ids(items: list[tuple[str, str]], name: str) -> tuple[str, ...]:
    values = (_unfold(value) for key, value in items if key.lower() == name)
    return tuple(token for value in values for token in _msg_id_tokens(value))


def _msg_id_tokens(value: str) -> list[str]:
    tokens = (_WHITESPACE.sub("", _clean(inner)) for inner in _MSG_ID_TOKEN.findall(value))
    return [f"<{token}>" for token in tokens if token]


# ----------------------------------------------------------------------------------------------------
# Text hygiene


def _repair_surrogates(text: str, hint: str | None = None) -> str:
    """Turn surrogate-escaped 8-bit bytes back into text (UTF-8, else the hinted charset, else cp1252)."""
    if not _SURROGATE_RUN.search(text):
        return text
    try:
        # A raw header value: decode it whole, as Shift_JIS trail bytes can be ASCII (zammad mail093.box).
        return _guess_decode(text.encode("ascii", "surrogateescape"), hint)
    except UnicodeEncodeError:  # already partly decoded text: decode each run of escaped bytes on its own
        return _SURROGATE_RUN.sub(lambda run: _guess_decode(run.group().encode("utf-8", "surrogateescape"), hint), text)


def _clean(text: str) -> str:
    """Text safe for a PostgreSQL text column: no NUL, no lone surrogates (which UTF-8 cannot encode)."""
    text = _repair_surrogates(text).replace("\x00", "")
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


def _sanitise_name(name: str) -> str:
    name = _UNSAFE_NAME_CHARS.sub("", _clean(name))
    name = _DRIVE_PREFIX.sub("", name.replace("\\", "/")).rsplit("/", 1)[-1]
    return _truncate_utf8(name.strip().lstrip(".").strip(), MAX_FILENAME_BYTES)


def _truncate_utf8(name: str, limit: int) -> str:
    """Cut to `limit` UTF-8 bytes on a character boundary, keeping a short extension."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, extension = name.rpartition(".")
    suffix = dot + extension if stem and 0 < len(extension.encode("utf-8")) <= 16 else ""
    head = (stem if suffix else name).encode("utf-8")[: limit - len(suffix.encode("utf-8"))]
    return head.decode("utf-8", "ignore").rstrip() + suffix


def _fallback_name(content_type: str) -> str:
    extension = _EXTENSIONS.get(content_type)
    if extension is None:
        import mimetypes  # lazy: rare types only; reads the host's mime.types on first use

        extension = mimetypes.guess_extension(content_type, strict=False) or ""
    return f"attachment{extension}"


# ----------------------------------------------------------------------------------------------------
# Body digest


def _body_offset(raw: bytes) -> int:
    """Index after the first empty line (the end of the header block); len(raw) when there is none."""
    for separator in (b"\n", b"\r\n"):
        if raw.startswith(separator):
            return len(separator)
    ends = [index + len(sep) for sep in (b"\n\n", b"\n\r\n") if (index := raw.find(sep)) >= 0]
    return min(ends) if ends else len(raw)


def _body_digest(raw: bytes) -> str:
    """SHA-256 of the body with CRLF normalised to LF, hashed in chunks (no full copy of a 25 MB message).

    Two copies of one message that took different routes differ only in their trace headers (and maybe
    line endings), so this identifies duplicates.
    """
    digest = hashlib.sha256()
    view = memoryview(raw)
    position = _body_offset(raw)
    while position < len(raw):
        end = min(position + _DIGEST_CHUNK, len(raw))
        while end < len(raw) and raw[end - 1] == 0x0D:  # never split a CRLF between chunks
            end += 1
        digest.update(bytes(view[position:end]).replace(b"\r\n", b"\n"))
        position = end
    return digest.hexdigest()
