"""Sender verification: is the From: address backed by more than its own say-so?

The update rules hand out rights by From: address, and From: is trivially forged. A verdict here says
whether the message's author domain is authenticated, by which evidence, and what every piece of
evidence said, so the rules can grant a privilege only to an authenticated sender and the audit record
shows why. DKIM authenticates a *domain*, never a mailbox: anyone who can send signed mail from the
technician's domain passes. A trusted Authentication-Results header reporting an authenticated
submission (`auth=pass smtp.auth=<the From: address>`) is the one piece of evidence about the mailbox.

Three sources, cheapest first (see `offline_verdict`):
  1. the headers alone: several From: headers or addresses, or a second instance of any header the rules
     read (auth/binding.py), are never authenticated; a message with no DKIM-Signature and no trusted
     Authentication-Results is unauthenticated at once, without DNS;
  2. trusted Authentication-Results (auth/authresults.py): the MTA's own verifier already decided;
  3. our own DKIM verification of the raw bytes (auth/dkim.py), which needs DNS and is the only
     path that imports dkimpy and dnspython; a signature counts only if its h= covers those headers.

This module holds the verdict model and steps 1-2, which are pure; `verify_sender` is the one entry
to step 3 and is called by the delivery shell only when a decision depends on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from msgspec import Struct, field, to_builtins

from ..config.rule_settings import RuleSettings
from .alignment import Alignment

if TYPE_CHECKING:
    pass

VerdictResult = Literal["pass", "fail", "temperror"]
# Per piece of evidence, in RFC 8601 words: pass, fail (did not verify), neutral, policy (verified,
# but not acceptable to us: l= partial body, rsa-sha1, too many signatures), temperror, permerror.
EvidenceResult = Literal["pass", "fail", "neutral", "none", "policy", "temperror", "permerror"]

# What the audit record says for a message whose decision did not depend on the sender's authenticity.
NOT_NEEDED: dict[str, Any] = {"result": "not evaluated", "reason": "not needed"}


class AuthPolicy(Struct, frozen=True):
    """The rule settings a verdict depends on; a verdict computed under other settings is recomputed."""

    alignment: Alignment = "relaxed"
    trusted_authserv_ids: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    results_ignored: str = ""  # why no Authentication-Results header counts at all, whatever the settings say

    @classmethod
    def from_settings(cls, settings: RuleSettings, *, honour_results: bool = True) -> AuthPolicy:
        """The settings' policy; without `honour_results` (mail that came over a listener every local user can
        reach) no Authentication-Results header is trusted, whatever trusted_authserv_ids says."""
        mode: Alignment = "strict" if settings.dkim_alignment == "strict" else "relaxed"
        if not honour_results:
            return cls(mode, results_ignored=UNTRUSTED_LISTENER)
        return cls(mode, settings.trusted_authserv_ids, settings.trusted_hosts)


UNTRUSTED_LISTENER = "the message came over LMTP on TCP, where any local user can connect and write any header"


class Evidence(Struct, frozen=True):
    """One DKIM signature we verified, or one result a trusted Authentication-Results header reported."""

    method: str  # "dkim", or the A-R method ("dkim", "dmarc", "auth", "spf", ...)
    result: str  # an EvidenceResult for our own checks; whatever word a trusted verifier reported
    detail: str  # why, in words
    domain: str = ""  # d= (DKIM), header.from (DMARC), the smtp.auth identity (auth)
    selector: str = ""
    algorithm: str = ""
    alignment: str = ""  # "aligned (strict)", "not aligned", ... ; "" where alignment does not apply

    def describe(self) -> str:
        who = f" d={self.domain}" if self.domain and self.method == "dkim" else ""
        who += f" s={self.selector}" if self.selector else ""
        who += f" {self.algorithm}" if self.algorithm else ""
        aligned = f", {self.alignment}" if self.alignment else ""
        return f"{self.method}{who}: {self.result} ({self.detail}){aligned}"


class Verdict(Struct, frozen=True):
    """Whether the sender is authenticated, which evidence decided, and everything it was based on."""

    result: VerdictResult
    decided_by: str  # "dkim", "authentication-results", "headers"
    reason: str  # one clause, e.g. "DKIM signature d=example.com passed and aligns (strict) with From: ..."
    from_domain: str | None = None
    evidence: tuple[Evidence, ...] = ()
    notes: tuple[str, ...] = ()  # evidence ignored: untrusted A-R headers, temperrors that did not matter
    policy: AuthPolicy = field(default_factory=AuthPolicy)

    @property
    def authenticated(self) -> bool:
        return self.result == "pass"

    def describe(self) -> str:
        """The verdict in words, for `explain` and the reasons: result, deciding evidence, the rest."""
        head = {"pass": "authenticated", "fail": "not authenticated", "temperror": "DNS failed temporarily"}
        parts = [f"{head[self.result]}: {self.reason}"]
        parts += [e.describe() for e in self.evidence]
        parts += [f"ignored: {note}" for note in self.notes]
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """The audit record's form (messages.auth_verdict)."""
        record: dict[str, Any] = to_builtins(self)  # nested records become dicts, tuples lists
        record["evidence"] = [{k: v for k, v in e.items() if v != ""} for e in record["evidence"]]
        record["policy"] = {k: v for k, v in record["policy"].items() if k != "results_ignored" or v}  # only when so
        return record
