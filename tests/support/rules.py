"""The rules' inputs built the way the delivery builds them, for tests of the pure decision (no database):

    ctx = context("reply_technician.eml", auth=verdict)             # a fixture of tests/fixtures/mail, or raw bytes
    decision = decide(ctx, facts(ctx, sender_user=BOB, ticket=TICKET))

``context`` parses the message and identifies its sender from the envelope (empty unless given);
``facts`` looks up what the store would: the ticket reference the subject names, under the settings'
``bare_number_references``, and the default reply separators. Every other field is a keyword of either.
"""

from __future__ import annotations

from typing import Any

from msgspec.structs import replace

from email2ticket.config.rule_settings import RuleSettings
from email2ticket.mail.envelope import Envelope
from email2ticket.mail.message import parse_message
from email2ticket.mail.subject import find_ticket_reference
from email2ticket.reply.extract import DEFAULT_SEPARATORS
from email2ticket.rules.chain import identify_sender
from email2ticket.rules.decision import Context, Facts
from support.mail import MAIL


def context(mail: str | bytes, envelope: Envelope | None = None, **fields: Any) -> Context:
    """`fields`: auth, classification, release, outbound (see rules/decision.py Context)."""
    message = parse_message((MAIL / mail).read_bytes() if isinstance(mail, str) else mail)
    envelope = envelope or Envelope()
    return Context(message, envelope, identify_sender(message, envelope), **fields)


def facts(ctx: Context, settings: RuleSettings | None = None, **fields: Any) -> Facts:
    """`fields`: sender_user, ticket, earlier, the counts... and reference, to name another (see Facts)."""
    settings = settings or RuleSettings()
    reference = find_ticket_reference(ctx.message.subject, bare_numbers=settings.bare_number_references)
    return replace(Facts(settings, DEFAULT_SEPARATORS, reference=reference), **fields)
