"""Attachment file names made safe for any file system, and a fallback name when none was sent."""

import functools
import re

from .text import clean

MAX_FILENAME_BYTES = 200


@functools.cache
def _unsafe_name_chars() -> re.Pattern[str]:
    """Compiled on first use (an attachment's name): most mail never needs it."""
    return re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@functools.cache
def _drive_prefix() -> re.Pattern[str]:
    """Compiled on first use (an attachment's name): most mail never needs it."""
    return re.compile(r"^[A-Za-z]:")


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


def safe_filename(name: str | None, fallback: str = "attachment") -> str:
    """Make an attachment name safe for anything touching a file system.

    Keeps only the last path component (senders put "../../etc/passwd" or "C:\\Windows\\evil.exe" in
    filename parameters), drops control and bidi-override characters (used to disguise ".exe" as ".pdf"),
    strips leading dots (no hidden files, no ".."), and caps the UTF-8 length while keeping the extension.
    """
    return sanitise_name(name or "") or sanitise_name(fallback) or "attachment"


def sanitise_name(name: str) -> str:
    name = _unsafe_name_chars().sub("", clean(name))
    name = _drive_prefix().sub("", name.replace("\\", "/")).rsplit("/", 1)[-1]
    return _truncate_utf8(name.strip().lstrip(".").strip(), MAX_FILENAME_BYTES)


def _truncate_utf8(name: str, limit: int) -> str:
    """Cut to `limit` UTF-8 bytes on a character boundary, keeping a short extension."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, extension = name.rpartition(".")
    suffix = dot + extension if stem and 0 < len(extension.encode("utf-8")) <= 16 else ""
    head = (stem if suffix else name).encode("utf-8")[: limit - len(suffix.encode("utf-8"))]
    return head.decode("utf-8", "ignore").rstrip() + suffix


def fallback_name(content_type: str) -> str:
    extension = _EXTENSIONS.get(content_type)
    if extension is None:
        import mimetypes  # lazy: rare types only; reads the host's mime.types on first use

        extension = mimetypes.guess_extension(content_type, strict=False) or ""
    return f"attachment{extension}"
