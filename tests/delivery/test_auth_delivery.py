"""Sender verification through the real executables, on SQLite and PostgreSQL, with real signatures
(RSA and Ed25519 keys made here, messages signed with dkimpy) and real DNS: an authoritative server on
127.0.0.1 (tests/support/servers/dnsserver.py) publishes the keys and DMARC records, and email2ticket is configured to
ask it. The help desk: alice@example.com opened ticket #1; bob@helpdesk.example is a technician with
normal access, so under the default `sender_verification = technicians` his replies need proof.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.desk import Desk, MakeDesk, reason
from support.dkimsign import SigningKey, ed25519_key, rsa_key, sign
from support.mail import MAIL
from support.servers.dnsserver import DnsServer

TECH_REPLY = (MAIL / "reply_technician.eml").read_bytes()
OUR_MX = (
    "Received: from mail.helpdesk.example (mail.helpdesk.example [192.0.2.20])\n"
    "\tby mx.helpdesk.example (Postfix) with ESMTPS id 7F3B2C0001; Thu, 26 Nov 2026 12:30:01 +0000\n"
)


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    """Real keys, made once: RSA 2048 and Ed25519 for the technicians' domain, and a few others."""
    return {
        "rsa": rsa_key("helpdesk.example"),
        "ed25519": ed25519_key("helpdesk.example"),
        "sub": rsa_key("mail.helpdesk.example", "sub"),
        "evil": rsa_key("evil.example", "evil"),
        "unpublished": rsa_key("helpdesk.example", "gone"),
        "slow": ed25519_key("slow.example", "slow"),
        "alice": ed25519_key("example.com", "alice"),
    }


@pytest.fixture
def dns_server(keys: dict[str, SigningKey]) -> Iterator[DnsServer]:
    with DnsServer() as server:
        for name in ("rsa", "ed25519", "sub", "evil", "slow", "alice"):
            server.add_txt(keys[name].dns_name, keys[name].txt)
        yield server


@pytest.fixture
def desk(make_desk: MakeDesk, dns_server: DnsServer) -> Desk:
    """A help desk asking the test's DNS server, where alice@example.com opened ticket #1 and bob@helpdesk.example
    is a technician with normal access."""
    dns = {"resolvers": [dns_server.address], "time_budget": 3}
    desk = make_desk({"delivery_timeout": 60, "dns": dns, "logging": {"target": "none"}})
    assert desk.deliver("new_ticket.eml").json["ticket"] == 1
    desk.admin("user", "add", "bob@helpdesk.example", "--technician", "--access", "normal")
    return desk


@pytest.fixture
def reply() -> Callable[..., bytes]:
    """reply(sender=..., body=...): a fresh technician reply to ticket #1 (its own Message-ID, so never a duplicate)."""
    replies = itertools.count(1)

    def fresh(*, sender: bytes = b"bob@helpdesk.example", body: bytes | None = None) -> bytes:
        raw = TECH_REPLY.replace(b"tech-reply-1", f"tech-reply-auth-{next(replies)}".encode())
        raw = raw.replace(b"bob@helpdesk.example", sender)
        return raw if body is None else raw.replace(b"I ordered a new fuser unit", body)

    return fresh


def outcome(result: Any, action: str, ticket: int | None) -> dict[str, Any]:
    assert result.returncode == 0, result
    data: dict[str, Any] = result.json
    assert (data["action"], data["ticket"]) == (action, ticket), result
    return data


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_signed_technician_reply_updates(
    desk: Desk, keys: dict[str, SigningKey], algorithm: str, reply: Callable[..., bytes]
) -> None:
    data = outcome(desk.deliver(sign(reply(), keys[algorithm])), "update", 1)
    why = reason(data, "sender-authenticated")
    assert why.startswith(f"authenticated: DKIM signature d=helpdesk.example s={keys[algorithm].selector} verified")
    assert f"{keys[algorithm].algorithm.decode()}: pass (signature verified)" in why
    [comment] = desk.ticket(1)["comments"]
    assert comment["author"] == "bob@helpdesk.example" and comment["verified"] is True
    audit = desk.messages()[-1]["auth_verdict"]
    assert (audit["result"], audit["decided_by"]) == ("pass", "dkim")
    assert audit["evidence"][0]["result"] == "pass" and audit["evidence"][0]["domain"] == "helpdesk.example"
    assert desk.messages()[0]["auth_verdict"] == {"result": "not evaluated", "reason": "not needed"}
    assert "--- comment by bob@helpdesk.example (verified)" in desk.admin("ticket", "show", "1").stdout_text


