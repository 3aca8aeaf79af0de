"""Sender verification's pure parts: alignment (with the offline Public Suffix List), DMARC records,
trusted Authentication-Results selection, Received: parsing, the header-only verdict, and the new
settings and [dns] configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from email2ticket.auth.alignment import aligned, match, organizational_domain, parse_dmarc
from email2ticket.auth.authresults import received_by, trusted_headers
from email2ticket.auth.binding import deciding_counts, repeated_header, signed_headers, unsigned_header
from email2ticket.auth.verdict import AuthPolicy
from email2ticket.auth.verify import offline_verdict
from email2ticket.config.load import ConfigurationError, config_from_mapping, parse_resolver
from email2ticket.config.model import DnsConfig
from email2ticket.config.rule_settings import RuleSettings, SettingError, parse_value, settings_from_rows, stored_form
from email2ticket.mail.message import parse_message

MAIL = Path(__file__).resolve().parents[1] / "fixtures" / "mail"
TECH_REPLY = (MAIL / "reply_technician.eml").read_bytes()
TRUSTED = AuthPolicy(trusted_authserv_ids=("mx.helpdesk.example",))


@pytest.mark.parametrize(
    ("domain", "organizational"),
    [
        ("mail.example.com", "example.com"),
        ("a.b.example.co.uk", "example.co.uk"),
        ("example.co.uk", "example.co.uk"),
        ("co.uk", "co.uk"),  # a public suffix is its own (and nobody's) organization
        ("Mail.Helpdesk.Example.", "helpdesk.example"),
        ("alice.github.io", "alice.github.io"),  # the private part of the list counts too
        ("bücher.example", "xn--bcher-kva.example"),  # IDN From: domains compare as A-labels
    ],
)
def test_organizational_domain(domain: str, organizational: str) -> None:
    assert organizational_domain(domain) == organizational


@pytest.mark.parametrize(
    ("signer", "author", "how", "relaxed", "strict"),
    [
        ("helpdesk.example", "helpdesk.example", "identical", True, True),
        ("HELPDESK.example", "helpdesk.example.", "identical", True, True),
        ("mail.helpdesk.example", "helpdesk.example", "organizational", True, False),
        ("helpdesk.example", "eu.helpdesk.example", "organizational", True, False),
        ("evil.example", "helpdesk.example", "none", False, False),
        ("example.co.uk", "other.co.uk", "none", False, False),  # co.uk is a public suffix
        ("bob.github.io", "alice.github.io", "none", False, False),
        ("", "helpdesk.example", "none", False, False),
    ],
)
def test_alignment(signer: str, author: str, how: str, relaxed: bool, strict: bool) -> None:
    assert match(signer, author) == how
    assert aligned(match(signer, author), "relaxed") is relaxed
    assert aligned(match(signer, author), "strict") is strict


def test_dmarc_record_parsing() -> None:
    assert parse_dmarc("d.example", [b"v=DMARC1; p=reject; adkim=s; aspf=s"]).adkim == "strict"  # type: ignore[union-attr]
    assert parse_dmarc("d.example", [b"v=DMARC1; p=none"]).adkim == "relaxed"  # type: ignore[union-attr]
    assert parse_dmarc("d.example", [b"V=DMARC1;ADKIM=S"]).adkim == "strict"  # type: ignore[union-attr]
    assert parse_dmarc("d.example", [b"v=spf1 -all"]) is None
    assert parse_dmarc("d.example", [b"v=DMARC1; adkim=s", b"v=DMARC1; adkim=r"]) is None  # two: no policy


@pytest.mark.parametrize(
    ("value", "host"),
    [
        (
            "from mail.example.com (mail.example.com [192.0.2.10])\n\tby mx.helpdesk.example (Postfix) with ESMTPS "
            "id 4F2A1C0123; Thu, 26 Nov 2026 09:12:03 +0000",
            "mx.helpdesk.example",
        ),
        ("from x (helo by evil.example) by MX.Helpdesk.Example. ; date", "mx.helpdesk.example"),
        ("from x (nested (by evil.example) comment) by mx.helpdesk.example", "mx.helpdesk.example"),
        ("from localhost ; Thu, 26 Nov 2026 09:12:03 +0000 by nobody", None),  # after the date: not a clause
        ("(qmail 1234 invoked by uid 0); 26 Nov 2026", None),
        ("", None),
    ],
)
def test_received_by(value: str, host: str | None) -> None:
    assert received_by(value) == host


def with_headers(*lines: str, raw: bytes = TECH_REPLY) -> bytes:
    return "".join(line + "\n" for line in lines).encode() + raw


OUR_RECEIVED = "Received: from mail.helpdesk.example by mx.helpdesk.example (Postfix); Thu, 26 Nov 2026 12:30:01 +0000"
THEIR_RECEIVED = "Received: from evil.example by relay.evil.example; Thu, 26 Nov 2026 12:29:00 +0000"
AR_PASS = "Authentication-Results: mx.helpdesk.example; dkim=pass header.d=helpdesk.example header.s=sel"


def test_authentication_results_position_and_authserv_id() -> None:
    top = parse_message(with_headers(AR_PASS, OUR_RECEIVED))
    assert [server for server, _ in trusted_headers(top, TRUSTED)[0]] == ["mx.helpdesk.example"]
    # Below our own Received: header it was in the message when it reached us, unless the admin
    # lists the MX in trusted_hosts (a verifier that inserts below the MTA's own Received: header).
    below = parse_message(with_headers(OUR_RECEIVED, AR_PASS, THEIR_RECEIVED))
    trusted, notes = trusted_headers(below, TRUSTED)
    assert trusted == [] and "below a Received: header added outside trusted_hosts" in notes[0]
    hosts = AuthPolicy(trusted_authserv_ids=("mx.helpdesk.example",), trusted_hosts=("mx.helpdesk.example",))
    assert len(trusted_headers(below, hosts)[0]) == 1
    forged = parse_message(with_headers(OUR_RECEIVED, THEIR_RECEIVED, AR_PASS))
    assert trusted_headers(forged, hosts)[0] == []
    other = parse_message(with_headers(AR_PASS.replace("mx.helpdesk.example", "mx.evil.example")))
    assert "not in trusted_authserv_ids" in trusted_headers(other, TRUSTED)[1][0]
    assert "trusted_authserv_ids is empty" in trusted_headers(top, AuthPolicy())[1][0]
    garbage = parse_message(with_headers("Authentication-Results: ;;; = ((", AR_PASS))
    trusted, notes = trusted_headers(garbage, TRUSTED)
    assert len(trusted) == 1 and "does not parse" in notes[0]


@pytest.mark.parametrize(
    ("header", "result"),
    [
        (AR_PASS, "pass"),
        ("Authentication-Results: mx.helpdesk.example; dkim=pass header.d=mail.helpdesk.example", "pass"),
        ("Authentication-Results: mx.helpdesk.example; dkim=pass header.i=@helpdesk.example", "pass"),
        ("Authentication-Results: mx.helpdesk.example; dkim=pass header.d=evil.example", "fail"),
        ("Authentication-Results: mx.helpdesk.example; dkim=fail header.d=helpdesk.example", "fail"),
        ("Authentication-Results: mx.helpdesk.example; dmarc=pass header.from=helpdesk.example", "pass"),
        ("Authentication-Results: mx.helpdesk.example; dmarc=pass header.from=evil.example", "fail"),
        ("Authentication-Results: mx.helpdesk.example; auth=pass smtp.auth=bob@helpdesk.example", "pass"),
        ("Authentication-Results: mx.helpdesk.example; auth=pass smtp.auth=eve@helpdesk.example", "fail"),
        ("Authentication-Results: mx.helpdesk.example; spf=pass smtp.mailfrom=helpdesk.example", "fail"),
        ("Authentication-Results: mx.helpdesk.example; none", "fail"),
    ],
)
def test_trusted_verdicts(header: str, result: str) -> None:
    verdict = offline_verdict(parse_message(with_headers(header, OUR_RECEIVED)), TRUSTED)
    assert verdict is not None and verdict.result == result and verdict.decided_by == "authentication-results"


def test_trusted_results_under_strict_alignment() -> None:
    header = "Authentication-Results: mx.helpdesk.example; dkim=pass header.d=mail.helpdesk.example"
    strict = AuthPolicy("strict", ("mx.helpdesk.example",))
    verdict = offline_verdict(parse_message(with_headers(header)), strict)
    assert verdict is not None and verdict.result == "fail"
    assert "alignment is strict" in verdict.describe()


def test_trusted_temperror_falls_back_to_our_own_verification() -> None:
    header = "Authentication-Results: mx.helpdesk.example; dkim=temperror header.d=helpdesk.example"
    signed = with_headers(header, "DKIM-Signature: v=1; a=rsa-sha256; d=helpdesk.example; s=x; h=from; bh=; b=")
    assert offline_verdict(parse_message(signed), TRUSTED) is None  # DNS needed
    unsigned = offline_verdict(parse_message(with_headers(header)), TRUSTED)
    assert unsigned is not None and unsigned.result == "fail" and "dkim=temperror" in unsigned.describe()


def test_header_only_verdicts() -> None:
    plain = offline_verdict(parse_message(TECH_REPLY), AuthPolicy())
    assert plain is not None and plain.result == "fail" and plain.decided_by == "headers"
    assert "no DKIM-Signature and no trusted Authentication-Results" in plain.reason
    signature = "DKIM-Signature: v=1; a=rsa-sha256; d=helpdesk.example; s=x; h=from; bh=; b="
    assert offline_verdict(parse_message(with_headers(signature)), AuthPolicy()) is None  # DNS needed
    two_from = with_headers(signature, "From: Eve <eve@helpdesk.example>")
    verdict = offline_verdict(parse_message(two_from), AuthPolicy())
    assert verdict is not None and verdict.result == "fail" and "2 From: headers" in verdict.reason
    two_addresses = TECH_REPLY.replace(b"<bob@helpdesk.example>", b"<bob@helpdesk.example>, eve@evil.example")
    verdict = offline_verdict(parse_message(with_headers(signature, raw=two_addresses)), AuthPolicy())
    assert verdict is not None and "names 2 addresses" in verdict.reason
    assert verdict.as_dict()["result"] == "fail"


def test_repeated_deciding_headers_are_never_authenticated() -> None:
    """The rules read the first instance, a signature or verifier covers one it chose: a second one of any header
    that decides leaves the verdict unauthenticated at once, whatever trusted header says otherwise."""
    for header in ("Subject: Update [Ticket #2]", "Message-ID: <new@evil.example>", "Cc: eve@evil.example"):
        doubled = with_headers(AR_PASS, OUR_RECEIVED, header, raw=TECH_REPLY.replace(b"\nDate:", b"\nCc: x@y.z\nDate:"))
        verdict = offline_verdict(parse_message(doubled), TRUSTED)
        spelled = header.split(":")[0]
        assert verdict is not None and (verdict.result, verdict.decided_by) == ("fail", "headers"), header
        assert verdict.reason.startswith(f"{spelled}: appears twice"), verdict.reason
    once = offline_verdict(parse_message(with_headers(AR_PASS, OUR_RECEIVED)), TRUSTED)
    assert once is not None and once.authenticated
    # Not a header that decides (Received:, X-anything): as many as anyone likes.
    extra = with_headers(AR_PASS, OUR_RECEIVED, "X-Note: a", "X-Note: b")
    assert (offline_verdict(parse_message(extra), TRUSTED) or once).authenticated


def test_header_binding_pure_parts() -> None:
    counts = deciding_counts(["From", "to", "SUBJECT", "Message-ID", "Received", "Received", "In-Reply-To"])
    assert counts == {"from": 1, "to": 1, "subject": 1, "message-id": 1, "in-reply-to": 1}
    assert repeated_header(counts) is None
    assert repeated_header({**counts, "references": 3}) == (
        "References: appears three times, and no signature or verifier can vouch for the instance the rules read "
        "(DKIM covers the last one, the rules read the first)"
    )
    assert signed_headers(" From : To:\r\n\tSubject:subject::") == ("from", "to", "subject", "subject")
    full = signed_headers("from:to:subject:message-id:in-reply-to:references")
    assert unsigned_header(counts, full) is None
    why = unsigned_header(counts, signed_headers("from:to:message-id:in-reply-to"), signature="d=a.example s=x")
    assert why == (
        "Subject: not covered by the h= of the DKIM signature d=a.example s=x, so anyone could have added or changed it"
    )
    assert unsigned_header(counts, ("from", "from", *full, "cc", "cc", "reply-to")) is None  # oversigned: fine
    assert unsigned_header({"from": 1}, ("from",)) is None  # absent headers need no signature
    # The DKIM verifier's parser saw one Subject fewer (a lone CR hid it in another field): never covered.
    hidden = unsigned_header(counts, full, {**counts, "subject": 0})
    assert hidden is not None and hidden.startswith("Subject: read 1 time(s) here but 0 time(s) by the DKIM verifier")


def test_settings_for_sender_verification() -> None:
    defaults = RuleSettings()
    assert (defaults.sender_verification, defaults.dkim_alignment) == ("technicians", "relaxed")
    assert defaults.trusted_authserv_ids == () and defaults.trusted_hosts == ()
    assert parse_value("sender_verification", " ALL ") == "all"
    with pytest.raises(SettingError, match="sender_verification must be one of off, technicians, all"):
        parse_value("sender_verification", "some")
    with pytest.raises(SettingError, match="dkim_alignment must be one of relaxed, strict"):
        parse_value("dkim_alignment", "loose")
    assert parse_value("trusted_authserv_ids", "MX.Helpdesk.Example, mx2.helpdesk.example") == (
        "mx.helpdesk.example",
        "mx2.helpdesk.example",
    )
    assert stored_form("trusted_hosts", "") == "[]"  # these lists may be empty
    assert settings_from_rows({"trusted_hosts": "[]", "sender_verification": "all"}).sender_verification == "all"
    with pytest.raises(SettingError):
        parse_value("reply_prefixes", "")  # the prefix lists still may not


def test_dns_configuration() -> None:
    assert config_from_mapping({}).dns == DnsConfig((), 10.0)
    config = config_from_mapping({"dns": {"resolvers": ["127.0.0.1:5353", "::1", "[::1]:53"], "time_budget": 2}})
    assert config.dns == DnsConfig(("127.0.0.1:5353", "::1", "[::1]:53"), 2.0)
    assert parse_resolver("[2001:db8::1]:5300") == ("2001:db8::1", 5300)
    for bad, message in (
        ({"dns": {"resolvers": "127.0.0.1"}}, "dns.resolvers must be a list"),
        ({"dns": {"resolvers": ["ns1.example.com"]}}, "not an IP address"),
        ({"dns": {"resolvers": ["127.0.0.1:99999"]}}, "port out of range"),
        ({"dns": {"time_budget": 0}}, "dns.time_budget must be a positive number"),
        ({"dns": {"timeout": 3}}, "unknown setting dns.timeout"),
        ({"dns": "8.8.8.8"}, r"\[dns\] must be a table"),
    ):
        with pytest.raises(ConfigurationError, match=message):
            config_from_mapping(bad)
