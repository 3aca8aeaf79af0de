"""The one builder of test messages: ``mail(subject, body, sender=..., ...)`` -> raw bytes.

Two ways to write the same few headers:

* plain (the default): the headers exactly as given, one a line, in a fixed order, LF line ends (``crlf=True``
  for what SMTP carries); no MIME-Version or encoding unless asked for. What a test wants to control byte by byte.
* ``mime=True``: built by the stdlib as a mail client builds it (``EmailMessage`` with the SMTP policy): CRLF,
  ``MIME-Version``, ``Content-Type``/``Content-Transfer-Encoding`` chosen by ``set_content``, long headers folded.

The headers come in this order: From, To, Subject, Message-ID, Date, In-Reply-To and References, ``headers``
(in their order), then, in plain messages, MIME-Version and Content-Type.
"""

from __future__ import annotations

import email.policy
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

MAIL = Path(__file__).resolve().parents[1] / "fixtures" / "mail"  # the .eml fixtures, real mail by name
HELPDESK = "helpdesk@helpdesk.example"
DATE = "Thu, 26 Nov 2026 10:00:00 +0000"
TEXT_PLAIN = "text/plain; charset=utf-8"


def mail(
    subject: str = "Printer jam",
    body: str = "It broke.\n",
    *,
    sender: str = "alice@example.com",
    name: str | None = None,
    to: str = HELPDESK,
    message_id: str | None = None,
    msgid_domain: str = "example.com",
    date: str | None = None,
    in_reply_to: str | None = None,
    headers: Mapping[str, str] | None = None,
    mime_version: bool = False,
    content_type: str | None = TEXT_PLAIN,
    mime: bool = False,
    crlf: bool = False,
) -> bytes:
    """A message from ``sender`` (``name <sender>`` with a display name; no From: at all for ``""``).

    ``message_id`` is written in angle brackets; None makes a fresh one at ``msgid_domain``, ``""`` leaves the
    header out. ``in_reply_to`` (an id in angle brackets, as read from a message) sets In-Reply-To and References.
    ``body`` is written as given in plain messages; ``mime=True`` hands it to ``set_content`` (which ends it with a
    newline), ignores ``mime_version``/``content_type``/``crlf`` and folds what the SMTP policy folds.
    """
    fields: list[tuple[str, str]] = []
    if sender:
        fields.append(("From", f"{name} <{sender}>" if name else sender))
    fields += [("To", to), ("Subject", subject)]
    if message_id is None:
        fields.append(("Message-ID", make_msgid(domain=msgid_domain)))
    elif message_id:
        fields.append(("Message-ID", f"<{message_id}>"))
    if date is not None:
        fields.append(("Date", date))
    if in_reply_to is not None:
        fields += [("In-Reply-To", in_reply_to), ("References", in_reply_to)]
    fields += list((headers or {}).items())
    if mime:
        message = EmailMessage(policy=email.policy.SMTP)
        for header, value in fields:
            message[header] = value
        message.set_content(body)
        return message.as_bytes()
    if mime_version:
        fields.append(("MIME-Version", "1.0"))
    if content_type is not None:
        fields.append(("Content-Type", content_type))
    text = "".join(f"{header}: {value}\n" for header, value in fields) + "\n" + body
    return (text.replace("\n", "\r\n") if crlf else text).encode()