def test_unauthenticated_technician_mail_opens_flagged_tickets(
    desk: Desk, keys: dict[str, SigningKey], reply: Callable[..., bytes]
) -> None:
    """Every way a signature can fail to vouch for From: ends the same: a new, flagged ticket, exit 0."""
    now = int(time.time())
    cases: list[tuple[str, bytes, str]] = [
        ("no signature", reply(), "no DKIM-Signature and no trusted Authentication-Results"),
        (
            "body modified after signing",
            sign(reply(), keys["rsa"]).replace(b"arrives on Monday", b"arrives on Friday"),
            "fail (body hash mismatch: the body was changed after signing)",
        ),
        (
            "forged From: with a valid signature of another domain",
            sign(reply(), keys["evil"]),
            "dkim d=evil.example s=evil rsa-sha256: pass (signature verified), d= is unrelated to the From: domain",
        ),
        (
            "expired signature",
            sign(reply(), keys["ed25519"], dates=(now - 30 * 86400, now - 20 * 86400)),
            "permerror (the signature expired at",
        ),
        (
            "l= body-length abuse",
            sign(reply(), keys["rsa"], length=True) + b"\nPS: wire the invoice to IBAN XX00 0000, urgent!\n",
            "policy (verified, but l= covers only",
        ),
        (
            "a key nobody published",
            sign(reply(), keys["unpublished"]),
            "permerror (no key published at gone._domainkey.helpdesk.example)",
        ),
        (
            "several From: addresses",
            sign(reply(sender=b"bob@helpdesk.example>, <eve@evil.example"), keys["rsa"]),
            "the From: header names 2 addresses, which is never authenticated",
        ),
    ]
    for number, (case, raw, expected) in enumerate(cases, start=2):
        data = outcome(desk.deliver(raw), "create", number)
        why = reason(data, "sender-authenticated")
        assert why.startswith("not authenticated: ") and expected in why, (case, why)
        assert "flagged as from an unverified sender" in reason(data, "unverified-sender"), case
        ticket = desk.ticket(number)
        assert ticket["unverified_sender"] is True and ticket["requester"] != "alice@example.com", case
    assert desk.ticket(1)["comments"] == []  # nothing reached alice's ticket
    assert "Opened by an UNVERIFIED sender" in desk.admin("ticket", "show", "2").stdout_text
    assert desk.messages()[1]["auth_verdict"]["decided_by"] == "headers"


def test_subdomain_signer_and_alignment_modes(
    desk: Desk, keys: dict[str, SigningKey], reply: Callable[..., bytes], dns_server: DnsServer
) -> None:
    data = outcome(desk.deliver(sign(reply(), keys["sub"])), "update", 1)  # relaxed: same organization
    assert "(relaxed alignment)" in reason(data, "sender-authenticated")
    assert dns_server.asked("_dmarc.helpdesk.example")  # relaxed-only: the From: domain's DMARC may say adkim=s
    dns_server.add_txt("_dmarc.helpdesk.example", "v=DMARC1; p=reject; adkim=s")
    data = outcome(desk.deliver(sign(reply(), keys["sub"])), "create", 2)
    assert "the DMARC record of helpdesk.example: adkim=s" in reason(data, "sender-authenticated")
    dns_server.remove("_dmarc.helpdesk.example")
    desk.admin("settings", "set", "dkim_alignment", "strict")
    data = outcome(desk.deliver(sign(reply(), keys["sub"])), "create", 3)
    assert "alignment is strict (dkim_alignment=strict)" in reason(data, "sender-authenticated")
    outcome(desk.deliver(sign(reply(), keys["rsa"])), "update", 1)  # identical d= passes strict


