"""Test messages for the MTA tests, as raw bytes with CRLF line ends (what SMTP carries)."""

from __future__ import annotations

from email.message import Message

from support.mail import DATE, mail

HELPDESK = "helpdesk@helpdesk.test"


def message(
    sender: str,
    subject: str,
    message_id: str,
    body: str = "Hello,\n\nit does not work.\n",
    *,
    from_header: str | None = None,
    to: str = HELPDESK,
) -> bytes:
    """support/mail.py's message from `sender` (From: `from_header` instead when given; none for ""), with a
    Date, MIME-Version and CRLF line ends."""
    author = sender if from_header is None else from_header
    return mail(subject, body, sender=author, to=to, message_id=message_id, date=DATE, mime_version=True, crlf=True)


def bounce_text(bounce: Message) -> str:
    """Every text part of a bounce (the notification and the delivery-status report), decoded."""
    parts = []
    for part in bounce.walk():
        if part.get_content_maintype() == "multipart":
            continue
        if part.get_content_type() == "message/delivery-status":  # parsed as a list of header blocks
            parts.extend(str(block) for block in part.get_payload())
        elif part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            parts.append(payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload))
    return "\n".join(parts)
