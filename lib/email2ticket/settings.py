"""Rule settings: the knobs a help-desk admin turns with `email2ticket settings set`.

They live in the database (one row per changed key) rather than in the TOML file, so changing
policy never means editing the MTA's files. This module only knows their names, defaults, meanings
and how to turn the stored text into typed values; the store reads and writes the rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .subject import DEFAULT_FORWARD_PREFIXES, DEFAULT_REPLY_PREFIXES

UNKNOWN_SENDER_POLICIES = ("accept", "reject")
_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}


class SettingError(ValueError):
    """An unknown setting name or a value of the wrong kind; the message is for the admin."""


@dataclass(frozen=True)
class RuleSettings:
    """The update-or-create policy. Defaults follow the product email2ticket replaces."""

    restrict_replies: bool = True
    unknown_senders: str = "accept"
    reopen_on_reply: bool = True
    bare_number_references: bool = True
    reply_prefixes: tuple[str, ...] = DEFAULT_REPLY_PREFIXES
    forward_prefixes: tuple[str, ...] = DEFAULT_FORWARD_PREFIXES


DESCRIPTIONS: dict[str, str] = {
    "restrict_replies": "Restrict replies to technicians and the requester of the ticket",
    "unknown_senders": "Mail from an address not in the user table: accept (create a requester) or reject (77)",
    "reopen_on_reply": "A reply to a closed ticket reopens it",
    "bare_number_references": "A bare trailing number ('Printer jam 42') refers to a ticket; off requires #42",
    "reply_prefixes": "Subject prefixes that mark a reply (comma-separated, matched case-insensitively)",
    "forward_prefixes": "Subject prefixes removed from new tickets' subjects (comma-separated)",
}


def setting_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(RuleSettings))


def parse_value(name: str, text: str) -> Any:
    """Turn the admin's (or the stored) text into the typed value, or raise SettingError."""
    default = getattr(RuleSettings(), name, None)
    if name not in setting_names():
        raise SettingError(f"unknown setting {name!r} (known: {', '.join(setting_names())})")
    if isinstance(default, bool):
        return _parse_bool(name, text)
    if isinstance(default, tuple):
        return _parse_list(name, text)
    if name == "unknown_senders" and text.strip().lower() not in UNKNOWN_SENDER_POLICIES:
        raise SettingError(f"unknown_senders must be one of {', '.join(UNKNOWN_SENDER_POLICIES)}")
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
    if not cleaned:
        raise SettingError(f"{name} needs at least one prefix")
    return cleaned
