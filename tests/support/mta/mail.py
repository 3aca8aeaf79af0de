"""Test messages for the MTA tests, as raw bytes with CRLF line ends (what SMTP carries)."""

from __future__ import annotations

from email.message import Message

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
    headers = [f"From: {from_header if from_header is not None else sender}"] if from_header != "" else []
    headers += [
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: <{message_id}>",
        "Date: Thu, 26 Nov 2026 10:00:00 +0000",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    text = "\n".join(headers) + "\n\n" + body
    return text.replace("\n", "\r\n").encode()


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
