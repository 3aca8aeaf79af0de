"""A test notification: proof that [notifications] can hand mail to the MTA, before a requester depends on it.

The web admin's "send a test notification" button sends one to an address the admin names, through the very
transport notifications use (outbound/transport.py) with the configured sender, bounce address and loop header.
It names no ticket, so it carries no token, and its loop header makes our own delivery ignore it should it come
back to the help-desk address. Nothing is written to the database: it is a check, not a notification.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import TYPE_CHECKING

from ..exits import ConfigurationError
from ..signals.tokens import LOOP_HEADER
from .render import OutgoingMail, compose, mail_address
from .transport import send

if TYPE_CHECKING:
    from ..config.model import NotificationsConfig

SUBJECT = "email2ticket test notification"
BODY = (
    "This is a test notification from the email2ticket web admin.\n\n"
    "It went out the way acknowledgements and ticket notifications go out: if you read it, the\n"
    "help desk can send mail. It names no ticket; there is no need to answer it.\n"
)


def probe_mail(config: NotificationsConfig, recipient: str, *, now: datetime | None = None) -> OutgoingMail:
    """The test message for `recipient`; ConfigurationError without from_address, ValueError for a bad address."""
    from email.utils import format_datetime

    helpdesk, domain, envelope, loop = config.from_address, config.domain(), config.envelope_from(), config.loop_id()
    if helpdesk is None or domain is None or envelope is None or loop is None:
        raise ConfigurationError("notifications.from_address is not set: the help desk sends no mail")
    to = mail_address(recipient)
    message_id = f"<e2t-test.{secrets.token_hex(12)}@{domain}>"
    headers = {
        "From": helpdesk,
        "To": to,
        "Subject": SUBJECT,
        "Date": format_datetime((now or datetime.now()).astimezone()),
        "Message-ID": message_id,
        "Auto-Submitted": "auto-generated",
        "X-Auto-Response-Suppress": "All",
        LOOP_HEADER: loop,
    }
    return OutgoingMail(message_id, envelope, to, compose(headers, BODY))


def send_test_notification(config: NotificationsConfig, recipient: str) -> str:
    """Send the test message; its Message-ID when the MTA took it. SendFailed (with the reason) when not."""
    mail = probe_mail(config, recipient)
    send(mail, config)
    return mail.message_id