def test_one_good_signature_among_several(desk: Desk, keys: dict[str, SigningKey], reply: Callable[..., bytes]) -> None:
    raw = sign(sign(sign(reply(), keys["ed25519"]), keys["evil"]), keys["unpublished"])
    data = outcome(desk.deliver(raw), "update", 1)
    why = reason(data, "sender-authenticated")
    assert "d=helpdesk.example s=ed25519 verified" in why
    assert "dkim d=helpdesk.example s=gone rsa-sha256: permerror" in why
    assert "dkim d=evil.example s=evil rsa-sha256: pass" in why
    assert len(desk.messages()[-1]["auth_verdict"]["evidence"]) == 3


def test_authentication_results_trusted_and_forged(
    desk: Desk, reply: Callable[..., bytes], dns_server: DnsServer
) -> None:
    claim = "Authentication-Results: mx.helpdesk.example; dkim=pass header.d=helpdesk.example header.s=sel\n"
    # Not configured: no header is trusted, whatever it claims.
    data = outcome(desk.deliver(claim.encode() + OUR_MX.encode() + reply()), "create", 2)
    assert "trusted_authserv_ids is empty" in reason(data, "sender-authenticated")
    desk.admin("settings", "set", "trusted_authserv_ids", "mx.helpdesk.example")
    # Forged: the sender wrote it, so our MX's Received: header sits above it.
    data = outcome(desk.deliver(OUR_MX.encode() + claim.encode() + reply()), "create", 3)
    assert "below a Received: header added outside trusted_hosts" in reason(data, "sender-authenticated")
    # Another verifier's verdict: not ours to trust.
    other = claim.replace("mx.helpdesk.example;", "mx.evil.example;")
    outcome(desk.deliver(other.encode() + OUR_MX.encode() + reply()), "create", 4)
    # Ours, added above our own Received: header: accepted without re-verifying (no DNS at all).
    data = outcome(desk.deliver(claim.encode() + OUR_MX.encode() + reply()), "update", 1)
    assert reason(data, "sender-authenticated").startswith(
        "authenticated: trusted Authentication-Results from mx.helpdesk.example: dkim d=helpdesk.example s=sel: pass"
    )
    # An authenticated submission by the From: address itself (internal mail often has no signature).
    submission = "Authentication-Results: mx.helpdesk.example; auth=pass smtp.auth=bob@helpdesk.example\n"
    data = outcome(desk.deliver(submission.encode() + reply()), "update", 1)
    assert "submission authenticated as bob@helpdesk.example" in reason(data, "sender-authenticated")
    # A verifier inserting below the MTA's own Received: header, with the MX in trusted_hosts.
    desk.admin("settings", "set", "trusted_hosts", "mx.helpdesk.example")
    outcome(desk.deliver(OUR_MX.encode() + claim.encode() + reply()), "update", 1)
    assert dns_server.queries == []
    assert [c["verified"] for c in desk.ticket(1)["comments"]] == [True, True, True]


def test_dns_timeout_that_decides_the_outcome_defers(
    desk: Desk, keys: dict[str, SigningKey], reply: Callable[..., bytes], dns_server: DnsServer
) -> None:
    desk.configure(dns={"time_budget": 1})
    dns_server.hang.add("helpdesk.example")
    before = len(desk.messages())
    started = time.monotonic()
    result = desk.deliver(sign(reply(), keys["rsa"]))
    assert result.returncode == 75, result
    assert time.monotonic() - started < 10
    assert result.stderr_first_line.startswith(
        "4.4.3 could not verify the sender bob@helpdesk.example, on which updating ticket #1 depends: "
    )
    assert "DNS timeout looking up rsa2048._domainkey.helpdesk.example" in result.stderr_first_line
    assert result.json["action"] == "defer" and result.json["exit_code"] == 75
    assert "Traceback" not in result.stderr_text
    assert len(desk.messages()) == before and desk.ticket(1)["comments"] == []  # nothing written: the MTA retries
    # The same mail once DNS answers again is delivered normally.
    dns_server.hang.clear()
    outcome(desk.deliver(sign(reply(), keys["rsa"])), "update", 1)


