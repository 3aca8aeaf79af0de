"""Rule settings: the knobs a help-desk admin turns with `email2ticket settings set`.

They live in the database (one row per changed key) rather than in the TOML file, so changing
policy never means editing the MTA's files. This module only knows their names, defaults, meanings
and how to turn the stored text into typed values; the store reads and writes the rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from msgspec import Struct

# The subject prefixes of replies and forwards in the languages our users write in (mail/subject.py).
DEFAULT_REPLY_PREFIXES: tuple[str, ...] = (
    "RE",  # English, and most clients whatever their language
    "AW",  # German (Antwort)
    "SV",  # Swedish, Danish, Norwegian (Svar)
    "VS",  # Finnish (Vastaus)
    "Antw",  # Dutch (Antwoord)
    "RIF",  # Italian (Riferimento)
    "R",  # Italian Outlook
    "Res",  # Portuguese (Resposta)
    "Odp",  # Polish (Odpowiedź)
    "YNT",  # Turkish (Yanıt)
    "回复",  # Simplified Chinese
    "答复",  # Simplified Chinese, Outlook
)

DEFAULT_FORWARD_PREFIXES: tuple[str, ...] = (
    "FW",  # Outlook
    "FWD",  # most other clients
    "WG",  # German (Weitergeleitet)
    "TR",  # French (Transféré)
    "RV",  # Spanish (Reenviado)
    "Doorst",  # Dutch (Doorsturen)
    "VB",  # Swedish (Vidarebefordrat)
    "PD",  # Polish (Przekaż dalej)
    "ENC",  # Portuguese (Encaminhado)
    "I",  # Italian Outlook (Inoltrato)
    "转发",  # Simplified Chinese
    "轉寄",  # Traditional Chinese
)

UNKNOWN_SENDER_POLICIES = ("accept", "reject")
# Choice settings and their allowed values (the first is not necessarily the default).
CHOICES: dict[str, tuple[str, ...]] = {
    "unknown_senders": UNKNOWN_SENDER_POLICIES,
    "sender_verification": ("off", "technicians", "all"),
    "dkim_alignment": ("relaxed", "strict"),
}
# Lists that may be empty (the prefix lists may not: a reply must be recognisable).
MAY_BE_EMPTY = frozenset(
    {"trusted_authserv_ids", "trusted_hosts", "own_addresses", "allowed_senders", "spam_headers", "reply_to_senders"}
)
_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}


class SettingError(ValueError):
    """An unknown setting name or a value of the wrong kind; the message is for the admin."""


class RuleSettings(Struct, frozen=True):
    """The update-or-create policy. Defaults follow the product email2ticket replaces."""

    restrict_replies: bool = True
    unknown_senders: str = "accept"
    reopen_on_reply: bool = True
    bare_number_references: bool = True
    reply_prefixes: tuple[str, ...] = DEFAULT_REPLY_PREFIXES
    forward_prefixes: tuple[str, ...] = DEFAULT_FORWARD_PREFIXES
    # Sender verification (auth/): From: is trivially forged, so privileges need more than it.
    sender_verification: str = "technicians"
    dkim_alignment: str = "relaxed"
    trusted_authserv_ids: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    # Notifications and loop protection (signals/classify.py, rules/notify.py).
    acknowledge_new_tickets: bool = True
    acknowledge_unverified: bool = True
    notify_technician_of_updates: bool = False
    notify_requester_of_technician_comments: bool = False
    max_autoreplies_per_day: int = 20
    max_autoreplies_per_hour: int = 200
    max_new_tickets_per_sender_per_hour: int = 10
    own_addresses: tuple[str, ...] = ()
    allowed_senders: tuple[str, ...] = ()
    spam_headers: tuple[str, ...] = ("x-spam-flag: yes",)
    # Participants and robots (rules/people.py).
    cc_participants: bool = True
    notify_participants: bool = False
    reply_to_senders: tuple[str, ...] = ()
    # Queues and plus-addresses (rules/routing.py): helpdesk+7@ names ticket 7; each character is a delimiter.
    recipient_delimiter: str = "+"
    reply_to_ticket_address: bool = False


DESCRIPTIONS: dict[str, str] = {
    "restrict_replies": "Restrict replies to technicians and the requester of the ticket",
    "unknown_senders": "Mail from an address not in the user table: accept (create a requester) or reject (77)",
    "reopen_on_reply": "A reply to a closed ticket reopens it",
    "bare_number_references": "A bare trailing number ('Printer jam 42') refers to a ticket; off requires #42",
    "reply_prefixes": "Subject prefixes that mark a reply (comma-separated, matched case-insensitively)",
    "forward_prefixes": "Subject prefixes removed from new tickets' subjects (comma-separated)",
    "sender_verification": "Who must be authenticated (DKIM or trusted Authentication-Results) to update a ticket: "
    "off, technicians (the technician privileges) or all (every update)",
    "dkim_alignment": "How a DKIM signer's d= must match the From: domain: relaxed (same organizational domain) "
    "or strict (identical); a DMARC adkim=s of the From: domain makes it strict",
    "trusted_authserv_ids": "authserv-ids of Authentication-Results headers added by your own MTA's verifier "
    "(comma-separated; empty trusts none)",
    "acknowledge_new_tickets": "Send the requester an acknowledgement of each new ticket (needs [notifications])",
    "acknowledge_unverified": "Acknowledge senders whose address is not authenticated (off: no backscatter to "
    "forged senders, but real customers without DKIM get no acknowledgement)",
    "notify_technician_of_updates": "Mail the assigned technician each update that arrives by mail",
    "notify_requester_of_technician_comments": "Mail the requester a technician's comment made by mail "
    "(only an authenticated technician's)",
    "max_autoreplies_per_day": "At most this many acknowledgements to one address in 24 hours",
    "max_autoreplies_per_hour": "At most this many acknowledgements in total per hour (forged senders rotate)",
    "max_new_tickets_per_sender_per_hour": "More new tickets than this from one sender in an hour are held",
    "own_addresses": "The help desk's own addresses (comma-separated): never notified, never a requester "
    "of an acknowledgement",
    "allowed_senders": "Senders exempt from the automatic-mail classification and the flood limit "
    "(addresses or @domain, comma-separated)",
    "spam_headers": "Headers added by your own spam filter that mark spam, as 'Name: value' or 'Name' "
    "(comma-separated; such mail is held)",
    "cc_participants": "The To: and Cc: addresses of a new ticket's mail (and of later authorised replies), other "
    "than the help desk's own, become its participants, who may reply like the requester",
    "notify_participants": "Participants also get the comment notifications the requester gets (never the "
    "acknowledgement)",
    "reply_to_senders": "Robots (web forms, shops; addresses or @domain, comma-separated) whose mail is on behalf of "
    "the person in its Reply-To:, who becomes the requester",
    "recipient_delimiter": "Characters that separate an address from its detail, as Postfix's setting of the same "
    "name: mail to helpdesk+7@... refers to ticket 7 (empty: off)",
    "reply_to_ticket_address": "Notifications carry Reply-To: helpdesk+N@... (their From: address with the ticket "
    "number), so replies find their ticket even when a client rewrites the subject",
    "trusted_hosts": "Your own mail hosts (the 'by' host of Received: headers) above whose first outside hop "
    "Authentication-Results headers are considered (comma-separated; empty: only those above every Received:)",
}


def setting_names() -> tuple[str, ...]:
    return RuleSettings.__struct_fields__  # the names only: msgspec's fields() resolves every annotation


def parse_value(name: str, text: str) -> Any:
    """Turn the admin's (or the stored) text into the typed value, or raise SettingError."""
    default = getattr(RuleSettings(), name, None)
    if name not in setting_names():
        raise SettingError(f"unknown setting {name!r} (known: {', '.join(setting_names())})")
    if isinstance(default, bool):
        return _parse_bool(name, text)
    if isinstance(default, int):
        return _parse_count(name, text)
    if isinstance(default, tuple):
        return _parse_list(name, text)
    if name == "recipient_delimiter":
        return _parse_delimiter(text)
    if name in CHOICES and text.strip().lower() not in CHOICES[name]:
        raise SettingError(f"{name} must be one of {', '.join(CHOICES[name])}")
    return text.strip().lower()


