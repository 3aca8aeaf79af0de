"""The body digest that, with the Message-ID, recognises a message delivered twice."""

import hashlib

_DIGEST_CHUNK = 1 << 20


def body_offset(raw: bytes) -> int:
    """Index after the first empty line (the end of the header block); len(raw) when there is none."""
    for separator in (b"\n", b"\r\n"):
        if raw.startswith(separator):
            return len(separator)
    ends = [index + len(sep) for sep in (b"\n\n", b"\n\r\n") if (index := raw.find(sep)) >= 0]
    return min(ends) if ends else len(raw)


def body_digest(raw: bytes) -> str:
    """SHA-256 of the body with CRLF normalised to LF, hashed in chunks (no full copy of a 25 MB message).

    Two copies of one message that took different routes differ only in their trace headers (and maybe
    line endings), so this identifies duplicates.
    """
    digest = hashlib.sha256()
    view = memoryview(raw)
    position = body_offset(raw)
    while position < len(raw):
        end = min(position + _DIGEST_CHUNK, len(raw))
        while end < len(raw) and raw[end - 1] == 0x0D:  # never split a CRLF between chunks
            end += 1
        digest.update(bytes(view[position:end]).replace(b"\r\n", b"\n"))
        position = end
    return digest.hexdigest()
