"""LMTP's DATA phase with bounded memory: at most max_message_bytes of a message, never an unbounded line.

aiosmtpd (1.4) reads DATA through a StreamReader whose limit is its `line_length_limit` (1001 bytes), and
copes with a longer line by collecting the line's fragments in a list until the line ends: one 1.5 GB
line is held whole before it answers "500 Line too long". Its `data_size_limit` drops the message only
once it is over the limit, and both answer with one reply for the whole transaction, where LMTP owes one
per recipient. `BoundedLMTP` replaces aiosmtpd's smtp_DATA and nothing else: the same reader, read in
pieces of at most what it holds; what arrives is kept until it is larger than max_message_bytes (as the
pipe counts it: LF line endings), then read to the end-of-data line and dropped. The handler gets the
message, or its first part, which deliver() refuses with the pipe's 5.3.4, so every recipient is answered
`552 5.3.4`. Lines of any length are part of the message, as they are through the pipe.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, syntax


async def read_data(reader: asyncio.StreamReader, limit: int) -> bytes:
    """The message up to the lone "." line, dot-stuffing undone, CRLF kept; beyond `limit` bytes only its start.

    Each read returns a line or, for a longer line, as much of it as the reader holds (never split inside
    a CRLF), so no line is ever assembled in memory; past the limit nothing more is kept.
    """
    kept: list[bytes] = []
    size = 0  # the message as the pipe counts it: LF line endings
    at_line_start = True
    while True:
        try:
            piece = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as exc:  # a line longer than the reader's limit: take what it holds
            piece = await reader.read(exc.consumed)
        if at_line_start:
            if piece == b".\r\n":
                return b"".join(kept)
            if piece.startswith(b"."):
                piece = piece[1:]  # RFC 5321 4.5.2: the client doubled a leading dot
        at_line_start = piece.endswith(b"\r\n")
        if size <= limit:  # the piece that crosses the limit is kept, so the message kept is too large
            kept.append(piece)
            size += len(piece) - at_line_start


class BoundedLMTP(LMTP):
    """aiosmtpd's LMTP session with a DATA phase that holds at most max_message_bytes (plus one piece)."""

    def __init__(self, handler: Any, *, max_message_bytes: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.max_message_bytes = max_message_bytes

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        # aiosmtpd's checks and replies, in its order (aiosmtpd/smtp.py SMTP.smtp_DATA)
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content = await read_data(self._reader, self.max_message_bytes)
        except asyncio.CancelledError:  # the connection was lost during DATA
            self._writer.close()
            raise
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated
        await self.push("250 OK" if status is MISSING else status)