def test_delivery_timeout_during_dns_still_defers(
    desk: Desk, keys: dict[str, SigningKey], reply: Callable[..., bytes], dns_server: DnsServer
) -> None:
    # dnspython swallows the alarm while it waits for a server; it must still end the delivery, on time.
    desk.configure(delivery_timeout=2, dns={"time_budget": 30})
    dns_server.hang.add("slow.example")
    started = time.monotonic()
    result = desk.deliver(sign(sign(reply(), keys["rsa"]), keys["slow"]))
    assert result.returncode == 75, result
    assert result.stderr_first_line.startswith("4.3.0 delivery took longer than delivery_timeout (2 s)")
    assert time.monotonic() - started < 15
    assert desk.ticket(1)["comments"] == []


def test_dns_timeout_that_does_not_matter_is_recorded_and_ignored(
    desk: Desk, keys: dict[str, SigningKey], reply: Callable[..., bytes], dns_server: DnsServer
) -> None:
    desk.configure(dns={"time_budget": 1})
    dns_server.hang.add("slow.example")
    # A second signature of an unrelated, unreachable domain: the aligned one decides.
    data = outcome(desk.deliver(sign(sign(reply(), keys["slow"]), keys["rsa"])), "update", 1)
    why = reason(data, "sender-authenticated")
    assert why.startswith("authenticated: ") and "ignored: dkim d=slow.example s=slow ed25519-sha256: temperror" in why
    # A requester needs no verification: her signature's DNS is never even asked.
    dns_server.hang.add("example.com")
    alice = (MAIL / "reply_outlook_requester.eml").read_bytes()
    data = outcome(desk.deliver(sign(alice, keys["alice"])), "update", 1)
    assert reason(data, "sender-authenticated").startswith("not evaluated: not needed")
    assert not dns_server.asked("example.com")
    # restrict_replies off: the technician may reply anyway; the temperror is recorded, not fatal.
    dns_server.hang.add("helpdesk.example")
    desk.admin("settings", "set", "restrict_replies", "off")
    data = outcome(desk.deliver(sign(reply(), keys["rsa"])), "update", 1)
    assert reason(data, "sender-authenticated").startswith("DNS failed temporarily")
    assert [c["verified"] for c in desk.ticket(1)["comments"]] == [True, False, False]


def test_modes_off_and_all(desk: Desk, keys: dict[str, SigningKey], reply: Callable[..., bytes]) -> None:
    alice = (MAIL / "reply_outlook_requester.eml").read_bytes()
    desk.admin("settings", "set", "sender_verification", "all")
    data = outcome(desk.deliver(alice), "create", 2)  # every update needs proof, the requester's too
    assert "needed for a requester's reply (sender_verification=all)" in reason(data, "sender-authenticated")
    outcome(desk.deliver(sign(alice.replace(b"DB9PR01", b"DB9PR02"), keys["alice"])), "update", 1)
    desk.admin("settings", "set", "sender_verification", "off")
    data = outcome(desk.deliver(reply()), "update", 1)  # the seed rules: From: alone
    assert reason(data, "sender-authenticated") == "not evaluated: not needed (sender_verification=off)"
    shown = json.loads(desk.admin("settings", "show", "--json").stdout)
    assert shown["sender_verification"] == "off" and shown["dkim_alignment"] == "relaxed"
    assert shown["trusted_authserv_ids"] == "" and shown["trusted_hosts"] == ""


