"""Large bodies kept out of the standard parser: it builds the MIME tree, not copies of every line.

The stdlib feedparser turns a body into a list of lines before joining them into the payload, which
costs about seven times the body in memory: a 45 MB text body peaked at 440 MB. Only the structure
needs the parser. So before parsing, each large leaf body (a text body, a base64 attachment) is
replaced by one placeholder line that no sender can predict, the skeleton is parsed, and a part that
stands for a lifted body reads its bytes from the raw message when asked (mime/body.py part_bytes):
base64 is decoded straight from the raw bytes, text is copied once. Charsets and everything after run
unchanged.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
from email.message import Message
from itertools import pairwise

from .limits import declarations
from .mime.digest import body_offset

LIFT_THRESHOLD = 256 * 1024  # a body smaller than this costs the parser little


@functools.cache
def _content_type() -> re.Pattern[bytes]:
    """Compiled on first use (a large part's header section): most mail never needs it."""
    return re.compile(rb"^content-type[ \t]*:[ \t]*([a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+)", re.I | re.M)


class Lifted:
    """The skeleton handed to the parser, and the bodies taken out of it."""

    def __init__(self, raw: bytes) -> None:
        self.token = f"email2ticket-lifted-{os.urandom(12).hex()}-"
        self.bodies: dict[str, tuple[int, int]] = {}
        self._parts: dict[int, tuple[Message, tuple[int, int]]] = {}  # id(part) -> the part, its body's span
        self.raw = raw
        self.skeleton = self._lift(raw)

    def _lift(self, raw: bytes) -> bytes:
        if len(raw) < LIFT_THRESHOLD:
            return raw
        spans = list(_leaf_bodies(raw))
        if not spans:
            return raw
        pieces, position = [], 0
        for start, stop in spans:
            placeholder = f"{self.token}{len(self.bodies)}"
            self.bodies[placeholder] = (start, stop)
            pieces += [raw[position:start], placeholder.encode("ascii"), b"\n"]
            position = stop
        pieces.append(raw[position:])
        return b"".join(pieces)

    def restore(self, root: Message) -> None:
        """Note which parts of the parsed skeleton stand for a lifted body (their payloads stay short)."""
        if not self.bodies:
            return
        for part in root.walk():
            payload = part.get_payload() if not part.is_multipart() else None
            if isinstance(payload, str) and payload.startswith(self.token):
                span = self.bodies.get(payload.strip())
                if span is not None:
                    self._parts[id(part)] = (part, span)

    def decoded(self, part: Message) -> bytes | None:
        """A lifted part's transfer-decoded bytes, read from the raw message without copying it to text first;
        None for a part that was not lifted. Quoted-printable, and base64 the strict decoder refuses, are
        put back as the payload for the standard parser to decode with its own repairs and defects."""
        entry = self._parts.get(id(part))
        if entry is None:
            return None
        start, stop = entry[1]
        view = memoryview(self.raw)[start:stop]
        encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
        if encoding in ("", "7bit", "8bit", "binary"):
            return bytes(view)
        if encoding == "base64":
            try:
                return base64.b64decode(view)  # characters outside the alphabet (line breaks) are skipped
            except (binascii.Error, ValueError):
                pass
        part.set_payload(bytes(view).decode("ascii", "surrogateescape"))
        del self._parts[id(part)]
        return None


def _leaf_bodies(raw: bytes) -> list[tuple[int, int]]:
    """(start, stop) of every leaf body larger than LIFT_THRESHOLD, in order; multipart and message/*
    parts are never lifted (their content is structure the parser must see)."""
    end = body_offset(raw)
    if not _is_container(raw[:end]):
        return [(end, len(raw))] if len(raw) - end >= LIFT_THRESHOLD else []
    boundaries = {boundary for _, _, boundary in declarations(raw)}
    delimiters = []  # (line start, line end, closing)
    found = raw.find(b"\n--", max(0, end - 1))
    while found != -1:
        line_end = raw.find(b"\n", found + 1)
        line_end = len(raw) if line_end == -1 else line_end + 1
        token = raw[found + 3 : line_end].rstrip()
        if token in boundaries or (token.endswith(b"--") and token[:-2] in boundaries):
            delimiters.append((found + 1, line_end, token not in boundaries))
        found = raw.find(b"\n--", found + 1)
    spans = []
    for (_, part_start, closing), (next_start, _, _) in pairwise(delimiters):
        if closing:
            continue  # an epilogue, not a part
        stop = next_start - 1  # the line break before a delimiter belongs to the delimiter
        if stop > part_start and raw[stop - 1 : stop] == b"\r":
            stop -= 1
        header_end = part_start + body_offset(raw[part_start:stop])
        if stop - header_end >= LIFT_THRESHOLD and not _is_container(raw[part_start:header_end]):
            spans.append((header_end, stop))
    return spans


def _is_container(header: bytes) -> bool:
    """Does this header section declare a multipart or message/* part (or a boundary at all)?"""
    match = _content_type().search(header)
    kind = match.group(1).lower() if match else b"text/plain"
    return kind.startswith((b"multipart/", b"message/")) or b"boundary" in header.lower()
