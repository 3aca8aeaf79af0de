"""Our own DKIM verification (RFC 6376) of the exact bytes received, every signature, with DNS.

dkimpy does the cryptography (RSA and Ed25519); this module turns its True/False/exception answers
into RFC 8601 words per signature - pass, fail, policy, temperror, permerror - and into one verdict:
the sender is authenticated when a signature passed AND its d= aligns with the From: domain.

What dkimpy accepts and we do not: a signature whose l= covers only part of the body (anyone may
append text below the signed part and keep the signature valid), and rsa-sha1 (RFC 8301). Both are
`policy`: verified, but not acceptable. A DNS failure is `temperror`; it makes the verdict temperror
only when that signature could have authenticated the sender (its d= aligns) and nothing else did.

A signature that verifies and aligns authenticates the sender only when its h= covers every header that
decides (auth/binding.py): otherwise whoever forwards the signed mail can put a Subject: of their own above
it. Signatures whose d= could align are verified first, so a slow DNS spends its budget on the ones that
matter. Imported only when a decision depends on the verdict: dkimpy and dnspython take ~110 ms.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import dkim
from dkim.canonicalization import CanonicalizationPolicy
from dkim.util import parse_tag_value
from msgspec import Struct

from ..config.model import DnsConfig
from ..exits import DeliveryError
from .alignment import Alignment, DmarcRecord, Match, aligned, dmarc_names, match, parse_dmarc, relation
from .binding import deciding_counts, signed_headers, unsigned_header
from .dns_budget import DnsTemporaryError, TxtResolver
from .verdict import Evidence, Verdict

MAX_SIGNATURES = 8  # more are not verified: each may cost a DNS query and an RSA operation
_QUIET = logging.getLogger("email2ticket.dkim")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


class _Signature(Struct, frozen=True):
    """One DKIM-Signature header's identity, read before verifying it."""

    index: int
    domain: str
    selector: str
    algorithm: str
    tags: dict[bytes, bytes]


def verify_dkim(
    raw: bytes, author: str, mode: Alignment, config: DnsConfig, counts: Mapping[str, int] | None = None
) -> Verdict:
    """Verify every DKIM signature of `raw` and decide whether one authenticates the From: domain `author`.

    `counts`: how often each header that decides appears as the rules read it (auth/binding.py); a signature
    authenticates only when it covers them all. None: as dkimpy's own parser reads the headers."""
    try:
        verifier = dkim.DKIM(raw, logger=_QUIET, minkey=1024)
    except DeliveryError:  # delivery_timeout's alarm: never mistaken for a broken message
        raise
    except Exception as exc:  # dkimpy's parser on a broken header block
        detail = f"the message could not be read for DKIM verification ({type(exc).__name__}: {exc})"
        return Verdict("fail", "dkim", detail, author, (Evidence("dkim", "permerror", detail),))
    seen = deciding_counts(name.decode("ascii", "replace") for name, _ in verifier.headers)
    binding = _Binding(seen if counts is None else counts, seen)
    headers = [value for name, value in verifier.headers if name.lower() == b"dkim-signature"]
    signatures = [_identify(index, value) for index, value in enumerate(headers)]
    resolver = TxtResolver(config)
    order = sorted(
        signatures[:MAX_SIGNATURES],
        key=lambda s: ("identical", "organizational", "none").index(match(s.domain, author)),
    )
    checked = {s.index: _verify_one(verifier, s, resolver) for s in order}
    for extra in signatures[MAX_SIGNATURES:]:
        checked[extra.index] = _evidence(extra, "policy", f"not verified: more than {MAX_SIGNATURES} signatures")
    return _decide(signatures, checked, author, mode, resolver, binding)


class _Binding(Struct, frozen=True):
    """The headers that decide, counted as the rules read them and as dkimpy read them (auth/binding.py)."""

    counts: Mapping[str, int]
    seen: Mapping[str, int]

    def unsigned(self, sig: _Signature) -> str | None:
        h_tag = bytes(sig.tags.get(b"h", b"")).decode("ascii", "replace")
        return unsigned_header(self.counts, signed_headers(h_tag), self.seen, f"d={sig.domain} s={sig.selector}")


def _identify(index: int, value: bytes) -> _Signature:
    try:
        tags: dict[bytes, bytes] = dict(parse_tag_value(value))
    except DeliveryError:
        raise
    except Exception:
        tags = {}

    def text(key: bytes) -> str:
        return bytes(tags.get(key, b"")).decode("ascii", "replace").strip().lower()

    return _Signature(index, text(b"d").rstrip("."), text(b"s"), text(b"a"), tags)


def _evidence(sig: _Signature, result: str, detail: str) -> Evidence:
    return Evidence("dkim", result, detail, sig.domain or "?", sig.selector, sig.algorithm)


