"""Bad input through the real executable: every message becomes a ticket or a documented exit code,
never a crash, a hang or a 75, and the raw bytes are kept exactly as received."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

BAD = Path(__file__).resolve().parents[1] / "fixtures" / "bad"
FIXTURES = sorted(BAD.glob("*.eml"))


def deliver(run_deliver: Any, url: str, raw: bytes, *args: str) -> Any:
    return run_deliver("--database-url", url, "--json", "--sender", "mta-sender@example.org", *args, stdin=raw)


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_bad_fixture_becomes_a_ticket(path: Path, sqlite_url: str, run_deliver: Any, run_admin: Any) -> None:
    raw = path.read_bytes()
    result = deliver(run_deliver, sqlite_url, raw)
    assert result.returncode == 0, result
    assert result.json["action"] == "create" and "Traceback" not in result.stderr_text
    shown = json.loads(run_admin("--database-url", sqlite_url, "ticket", "show", "1", "--json").stdout)
    assert shown["subject"] and "\x00" not in shown["description"]
    kept = run_admin("--database-url", sqlite_url, "messages", "show", "1", "--raw").stdout
    assert kept == raw


def test_nul_bytes_and_path_like_names_on_postgres(postgres_url: str, run_deliver: Any, run_admin: Any) -> None:
    assert run_admin("--database-url", postgres_url, "init").returncode == 0
    for number, name in enumerate(("nul_bytes.eml", "path_like_filename_attachment.eml"), start=1):
        result = deliver(run_deliver, postgres_url, (BAD / name).read_bytes())
        assert result.returncode == 0 and result.json["ticket"] == number, result
    ticket = json.loads(run_admin("--database-url", postgres_url, "ticket", "show", "2", "--json").stdout)
    names = {a["filename"] for a in ticket["attachments"]}
    assert "../../etc/passwd" in names  # stored exactly as sent; only filesystem uses are sanitised


def test_very_long_line_and_deep_nesting(sqlite_url: str, run_deliver: Any) -> None:
    long_line = b"From: a@example.com\nSubject: long line\n\n" + b"x" * (2 << 20) + b"\n"
    assert deliver(run_deliver, sqlite_url, long_line).json["action"] == "create"
    nested = b"From: b@example.com\nSubject: nested\n"
    for level in range(3000):
        nested += f'Content-Type: multipart/mixed; boundary="b{level}"\n\n--b{level}\n'.encode()
    nested += b"Content-Type: text/plain\n\ninnermost\n"
    result = deliver(run_deliver, sqlite_url, nested)
    # 3,000 levels are over max_mime_depth (50): held for the admin, exit 0, never a crash or a retry
    assert result.returncode == 0 and result.json["action"] == "hold", result
    assert any(reason.startswith("message-limits: max_mime_depth") for reason in result.json["reasons"])


def test_no_input_at_all(sqlite_url: str, run_deliver: Any) -> None:
    result = deliver(run_deliver, sqlite_url, b"")
    assert result.returncode == 65 and result.stderr_first_line == "5.6.0 no message on standard input", result


def test_leading_mbox_from_line_is_tolerated(sqlite_url: str, run_deliver: Any, run_admin: Any) -> None:
    # procmail and a .forward pipe hand over the message with an mbox "From " line in front.
    raw = (
        b"From alice@example.com  Thu Nov 26 09:12:00 2026\n"
        b"From: Alice <alice@example.com>\nSubject: Mailbox full\nMessage-ID: <mbox-1@example.com>\n\nHelp.\n"
    )
    result = run_deliver("--database-url", sqlite_url, "--json", stdin=raw)
    assert result.returncode == 0, result
    ticket = json.loads(run_admin("--database-url", sqlite_url, "ticket", "show", "1", "--json").stdout)
    assert (ticket["subject"], ticket["requester"]) == ("Mailbox full", "alice@example.com")


@pytest.mark.slow
def test_25_megabyte_message(database_url: str, run_deliver: Any, run_admin: Any) -> None:
    if not database_url.startswith("sqlite"):
        assert run_admin("--database-url", database_url, "init").returncode == 0
    payload = bytes(range(256)) * (24 * 4096)  # 24 MiB
    encoded = base64.encodebytes(payload)
    raw = (
        b"From: big@example.com\nSubject: Disk image\nMessage-ID: <big-1@example.com>\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="B"\n\n--B\nContent-Type: text/plain\n\nSee attached.\n'
        b'--B\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename="disk.img"\n'
        b"Content-Transfer-Encoding: base64\n\n" + encoded + b"--B--\n"
    )
    assert len(raw) > 25 * 10**6
    result = deliver(run_deliver, database_url, raw)
    assert result.returncode == 0, result
    ticket = json.loads(run_admin("--database-url", database_url, "ticket", "show", "1", "--json").stdout)
    assert ticket["attachments"][0]["size"] == len(payload)