def format_value(value: Any) -> str:
    """The human form `settings show` prints and `settings set` accepts back."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ", ".join(value)
    return str(value)


def stored_form(name: str, text: str) -> str:
    """Validate and canonicalise a value for the settings table (lists as JSON, booleans on/off)."""
    value = parse_value(name, text)
    return json.dumps(list(value), ensure_ascii=False) if isinstance(value, tuple) else format_value(value)


def settings_from_rows(rows: Mapping[str, str]) -> RuleSettings:
    """Build the effective settings from stored rows; a row that no longer parses keeps the default."""
    values: dict[str, Any] = {}
    for name in setting_names():
        if name in rows:
            try:
                values[name] = parse_value(name, rows[name])
            except SettingError:
                continue
    return RuleSettings(**values)


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingError(f"{name} takes on/off (or true/false), not {text!r}")


def _parse_count(name: str, text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise SettingError(f"{name} takes a whole number, not {text!r}") from None
    if value < 0:
        raise SettingError(f"{name} cannot be negative")
    return value


def _parse_delimiter(text: str) -> str:
    """recipient_delimiter: printable characters that cannot end an address's local part or start its domain."""
    value = text.strip()
    if any(char in '@"<>(),;:[]\\' or char.isspace() or char.isalnum() or not char.isprintable() for char in value):
        raise SettingError(f"recipient_delimiter takes punctuation such as + or -, not {text!r} (empty: off)")
    return "".join(dict.fromkeys(value))


def _parse_list(name: str, text: str) -> tuple[str, ...]:
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except ValueError as exc:
            raise SettingError(f"{name}: not a valid list: {exc}") from exc
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise SettingError(f"{name}: a list of strings is expected")
    else:
        items = stripped.split(",")
    cleaned = tuple(dict.fromkeys(i.strip().rstrip(":：").strip() for i in items if i.strip()))
    if name in MAY_BE_EMPTY:
        return tuple(dict.fromkeys(i.lower() for i in cleaned))  # host names: case-insensitive
    if not cleaned:
        raise SettingError(f"{name} needs at least one prefix")
    return cleaned
