"""Authentication bound to the headers that decide: does the evidence cover the very instances the rules read?

A DKIM signature covers the header instances its `h=` names, counted from the bottom of the header block
(RFC 6376 section 5.4.2), and signers rarely name a header twice; the rules read the *first* Subject:,
Message-ID:, In-Reply-To: and References:. So a header put above a genuinely signed mail is read by the
rules and covered by nothing: a technician's signed mail, with `Subject: ... [Ticket #2]` and a fresh
Message-ID: added on top, would become a verified comment on ticket #2, as often as anyone likes. A
trusted Authentication-Results verdict has the same blind spot, and there we do not even know which
instances the verifier checked.

So authentication holds only when every header that decides appears at most once and, for a signature we
verified ourselves, its `h=` names each one the message carries (a header the message lacks need not be
signed). Signers close the gap for good by *oversigning*: naming each header once more than the message
has it, so that none can be added without breaking the signature.

Pure functions over plain data (header names and counts, the `h=` list): auth/verify.py and auth/dkim.py
call them where the verdict is formed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

# The headers a decision reads (sender, ticket reference, threading, duplicates, who is addressed), lower-case,
# with how the reasons spell them.
DECIDING: dict[str, str] = {
    "from": "From",
    "subject": "Subject",
    "message-id": "Message-ID",
    "in-reply-to": "In-Reply-To",
    "references": "References",
    "reply-to": "Reply-To",
    "to": "To",
    "cc": "Cc",
}
_TIMES = {2: "twice", 3: "three times"}


def deciding_counts(names: Iterable[str]) -> dict[str, int]:
    """How often each deciding header appears among header `names` (any case); absent ones are left out."""
    counts = Counter(name.strip().lower() for name in names)
    return {name: counts[name] for name in DECIDING if counts[name]}


def signed_headers(h_tag: str) -> tuple[str, ...]:
    """The header names a DKIM signature's `h=` value lists, lower-case, in order (repeats kept)."""
    return tuple(name for name in ("".join(h_tag.split()).lower().split(":")) if name)


def repeated_header(counts: Mapping[str, int]) -> str | None:
    """Why no evidence can vouch for the headers: one that decides appears more than once; None when none does.

    Whichever instance a signature or a verifier covered, the rules may read another, and no header field that
    decides is allowed more than once in a message anyway (RFC 5322 section 3.6)."""
    for name, spelled in DECIDING.items():
        count = counts.get(name, 0)
        if count > 1:
            times = _TIMES.get(count, f"{count} times")
            return (
                f"{spelled}: appears {times}, and no signature or verifier can vouch for the instance the rules read "
                "(DKIM covers the last one, the rules read the first)"
            )
    return None


def unsigned_header(
    counts: Mapping[str, int],
    signed: Iterable[str],
    verifier_counts: Mapping[str, int] | None = None,
    signature: str = "",
) -> str | None:
    """Which deciding header the message carries that a verified signature does not cover; None when it covers all.

    `counts` is what the rules read (our parser), `signed` the signature's `h=` list, `verifier_counts` how the
    DKIM verifier's own parser counted the same headers: where the two parsers disagree (a lone CR, a line one
    of them does not take for a header), the signature may cover an instance the rules never read. `signature`
    names it in the reason ("d=example.com s=sel")."""
    which = f"the DKIM signature {signature}".rstrip()
    listed = {name.strip().lower() for name in signed}
    for name, spelled in DECIDING.items():
        count = counts.get(name, 0)
        seen = count if verifier_counts is None else verifier_counts.get(name, 0)
        if seen != count:
            return (
                f"{spelled}: read {count} time(s) here but {seen} time(s) by the DKIM verifier, so {which} may not "
                "cover the instance the rules read"
            )
        if count and name not in listed:
            return f"{spelled}: not covered by the h= of {which}, so anyone could have added or changed it"
    return None