def test_explain_tells_the_verdict_in_words(
    desk: Desk, keys: dict[str, SigningKey], reply: Callable[..., bytes]
) -> None:
    forged = sign(reply(), keys["evil"])
    lines = desk.admin("explain", stdin=forged).stdout_text.splitlines()
    assert "sender-is-privileged-technician: HIT - bob@helpdesk.example is a technician with normal" in lines[11]
    assert lines[12].startswith(
        "sender-authenticated: MISS - not authenticated: no DKIM signature both verified and aligned with the From: "
        "domain helpdesk.example; dkim d=evil.example s=evil rsa-sha256: pass (signature verified), d= is unrelated"
    )
    unverified = next(line for line in lines if line.startswith("unverified-sender: "))
    assert unverified.startswith("unverified-sender: HIT - bob@helpdesk.example would have updated ticket #1")
    assert lines[-1] == "Decision: create new ticket flagged as from an unverified sender"
    good = desk.admin("explain", stdin=sign(reply(), keys["rsa"])).stdout_text
    assert "sender-authenticated: HIT - authenticated: DKIM signature d=helpdesk.example" in good
    assert good.splitlines()[-1] == "Decision: update ticket #1"
    assert len(desk.messages()) == 1  # explain writes nothing


def test_messages_show_prints_the_verdict(desk: Desk, keys: dict[str, SigningKey], reply: Callable[..., bytes]) -> None:
    outcome(desk.deliver(sign(reply(), keys["rsa"])), "update", 1)
    text = desk.admin("messages", "show", "2").stdout_text
    assert "sender-authenticated: authenticated: DKIM signature" in text
    assert '"result": "pass"' in text and '"decided_by": "dkim"' in text


# Whether dkimpy/dnspython are imported, from inside the real pipe command's process.
PROBE = """
import io, json, sys
from email2ticket.cli.deliver import run
code = run(sys.argv[1:], io.BytesIO(sys.stdin.buffer.read()), {})
print(json.dumps({"code": code, "dkim": "dkim" in sys.modules, "dns": "dns.resolver" in sys.modules}), file=sys.stderr)
"""


def test_heavy_imports_only_when_the_decision_needs_them(
    desk: Desk, keys: dict[str, SigningKey], make_runner: Any, tmp_path: Path, reply: Callable[..., bytes]
) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    runner = make_runner(probe)
    alice = (MAIL / "reply_outlook_requester.eml").read_bytes()
    cases = [
        (sign(alice, keys["alice"]), False),  # signed, but a requester needs no verification
        (reply(), False),  # a technician without any signature: unauthenticated at once
        (sign(reply(), keys["rsa"]), True),  # a technician's signature decides: verify
    ]
    for raw, heavy in cases:
        result = runner(*desk.options(), stdin=raw)
        probe_line = json.loads(result.stderr_text.strip().splitlines()[-1])
        assert probe_line == {"code": 0, "dkim": heavy, "dns": heavy}, result


# --- authentication bound to the headers that decide (issue: second attack round, item 1) ----------


def carol_ticket(desk: Desk, number: int = 2) -> None:
    """Ticket `number`, carol's: what a retargeted technician mail would write into."""
    carol = (
        b"From: carol@example.net\nTo: helpdesk@helpdesk.example\nSubject: VPN down\nMessage-ID: <c1@example.net>\n\n"
    )
    assert desk.deliver(carol).json["ticket"] == number


