"""Identifier alignment (RFC 7489 section 3.1): does a DKIM signer's domain speak for the From: domain?

A valid DKIM signature proves only that the signing domain (d=) vouches for the message. It says
something about the author only when that domain *aligns* with the From: domain: identical (strict),
or sharing one organizational domain (relaxed: `mail.example.com` speaks for `example.com`, but
`example.co.uk` does not speak for `other.co.uk`). Finding the organizational domain needs the
Public Suffix List; the `publicsuffixlist` package ships a copy, so this works offline and is
imported only when two different domains must be compared.

Pure functions, except that the list is loaded once per process.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from msgspec import Struct

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

Alignment = Literal["relaxed", "strict"]
Match = Literal["identical", "organizational", "none"]


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def normalise_domain(domain: str) -> str:
    """Lower-case A-label form without a trailing dot, so an SMTPUTF8 From: compares with an ASCII d=."""
    name = domain.strip().rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def organizational_domain(domain: str) -> str:
    """The registrable domain (public suffix plus one label); a public suffix itself stays as it is."""
    name = normalise_domain(domain)
    return _psl().privatesuffix(name) or name


def match(signer: str, author: str) -> Match:
    """How the signing domain relates to the author (From:) domain."""
    signer, author = normalise_domain(signer), normalise_domain(author)
    if not signer or not author:
        return "none"
    if signer == author:
        return "identical"
    if organizational_domain(signer) == organizational_domain(author):
        return "organizational"
    return "none"


def aligned(how: Match, mode: Alignment) -> bool:
    return how == "identical" or (how == "organizational" and mode == "relaxed")


def relation(how: Match, effective: Alignment, why_strict: str = "dkim_alignment=strict") -> str:
    """How a signer's d= relates to the From: domain, in words (the same for every source of evidence)."""
    if how == "identical":
        return "d= is the From: domain"
    if how == "none":
        return "d= is unrelated to the From: domain"
    if effective == "relaxed":
        return "d= shares the From: domain's organizational domain (relaxed alignment)"
    return f"d= shares only the organizational domain, and alignment is strict ({why_strict})"


class DmarcRecord(Struct, frozen=True):
    """The parts of a DMARC policy record (RFC 7489 section 6.3) alignment needs."""

    domain: str  # where the record was found (the From: domain or its organizational domain)
    adkim: Alignment = "relaxed"


def parse_dmarc(domain: str, records: list[bytes]) -> DmarcRecord | None:
    """Pick the DMARC record among a name's TXT records; none, or more than one, means no policy."""
    found = [r for r in records if r.strip().lower().startswith(b"v=dmarc1")]
    if len(found) != 1:
        return None
    tags: dict[str, str] = {}
    for part in found[0].decode("ascii", "replace").split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = value.strip().lower()
    return DmarcRecord(domain, "strict" if tags.get("adkim") == "s" else "relaxed")


def dmarc_names(author: str) -> tuple[str, ...]:
    """Where a From: domain's DMARC record is looked for: the domain, then its organizational domain."""
    name = normalise_domain(author)
    org = organizational_domain(name)
    return (f"_dmarc.{name}",) if org == name else (f"_dmarc.{name}", f"_dmarc.{org}")
