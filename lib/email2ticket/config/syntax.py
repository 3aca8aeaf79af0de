"""The small syntax checks the configuration applies to addresses, domains, header tokens and modes."""

from __future__ import annotations

from typing import Any

from ..exits import ConfigurationError


def addr_spec(text: str) -> str | None:
    """The one ASCII addr-spec with a domain in an address ("Name <a@b.example>" or "a@b.example"), or None."""
    from email.utils import getaddresses  # only paid for when notifications are configured

    pairs = getaddresses([text])
    if len(pairs) != 1:
        return None
    address = pairs[0][1]
    local, at, domain = address.rpartition("@")
    if not at or not local or not is_domain(domain) or not address.isascii() or any(c.isspace() for c in address):
        return None
    return address


def is_domain(text: str) -> bool:
    labels = text.rstrip(".").split(".")
    return text.isascii() and len(labels) >= 1 and all(is_label(label) for label in labels)


def is_label(label: str) -> bool:
    return 0 < len(label) <= 63 and all(c.isalnum() or c == "-" for c in label) and not label.startswith("-")


def is_header_token(text: str) -> bool:
    return text.isascii() and text.isprintable() and not any(c.isspace() for c in text)


def is_octal_mode(text: str) -> bool:
    return 1 <= len(text) <= 4 and all(c in "01234567" for c in text)


def refuse_unknown(data: dict[str, Any], known: set[str], prefix: str) -> None:
    """A misspelt setting is an error, not silently a default: name the first unknown key and the known ones."""
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigurationError(f"unknown setting {prefix}{unknown[0]} (known: {', '.join(sorted(known))})")
