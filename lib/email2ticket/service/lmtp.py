"""LMTP (RFC 2033) for the resident service: Postfix's `lmtp:` transport with no process per message.

The protocol is aiosmtpd's; this module is its handler. After DATA, LMTP answers once per accepted
recipient, and each answer is the pipe's exit-code contract in SMTP terms (exits.smtp_code: 0 -> 250,
75 -> 451, 65 -> 550, 552 for a message over max_message_bytes, 77 -> 550), each with the same RFC 3463
status code and sentence that the pipe command prints first on stderr (delivery/answer.py).

Each recipient is one delivery, exactly as Postfix's pipe transport with a recipient limit of 1: the
first opens the ticket, a second help-desk address on the same message is a duplicate. The message
is handed to deliver() as the pipe would have received it: LF line endings (pipe(8) converts them,
SMTP carries CRLF) and a `Return-Path:` header with the envelope sender, which pipe(8) adds with
flags=R and which the final delivery agent adds by RFC 5321. So the audit record and the idempotency
key do not depend on the transport a message came by.
"""

from __future__ import annotations

import re
import socket
import weakref
from typing import TYPE_CHECKING, Any

from aiosmtpd.lmtp import LMTP
from msgspec.structs import replace

from ..mail.envelope import envelope_from, normalise_envelope_sender
from .lmtp_data import BoundedLMTP

if TYPE_CHECKING:
    import asyncio

    from aiosmtpd.smtp import Envelope as SmtpEnvelope
    from aiosmtpd.smtp import Session

    from .worker import Deliverer, Lifecycle

IDENT = "email2ticket LMTP"


def pipe_form(content: bytes, mail_from: str) -> bytes:
    """The message as pipe(8) with flags=R hands it over: Return-Path first, LF line endings."""
    path = mail_from.strip().strip("<>").encode("utf-8", "surrogateescape")  # aiosmtpd: "<>" for the null sender
    return b"Return-Path: <" + path + b">\n" + content.replace(b"\r\n", b"\n")


# "... with ESMTP id 4F2A1C0123 for <...>; date": the id Postfix (or Exim) gave the message as it took it in.
_RECEIVED_ID = re.compile(rb"(?<![\w-])id\s+([0-9A-Za-z][0-9A-Za-z-]{3,63})(?![\w-])", re.IGNORECASE)


def queue_id_from_received(content: bytes) -> str | None:
    """The MTA's queue id, from the topmost Received: header (the one our LMTP client's MTA added).

    LMTP carries no queue id, but Postfix writes it into the Received: line it adds when it accepts a
    message ("by mx.example (Postfix) with ESMTP id 4F2A1C0123", "... (Postfix, from userid 0) id ...")
    and so does Exim ("with esmtp id 1qAbCd-0001xY-Ef"). Only the first Received: counts: the others
    are other hosts'. The date after ";" is ignored. None when there is no such line.
    """
    header, _, _ = content.replace(b"\r\n", b"\n").partition(b"\n\n")
    lines = header.split(b"\n")
    for index, line in enumerate(lines):
        if line[:9].lower() != b"received:":
            continue
        field = line[9:]
        for more in lines[index + 1 :]:
            if not more[:1].isspace():
                break
            field += b" " + more.strip()
        found = _RECEIVED_ID.search(field.partition(b";")[0])
        return found.group(1).decode("ascii") if found else None
    return None


class LmtpHandler:
    """aiosmtpd handler: refuses new transactions while draining, delivers each recipient after DATA."""

    def __init__(self, deliverer: Deliverer, lifecycle: Lifecycle) -> None:
        self.deliverer = deliverer
        self.lifecycle = lifecycle
        self.sessions: weakref.WeakSet[LMTP] = weakref.WeakSet()

    async def handle_MAIL(
        self, server: LMTP, session: Session, envelope: SmtpEnvelope, address: str, mail_options: list[str]
    ) -> str:
        if self.lifecycle.draining:
            return "451 4.3.2 the help desk's delivery service is shutting down; try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: LMTP, session: Session, envelope: SmtpEnvelope, address: str, rcpt_options: list[str]
    ) -> str:
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: LMTP, session: Session, envelope: SmtpEnvelope) -> str:
        mail_from = envelope.mail_from or ""
        raw = pipe_form(envelope.original_content or b"", mail_from)
        sender = normalise_envelope_sender(mail_from)
        queue_id = queue_id_from_received(envelope.original_content or b"")  # so our log line matches the MTA's
        tcp = over_tcp(server)  # every local user can connect there: Authentication-Results prove nothing
        replies = []
        with self.lifecycle.in_flight():
            for recipient in envelope.rcpt_tos:
                # envelope_from: 8-bit bytes in MAIL FROM / RCPT TO are decoded as the pipe decodes them
                arrived = replace(envelope_from(sender, recipient, queue_id, {}), loopback_tcp=tcp)
                reply = await self.deliverer.deliver(raw, arrived)
                replies.append(reply.lmtp_reply(recipient))
        # aiosmtpd sends what we return as the reply: one line per recipient, as RFC 2033 requires.
        return "\r\n".join(replies)

    def protocol(self, loop: asyncio.AbstractEventLoop, *, max_message_bytes: int) -> LMTP:
        """A new LMTP session (aiosmtpd protocol instance), remembered so shutdown can close it."""
        server = BoundedLMTP(  # DATA holds at most max_message_bytes, never an endless line (lmtp_data.py)
            self,
            max_message_bytes=max_message_bytes,
            # Advertised as SIZE, and checked by aiosmtpd against MAIL FROM's SIZE= only (DATA is ours). Above
            # the real limit (CRLF and dot-stuffing inflate a message), so that deliver() refuses a message
            # over max_message_bytes with the pipe's 5.3.4, one reply per recipient.
            data_size_limit=2 * max_message_bytes + 65536,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=HOSTNAME,
            ident=IDENT,
            loop=loop,
        )
        self.sessions.add(server)
        return server

    def close_sessions(self) -> None:
        for server in list(self.sessions):
            transport: Any = getattr(server, "transport", None)
            if transport is not None:
                transport.close()


def over_tcp(server: LMTP) -> bool:
    """Did this session come over TCP (or can that not be told)? Only a Unix socket's mode keeps users out."""
    transport: Any = getattr(server, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock is None or sock.family != socket.AF_UNIX


# aiosmtpd would look the name up (getfqdn, possibly DNS) for every session.
HOSTNAME = socket.gethostname()