def _verify_one(verifier: dkim.DKIM, sig: _Signature, resolver: TxtResolver) -> Evidence:
    """One signature in RFC 8601 words. DNS temporary failures pass through dkimpy untouched."""
    key_problem: list[str] = []

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        where = name.decode("ascii", "replace").rstrip(".")
        records = resolver.txt(where)
        if not records:
            key_problem.append(f"no key published at {where}")
            return None
        try:
            dkim.evaluate_pk(name, records[0])
        except DeliveryError:
            raise
        except Exception as exc:  # dkimpy swallows these into False; keep the words
            key_problem.append(f"unusable key record: {exc}")
        return records[0]

    try:
        ok = verifier.verify(idx=sig.index, dnsfunc=dnsfunc)
    except DnsTemporaryError as exc:
        return _evidence(sig, "temperror", str(exc))
    except dkim.ValidationError as exc:
        if "body hash mismatch" in str(exc):
            return _evidence(sig, "fail", "body hash mismatch: the body was changed after signing")
        if "x= value is past" in str(exc):
            return _evidence(sig, "permerror", f"the signature expired at {_when(sig.tags.get(b'x', b''))}")
        return _evidence(sig, "permerror", str(exc))
    except dkim.DKIMException as exc:
        return _evidence(sig, "permerror", str(exc) or type(exc).__name__)
    except DeliveryError:  # delivery_timeout's alarm, raised wherever dkimpy happened to be
        raise
    except Exception as exc:  # a dkimpy bug on hostile input must not become a traceback
        return _evidence(sig, "permerror", f"verifier error {type(exc).__name__}: {exc}")
    if not ok:
        if key_problem:
            return _evidence(sig, "permerror", key_problem[0])
        return _evidence(sig, "fail", "signature does not verify: signed headers changed or wrong key")
    return _acceptable(verifier, sig)


def _when(stamp: bytes) -> str:
    """An x=/t= Unix time as an ISO date for the reasons."""
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(int(stamp), UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (ValueError, OverflowError, OSError):
        return f"x={stamp.decode('ascii', 'replace')}"


def _acceptable(verifier: dkim.DKIM, sig: _Signature) -> Evidence:
    """A verified signature that we still refuse: partial body (l=) or a broken hash (rsa-sha1)."""
    if sig.algorithm == "rsa-sha1":
        return _evidence(sig, "policy", "verified, but rsa-sha1 is not acceptable (RFC 8301)")
    if b"l" in sig.tags:
        canon = CanonicalizationPolicy.from_c_value(sig.tags.get(b"c", b"simple/simple"))
        body = len(canon.canonicalize_body(verifier.body))
        signed = int(sig.tags[b"l"])
        if signed < body:
            detail = f"verified, but l= covers only {signed} of {body} body bytes: the rest may be anyone's"
            return _evidence(sig, "policy", detail)
    return _evidence(sig, "pass", "signature verified")


def _decide(
    signatures: list[_Signature],
    checked: dict[int, Evidence],
    author: str,
    mode: Alignment,
    resolver: TxtResolver,
    binding: _Binding,
) -> Verdict:
    how = {s.index: match(s.domain, author) for s in signatures}
    passed = [s for s in signatures if checked[s.index].result == "pass" and how[s.index] != "none"]
    notes: list[str] = []
    dmarc: DmarcRecord | None = None
    dmarc_error: str | None = None
    if mode == "relaxed" and passed and all(how[s.index] == "organizational" for s in passed):
        # Only a relaxed match passed: the From: domain's DMARC record may demand strict alignment.
        try:
            dmarc = _dmarc(author, resolver)
        except DnsTemporaryError as exc:
            dmarc_error = str(exc)
    effective: Alignment = "strict" if dmarc is not None and dmarc.adkim == "strict" else mode
    words = {s.index: _relation(how[s.index], effective, mode, dmarc) for s in signatures}
    evidence = tuple(_with_alignment(checked[s.index], words[s.index]) for s in signatures)
    candidates = [s for s in passed if aligned(how[s.index], effective)]
    unsigned = {s.index: binding.unsigned(s) for s in candidates}
    winner = next((s for s in candidates if unsigned[s.index] is None), None)
    if winner is not None and (dmarc_error is None or how[winner.index] == "identical"):
        notes += [f"{e.describe()}: does not matter" for e in evidence if e.result == "temperror"]
        reason = (
            f"DKIM signature d={winner.domain} s={winner.selector} verified and aligns with the From: domain "
            f"{author} ({words[winner.index]})"
        )
        return Verdict("pass", "dkim", reason, author, evidence, tuple(notes))
    could = [s for s in signatures if checked[s.index].result == "temperror" and aligned(how[s.index], mode)]
    if dmarc_error is not None or could:
        detail = dmarc_error or checked[could[0].index].detail
        reason = f"a DKIM signature that could authenticate From: domain {author} could not be checked: {detail}"
        return Verdict("temperror", "dkim", reason, author, evidence, tuple(notes))
    notes += [f"{e.describe()}: cannot authenticate this From:" for e in evidence if e.result == "temperror"]
    reason = f"no DKIM signature both verified and aligned with the From: domain {author}"
    if candidates:  # one verified and aligned, but leaves out a header that decides
        first = candidates[0]
        reason = f"{unsigned[first.index]} (the signature verified and aligns: {words[first.index]})"
    return Verdict("fail", "dkim", reason, author, evidence, tuple(notes))


def _dmarc(author: str, resolver: TxtResolver) -> DmarcRecord | None:
    for name in dmarc_names(author):
        record = parse_dmarc(name.removeprefix("_dmarc."), resolver.txt(name) or [])
        if record is not None:
            return record
    return None


def _relation(how: Match, effective: Alignment, mode: Alignment, dmarc: DmarcRecord | None) -> str:
    why = (
        "dkim_alignment=strict"
        if mode == "strict"
        else f"the DMARC record of {dmarc.domain if dmarc else '?'}: adkim=s"
    )
    return relation(how, effective, why)


def _with_alignment(evidence: Evidence, words: str) -> Evidence:
    return Evidence(
        evidence.method, evidence.result, evidence.detail, evidence.domain, evidence.selector, evidence.algorithm, words
    )
