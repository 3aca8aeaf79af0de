"""Real-world signed mail from ../shared/corpus: every message that carries a DKIM-Signature gets a
verdict, quickly and without a traceback, with the resolver pointed at the test's DNS server (which
answers NXDOMAIN for their keys, so none of them can pass).

The messages are also delivered through the pipe command's own entry point (`cli.deliver.run`, in
process to stay quick) as replies from a technician with full access, so that the decision depends
on the verdict: each opens a new ticket flagged as from an unverified sender, exit 0, never 75.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from email2ticket.auth.verdict import AuthPolicy
from email2ticket.auth.verify import verify_sender
from email2ticket.config.model import DnsConfig
from email2ticket.mail.message import parse_message
from support.corpus import corpus_messages
from support.servers.dnsserver import DnsServer

SIGNED = [path for path in corpus_messages() if b"\ndkim-signature:" in b"\n" + path.read_bytes().lower()]


@pytest.mark.skipif(not SIGNED, reason="../shared/corpus is not beside the checkout")
def test_every_signed_corpus_message_gets_a_verdict() -> None:
    with DnsServer() as server:
        config = DnsConfig((server.address,), 2.0)
        for path in SIGNED:
            raw = path.read_bytes()
            message = parse_message(raw)
            started = time.monotonic()
            verdict = verify_sender(raw, message, AuthPolicy(), config)
            elapsed = time.monotonic() - started
            assert verdict.result == "fail", (path.name, verdict.describe())
            assert elapsed < 1.0, (path.name, elapsed)
            if verdict.decided_by == "dkim":
                assert verdict.evidence, path.name
                assert {e.result for e in verdict.evidence} <= {"permerror", "fail", "policy"}, verdict.describe()
            json.dumps(verdict.as_dict())  # the audit record's form
        assert server.asked("._domainkey.")


@pytest.mark.slow
@pytest.mark.skipif(not SIGNED, reason="../shared/corpus is not beside the checkout")
def test_signed_corpus_mail_from_a_technician(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from email2ticket.cli.deliver import run
    from email2ticket.store.admin import AdminStore

    store = AdminStore(sqlite_url)
    store.init()
    with DnsServer() as server:
        config = tmp_path / "config.toml"
        config.write_text(f'[dns]\nresolvers = ["{server.address}"]\ntime_budget = 2\n[logging]\ntarget = "none"\n')
        env = {"EMAIL2TICKET_CONFIG": str(config)}
        first = b"From: someone@example.org\nSubject: a ticket\nMessage-ID: <t1@example.org>\n\nHello\n"
        assert run(["--database-url", sqlite_url], io.BytesIO(first), env) == 0
        flagged = 0
        for path in SIGNED:
            raw = path.read_bytes()
            message = parse_message(raw)
            if len(message.from_addresses) != 1:
                continue
            store.add_user(message.from_addresses[0], name=None, technician=True, access="full")
            # The first Subject: header wins, so this turns the message into a reply to ticket #1.
            reply = f"Subject: Re: {path.name} [Ticket #1]\n".encode() + raw
            capsys.readouterr()
            code = run(["--database-url", sqlite_url, "--json"], io.BytesIO(reply), env)
            out = capsys.readouterr()
            assert code == 0, (path.name, out.err)
            data = json.loads(out.out)
            if data["action"] == "duplicate":
                continue
            if data["action"] == "hold":  # a torture test over the structural limits (flanker enclosed-endless)
                assert any(r.startswith("message-limits: max_") for r in data["reasons"]), (path.name, data)
                continue
            if data["action"] == "ignore":  # a bounce or an auto-reply: loop protection, never a ticket
                assert any(r.startswith(("bounce: a delivery", "automatic-mail: automatic")) for r in data["reasons"])
                continue
            assert data["action"] == "create", (path.name, data)
            assert any(r.startswith("sender-authenticated: not authenticated") for r in data["reasons"]), data
            assert store.show_ticket(data["ticket"])["unverified_sender"] is True
            flagged += 1
        assert flagged >= len(SIGNED) // 2
