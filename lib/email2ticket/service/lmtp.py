"""LMTP (RFC 2033) for the resident service: Postfix's `lmtp:` transport with no process per message.

The protocol is aiosmtpd's; this module is its handler. After DATA, LMTP answers once per accepted
recipient, and each answer is the pipe's exit-code contract in SMTP terms: 0 -> 250, 75 -> 451,
65 -> 550 (552 for a message over max_message_bytes), 77 -> 550, each with the same RFC 3463 status
code and sentence that the pipe command prints first on stderr.

Each recipient is one delivery, exactly as Postfix's pipe transport with a recipient limit of 1: the
first opens the ticket, a second help-desk address on the same message is a duplicate. The message
is handed to deliver() as the pipe would have received it: LF line endings (pipe(8) converts them,
SMTP carries CRLF) and a `Return-Path:` header with the envelope sender, which pipe(8) adds with
flags=R and which the final delivery agent adds by RFC 5321. So the audit record and the idempotency
key do not depend on the transport a message came by.
"""

from __future__ import annotations

import socket
import weakref
from typing import TYPE_CHECKING, Any

from aiosmtpd.lmtp import LMTP

from ..mail.envelope import Envelope, normalise_envelope_sender

if TYPE_CHECKING:
    import asyncio

    from aiosmtpd.smtp import Envelope as SmtpEnvelope
    from aiosmtpd.smtp import Session

    from .worker import Deliverer, Lifecycle, Verdict

IDENT = "email2ticket LMTP"


def lmtp_reply(verdict: Verdict, recipient: str) -> str:
    """One recipient's reply line, from the verdict the pipe would have exited with."""
    reason = " ".join(verdict.reason.split())  # one line, whatever the reason contains
    if verdict.exit_code == 0:
        return f"250 {verdict.status} <{recipient}> {reason}"
    if verdict.status.startswith("4"):
        return f"451 {verdict.status} {reason}"
    code = 552 if verdict.status == "5.3.4" else 550
    return f"{code} {verdict.status} {reason}"


def pipe_form(content: bytes, mail_from: str) -> bytes:
    """The message as pipe(8) with flags=R hands it over: Return-Path first, LF line endings."""
    path = mail_from.strip().strip("<>").encode("utf-8", "surrogateescape")  # aiosmtpd: "<>" for the null sender
    return b"Return-Path: <" + path + b">\n" + content.replace(b"\r\n", b"\n")


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
        replies = []
        with self.lifecycle.in_flight():
            for recipient in envelope.rcpt_tos:
                verdict = await self.deliverer.deliver(raw, Envelope(sender=sender, recipient=recipient.lower()))
                replies.append(lmtp_reply(verdict, recipient))
        # aiosmtpd sends what we return as the reply: one line per recipient, as RFC 2033 requires.
        return "\r\n".join(replies)

    def protocol(self, loop: asyncio.AbstractEventLoop, *, max_message_bytes: int) -> LMTP:
        """A new LMTP session (aiosmtpd protocol instance), remembered so shutdown can close it."""
        server = LMTP(
            self,
            # Advertised as SIZE, and enforced by aiosmtpd with one reply for all recipients. Above the
            # real limit (CRLF and dot-stuffing inflate a message), so that deliver() refuses a message
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


# aiosmtpd would look the name up (getfqdn, possibly DNS) for every session.
HOSTNAME = socket.gethostname()
