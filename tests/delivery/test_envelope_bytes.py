"""Envelope data that is not UTF-8: what an MTA may hand over in `--sender`, `$SENDER`, `--recipient`, `--queue-id`
or an LMTP `MAIL FROM`, through the real executables and the real service.

Such bytes reach Python as surrogate escapes, which neither a database column nor a log line can hold: every
such delivery used to exit 75 ("internal error: UnicodeEncodeError ... surrogates not allowed"), and could not
even record the failed attempt, so it was retried until the MTA gave up. They are now decoded as a header's
8-bit bytes are (UTF-8, else cp1252), and the record says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.desk import Desk, MakeDesk
from support.mail import mail
from support.servers.delivery_service import StartService

HELPDESK = "helpdesk@helpdesk.example"
LATIN1 = b"caf\xe9@example.org".decode("utf-8", "surrogateescape")  # what Python makes of that argv or variable


def envelope_reasons(data: dict[str, Any]) -> list[str]:
    return [reason for reason in data["reasons"] if reason.startswith("envelope: ")]


def test_bytes_that_are_not_utf8_in_the_envelope_are_decoded_and_recorded(make_desk: MakeDesk) -> None:
    desk = make_desk(init=True)
    for number, where in enumerate(("--sender", "$SENDER", "--recipient", "--queue-id"), start=1):
        raw = mail(f"Printer jam {number}", sender="" if where in ("--sender", "$SENDER") else "alice@example.com")
        env = {"SENDER": LATIN1} if where == "$SENDER" else None
        args = () if where == "$SENDER" else (where, LATIN1)
        result = desk.pipe("--json", *args, stdin=raw, env=env)
        assert result.returncode == 0, result
        data = result.json
        assert (data["action"], data["ticket"]) == ("create", number)
        what = {"--recipient": "recipient", "--queue-id": "queue id"}.get(where, "sender")
        assert envelope_reasons(data) == [
            f"envelope: the envelope {what} has bytes that are not UTF-8 (\\xe9): read as 'café@example.org'"
        ]
        record = desk.messages()[-1]
        column = {"sender": "envelope_sender", "recipient": "envelope_recipient", "queue id": "queue_id"}[what]
        assert record[column] == "café@example.org"
        if what == "sender":  # no From: header, so the envelope sender is the requester
            assert desk.ticket(number)["requester"] == "café@example.org"


def test_through_the_service_and_lmtp(
    sqlite_url: str, run_admin: Any, run_deliver: Any, child_home: Path, start_service: StartService
) -> None:
    """The thin client forwards argv and environment bytes as they are; LMTP's 8-bit MAIL FROM reaches the
    same decoding. Before: 75 through the pipe, `451 4.3.0 internal error` through LMTP."""
    desk = Desk(sqlite_url, run_admin, run_deliver, init=True)
    service = start_service(sqlite_url, home=child_home)
    args = ("--socket", str(service.socket), "--fallback", "tempfail", "--json")
    result = desk.pipe(*args, "--sender", LATIN1, stdin=mail("Through the service", sender=""))
    assert result.returncode == 0 and result.json["action"] == "create", result
    assert len(envelope_reasons(result.json)) == 1

    with service.lmtp() as lmtp:
        lmtp.sock.sendall(b"MAIL FROM:<caf\xe9@example.org>\r\n")
        assert lmtp.reply()[0] == 250
        assert lmtp.command(f"RCPT TO:<{HELPDESK}>")[0] == 250
        assert lmtp.command("DATA")[0] == 354
        body = mail("Over LMTP", sender="").replace(b"\n", b"\r\n")
        lmtp.sock.sendall(body + b".\r\n")
        code, text = lmtp.reply()
    assert (code, text) == (250, f"2.0.0 <{HELPDESK}> create ticket #2"), text
    senders = {row["envelope_sender"] for row in desk.messages()}
    assert senders == {"café@example.org"}
