"""Serving mail-derived bytes: always as a download, never rendered, under a file name that cannot hurt.

An attachment's name is whatever the sender wrote: `../../etc/passwd`, `<script>.html`, a name with a quote, a
semicolon or a line break that would end the header, or no name at all. The response carries only a sanitised
form of it, in both RFC 6266 forms: `filename="..."` (ASCII, for old clients) and `filename*=UTF-8''...`
(percent-encoded, RFC 8187). The bytes go out as application/octet-stream with `attachment` and nosniff, so no
browser renders an HTML or SVG attachment in the admin's session.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from starlette.responses import Response

MAX_NAME = 150
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*;\u2028\u2029\u202a-\u202e\u2066-\u2069]')  # incl. bidi overrides
_SPACES = re.compile(r"\s+")


def safe_filename(name: str | None, fallback: str) -> str:
    """The last path component of `name`, without control, markup, path or bidi-override characters; `fallback`
    when nothing usable is left (no name, or only dots)."""
    text = unicodedata.normalize("NFC", name or "")
    text = re.split(r"[/\\]", text)[-1]
    text = _SPACES.sub(" ", _UNSAFE.sub("_", text)).strip(" .")
    if len(text) > MAX_NAME:
        stem, dot, extension = text.rpartition(".")
        keep = bool(dot) and len(extension) <= 16  # cut the name, keep a short extension
        text = stem[: MAX_NAME - len(extension) - 1] + dot + extension if keep else text[:MAX_NAME]
    return text or fallback


def content_disposition(name: str | None, fallback: str) -> str:
    """`attachment; filename="ascii"; filename*=UTF-8''percent-encoded` for `name`, sanitised."""
    safe = safe_filename(name, fallback)
    ascii_name = "".join(c if " " <= c < "\x7f" and c not in "%'" else "_" for c in safe)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(safe, safe='')}"


def download(data: bytes, name: str | None, fallback: str, media_type: str = "application/octet-stream") -> Response:
    return Response(
        data,
        media_type=media_type,
        headers={"content-disposition": content_disposition(name, fallback), "x-content-type-options": "nosniff"},
    )
