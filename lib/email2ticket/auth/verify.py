"""Sender verification, the steps: the headers alone, trusted Authentication-Results, then DKIM with DNS.

The verdict model lives in verdict.py; this module computes one. `offline_verdict` is pure and costs
no DNS; `verify_sender` is the one entry to our own DKIM verification (dkim.py), which is the only
path that imports dkimpy and dnspython. Either way the verdict covers only headers that appear once
and, for our own DKIM check, that the signature signed (binding.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msgspec.structs import replace

from .alignment import normalise_domain
from .binding import deciding_counts, repeated_header
from .verdict import AuthPolicy, Verdict

if TYPE_CHECKING:
    from ..config.model import DnsConfig
    from ..mail.message import ParsedMessage


def from_problem(message: ParsedMessage) -> str | None:
    """Why a message's author can never be authenticated, or None when there is one author address."""
    if message.from_header_count > 1:
        return f"the message has {message.from_header_count} From: headers, which is never authenticated"
    if len(message.from_addresses) > 1:
        return f"the From: header names {len(message.from_addresses)} addresses, which is never authenticated"
    if not message.from_addresses or "@" not in message.from_addresses[0]:
        return "the message has no usable From: address, and only a From: domain can be authenticated"
    return None


def author_domain(message: ParsedMessage) -> str:
    return normalise_domain(message.from_addresses[0].rsplit("@", 1)[1])


def header_counts(message: ParsedMessage) -> dict[str, int]:
    """How often each header that decides appears, as the rules read the message (auth/binding.py)."""
    return deciding_counts(name for name, _ in message.headers)


def has_header(message: ParsedMessage, name: str) -> bool:
    wanted = name.lower()
    return any(key.lower() == wanted for key, _ in message.headers)


def offline_verdict(message: ParsedMessage, policy: AuthPolicy) -> Verdict | None:
    """The verdict from the headers alone, or None when only our own DKIM verification (DNS) can tell."""
    return _offline(message, policy)[0]


def _offline(message: ParsedMessage, policy: AuthPolicy) -> tuple[Verdict | None, tuple[str, ...]]:
    problem = from_problem(message)
    if problem is not None:
        return Verdict("fail", "headers", problem, policy=policy), ()
    domain = author_domain(message)
    repeated = repeated_header(header_counts(message))
    if repeated is not None:  # whatever any evidence says, it cannot be about the instance the rules read
        return Verdict("fail", "headers", repeated, domain, policy=policy), ()
    notes: tuple[str, ...] = ()
    if has_header(message, "authentication-results"):
        from .authresults import verdict_from_results

        verdict, notes = verdict_from_results(message, domain, policy)
        if verdict is not None:
            return verdict, notes
    if not has_header(message, "dkim-signature"):
        reason = "the message has no DKIM-Signature and no trusted Authentication-Results header"
        return Verdict("fail", "headers", reason, domain, notes=notes, policy=policy), notes
    return None, notes


def verify_sender(raw: bytes, message: ParsedMessage, policy: AuthPolicy, dns: DnsConfig) -> Verdict:
    """The full verdict: the headers first, then DKIM over the exact bytes received, with DNS."""
    verdict, notes = _offline(message, policy)
    if verdict is not None:
        return verdict
    from .dkim import verify_dkim

    verdict = verify_dkim(raw, author_domain(message), policy.alignment, dns, header_counts(message))
    return replace(verdict, notes=notes + verdict.notes, policy=policy)
