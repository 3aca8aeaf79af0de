"""Trusted Authentication-Results headers (RFC 8601): the verdict of our own MTA's verifier.

When OpenDKIM, OpenDMARC or rspamd already checked the message, their Authentication-Results header
is the cheapest evidence there is: no DNS, no cryptography. It is also the easiest header to forge:
anyone can write "Authentication-Results: mx.example.com; dkim=pass" into their mail. So a header
counts only when both hold:

- its authserv-id is one the admin listed in `trusted_authserv_ids` (default: none at all), and
- it sits above the first Received: header added by a host outside `trusted_hosts`: everything below
  that header was already in the message when it reached our systems. With `trusted_hosts` empty,
  only headers above every Received: header count.

The MTA must still strip incoming headers that carry our authserv-id (README, "Sender verification"):
a forger who talks straight to our MX has no Received: header of their own below ours. Headers are
parsed with the `authres` library; every header that is ignored is reported, with why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exits import DeliveryError
from .alignment import aligned, match, normalise_domain, relation
from .verdict import AuthPolicy, Evidence, Verdict

if TYPE_CHECKING:
    from ..mail.message import ParsedMessage


def received_by(value: str) -> str | None:
    """The host that added a Received: header (its `by` clause), lower-cased; None when it names none."""
    tokens = _without_comments(value).replace(";", " ; ").split()
    for index, token in enumerate(tokens[:-1]):
        if token == ";":  # the date follows; no `by` clause
            break
        if token.lower() == "by":
            return tokens[index + 1].lower().rstrip(".")
    return None


def _without_comments(text: str) -> str:
    """Drop RFC 5322 (comments), nested or not, so "(helo by evil)" cannot pose as the `by` clause."""
    out, depth, escaped = [], 0, False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(char)
    return "".join(out)


def trusted_headers(message: ParsedMessage, policy: AuthPolicy) -> tuple[list[tuple[str, Any]], tuple[str, ...]]:
    """The parsed results of each trusted Authentication-Results header, and why the others were ignored."""
    values = [(n.lower(), v) for n, v in message.headers if n.lower() in ("received", "authentication-results")]
    count = sum(1 for name, _ in values if name == "authentication-results")
    trusted_ids = {i.lower() for i in policy.trusted_authserv_ids}
    if policy.results_ignored:
        return [], (f"{count} Authentication-Results header(s) not honoured: {policy.results_ignored}",)
    if not trusted_ids:
        return [], (f"{count} Authentication-Results header(s): trusted_authserv_ids is empty, so none is trusted",)
    from authres import AuthenticationResultsHeader

    trusted: list[tuple[str, Any]] = []
    notes: list[str] = []
    outside = False  # below the first Received: header that a host outside trusted_hosts added
    for name, value in values:
        if name == "received":
            by = received_by(value)
            outside = outside or by is None or by not in policy.trusted_hosts
            continue
        try:
            parsed = AuthenticationResultsHeader.parse_value(" ".join(value.split()))
        except DeliveryError:  # delivery_timeout's alarm
            raise
        except Exception as exc:  # authres raises its own SyntaxError family, and worse on garbage
            notes.append(f"an Authentication-Results header that does not parse ({type(exc).__name__})")
            continue
        server = str(parsed.authserv_id).lower()
        if server not in trusted_ids:
            notes.append(f"Authentication-Results from {server}: authserv-id not in trusted_authserv_ids")
        elif outside:
            notes.append(
                f"Authentication-Results from {server} below a Received: header added outside trusted_hosts "
                "(it was in the message before it reached us: forged or foreign)"
            )
        else:
            trusted.append((server, parsed.results))
    return trusted, tuple(notes)


def verdict_from_results(
    message: ParsedMessage, domain: str, policy: AuthPolicy
) -> tuple[Verdict | None, tuple[str, ...]]:
    """The verdict the trusted headers give, or None (with notes) when they give none.

    None when no header is trusted, and when the trusted verifier itself failed temporarily on DKIM
    (the queued copy will always carry that header, so deferring would not help: we verify ourselves).
    """
    trusted, notes = trusted_headers(message, policy)
    if not trusted:
        return None, notes
    address = message.from_addresses[0]
    evidence: list[Evidence] = []
    deciding: Evidence | None = None
    for server, results in trusted:
        for result in results:
            item, decides = _judge(server, result, address, domain, policy)
            evidence.append(item)
            deciding = deciding or (item if decides else None)
    servers = ", ".join(dict.fromkeys(server for server, _ in trusted))
    if deciding is not None:
        reason = f"trusted Authentication-Results from {servers}: {deciding.describe()}"
        return Verdict("pass", "authentication-results", reason, domain, tuple(evidence), notes, policy), notes
    if any(e.method == "dkim" and e.result == "temperror" for e in evidence):
        return None, (*notes, f"the trusted verifier {servers} reported dkim=temperror, so we verify ourselves")
    reason = (
        f"the trusted Authentication-Results from {servers} report no aligned DKIM pass, DMARC pass or "
        f"authenticated submission for the From: domain {domain}"
    )
    return Verdict("fail", "authentication-results", reason, domain, tuple(evidence), notes, policy), notes


def _judge(server: str, result: Any, address: str, domain: str, policy: AuthPolicy) -> tuple[Evidence, bool]:
    """One reported result as evidence, and whether it authenticates the From: address."""
    method, outcome = str(result.method).lower(), str(result.result).lower()
    props = {(str(p.type).lower(), str(p.name).lower()): str(p.value) for p in result.properties}
    source = f"reported by {server}"
    if method == "dkim":
        signer = props.get(("header", "d")) or props.get(("header", "i"), "").rpartition("@")[2]
        how = match(signer, domain) if signer else "none"
        ok = outcome == "pass" and aligned(how, policy.alignment)
        words = relation(how, policy.alignment)
        return Evidence("dkim", outcome, source, signer, props.get(("header", "s"), ""), alignment=words), ok
    if method == "dmarc":
        header_from = props.get(("header", "from"), "")
        ok = outcome == "pass" and normalise_domain(header_from) == domain
        return Evidence("dmarc", outcome, f"{source}, header.from={header_from or '?'}", header_from), ok
    if method == "auth":
        identity = props.get(("smtp", "auth"), "")
        ok = outcome == "pass" and identity.lower() == address
        detail = f"{source}: submission authenticated as {identity or '?'}"
        if outcome == "pass" and not ok:
            detail += f", which is not the From: address {address}"
        return Evidence("auth", outcome, detail, identity), ok
    if method == "spf":
        return Evidence("spf", outcome, f"{source}; SPF vouches for the envelope sender, not From:"), False
    return Evidence(method, outcome, source), False