def test_a_header_added_above_a_signed_mail_does_not_carry_its_authentication(
    desk: Desk, keys: dict[str, SigningKey], reply: Callable[..., bytes]
) -> None:
    """DKIM covers the last Subject:/Message-ID:, the rules read the first: one put above a genuinely signed
    technician mail must not turn it into a verified comment on the ticket it now names, nor a fresh copy."""
    carol_ticket(desk)
    signed = sign(reply(), keys["rsa"])
    retargeted = b"Subject: Update on your request [Ticket #2]\n" + signed
    lines = desk.admin("explain", stdin=retargeted).stdout_text
    assert "sender-authenticated: MISS - not authenticated: Subject: appears twice" in lines
    data = outcome(desk.deliver(retargeted), "create", 3)
    why = reason(data, "sender-authenticated")
    assert why.startswith("not authenticated: Subject: appears twice"), why
    assert "flagged as from an unverified sender" in reason(data, "unverified-sender")
    assert desk.ticket(2)["comments"] == [] and desk.ticket(3)["unverified_sender"] is True
    audit = desk.messages()[-1]["auth_verdict"]
    assert (audit["result"], audit["decided_by"]) == ("fail", "headers") and "Subject: appears twice" in audit["reason"]
    # A fresh Message-ID above the signed one: a replay the duplicate check would not catch.
    replayed = b"Message-ID: <replay-1@evil.example>\n" + signed
    data = outcome(desk.deliver(replayed, "--dry-run"), "create", None)
    assert reason(data, "sender-authenticated").startswith("not authenticated: Message-ID: appears twice")
    outcome(desk.deliver(replayed), "create", 4)
    assert desk.ticket(1)["comments"] == []
    # A signed mail as it was sent is the technician's verified comment.
    outcome(desk.deliver(sign(reply(), keys["rsa"])), "update", 1)
    assert [c["verified"] for c in desk.ticket(1)["comments"]] == [True]


def test_a_signature_must_cover_the_headers_that_decide(
    desk: Desk, keys: dict[str, SigningKey], reply: Callable[..., bytes]
) -> None:
    unsigned_subject = sign(reply(), keys["rsa"], include_headers=[b"from", b"to", b"date", b"message-id"])
    data = outcome(desk.deliver(unsigned_subject), "create", 2)
    why = reason(data, "sender-authenticated")
    assert why.startswith(
        "not authenticated: Subject: not covered by the h= of the DKIM signature d=helpdesk.example"
    ), why
    assert "rsa-sha256: pass (signature verified)" in why  # the signature itself did verify
    assert desk.messages()[-1]["auth_verdict"]["decided_by"] == "dkim"
    # Oversigned (h= names each header once more than the message has it): nothing can be added above it.
    oversigned = [b"from", b"from", b"to", b"to", b"subject", b"subject", b"date", b"message-id", b"message-id"]
    oversigned += [b"cc", b"reply-to", b"in-reply-to", b"references"]  # absent, and signed as absent
    signed = sign(reply(), keys["ed25519"], include_headers=oversigned)
    data = outcome(desk.deliver(signed), "update", 1)
    assert reason(data, "sender-authenticated").startswith("authenticated: DKIM signature d=helpdesk.example")
    # A Subject: the rules read but dkimpy does not (a lone CR hides it inside another field, for dkimpy only)
    # is not covered by a signature that signed Subject: as absent.
    carol_ticket(desk, 3)
    without_subject = sign(reply().replace(b"Subject: Re: Printer jam on the second floor (#1)\n", b""), keys["rsa"])
    hidden = b"X-Note: a\rSubject: Update on your request [Ticket #3]\n" + without_subject
    data = outcome(desk.deliver(hidden), "create", 4)
    assert reason(data, "sender-authenticated").startswith(
        "not authenticated: Subject: read 1 time(s) here but 0 time(s) by the DKIM verifier"
    )
    assert desk.ticket(3)["comments"] == []
    assert [c["verified"] for c in desk.ticket(1)["comments"]] == [True]


def test_a_trusted_verdict_does_not_cover_a_repeated_header(
    desk: Desk, reply: Callable[..., bytes], dns_server: DnsServer
) -> None:
    desk.admin("settings", "set", "trusted_authserv_ids", "mx.helpdesk.example")
    claim = b"Authentication-Results: mx.helpdesk.example; dkim=pass header.d=helpdesk.example header.s=sel\n"
    carol_ticket(desk)
    doubled = claim + OUR_MX.encode() + b"Subject: Update on your request [Ticket #2]\n" + reply()
    data = outcome(desk.deliver(doubled), "create", 3)
    assert reason(data, "sender-authenticated").startswith("not authenticated: Subject: appears twice"), data
    assert desk.ticket(2)["comments"] == []
    outcome(desk.deliver(claim + OUR_MX.encode() + reply()), "update", 1)  # once: the verdict holds
    assert dns_server.queries == []
