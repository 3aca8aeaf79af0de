"""A duplicate stores nothing twice: the MTA redelivering a large mail (a retry after a timeout, a second route)
used to add another full copy of its raw bytes to the audit trail each time. A duplicate's record now keeps its
own header block (where copies differ: Return-Path, Received), the size and SHA-256 of all its bytes, and takes
its body from the first copy's record, so `messages show ID --raw` still gives back the bytes that arrived.
"""

from __future__ import annotations

import hashlib

from support.desk import Desk, MakeDesk
from support.mail import mail

BIG = "A line of the attached log that makes this message about a megabyte long.\n" * 14_000


def stored_bytes(desk: Desk, row: int) -> int:
    """How many bytes of the message the audit record holds in its `raw` column."""
    size = "length(raw)" if desk.url.startswith("sqlite") else "octet_length(raw)"
    return int(desk.sql(f"SELECT {size} FROM messages WHERE id = :row", row=row)[0][0])


def test_a_duplicate_keeps_its_headers_and_borrows_the_first_copys_body(make_desk: MakeDesk) -> None:
    desk = make_desk(init=True)
    first = b"Return-Path: <alice@example.com>\nReceived: from mx1\n" + mail("Logs attached", BIG, message_id="big@x")
    again = b"Return-Path: <alice@example.com>\nReceived: from mx2\n" + mail("Logs attached", BIG, message_id="big@x")
    assert desk.deliver_ok(first)["action"] == "create"
    assert desk.deliver_ok(again)["action"] == "duplicate"
    original, duplicate = desk.messages()
    assert stored_bytes(desk, original["id"]) == len(first) > 1_000_000
    assert stored_bytes(desk, duplicate["id"]) < 1_000  # before: the whole megabyte again
    assert (duplicate["size"], duplicate["sha256"]) == (len(again), hashlib.sha256(again).hexdigest())

    shown = desk.admin("messages", "show", str(duplicate["id"]), "--raw")
    assert shown.stdout == again and shown.stderr == b""
    record = desk.admin("messages", "show", str(duplicate["id"])).stdout_text
    assert f"raw_body_from: {original['id']}" in record and "raw_exact: True" in record

    # A copy whose line endings differ has the same body digest (a duplicate) but other bytes: what is put
    # together is said to be the first copy's body.
    crlf = again.replace(b"Received: from mx2", b"Received: from mx3").replace(b"\n", b"\r\n")
    assert desk.deliver_ok(crlf)["action"] == "duplicate"
    third = desk.messages()[-1]
    shown = desk.admin("messages", "show", str(third["id"]), "--raw")
    assert shown.stdout.startswith(crlf.partition(b"\r\n\r\n")[0]) and shown.stdout.endswith(BIG.encode())
    assert f"this is the body of message {original['id']}" in shown.stderr_text
