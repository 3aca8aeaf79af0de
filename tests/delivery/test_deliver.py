"""The real `email2ticket-deliver` executable against real SQLite and PostgreSQL: each rule branch and
each exit code, as the MTA sees them (exit status, first stderr line, one JSON line on stdout)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from support.db import hold_lock
from support.desk import Desk
from support.mail import MAIL, mail


def delivered(result: Any, action: str, ticket: int | None) -> dict[str, Any]:
    assert result.returncode == 0, result
    outcome: dict[str, Any] = result.json
    assert (outcome["action"], outcome["ticket"], outcome["exit_code"]) == (action, ticket, 0), result
    return outcome


def test_new_ticket_then_requester_reply(desk: Desk) -> None:
    outcome = delivered(desk.deliver("new_ticket.eml"), "create", 1)
    assert all(re.match(r"^[a-z-]+: \S", reason) for reason in outcome["reasons"])
    delivered(desk.deliver("reply_outlook_requester.eml"), "update", 1)
    ticket = desk.ticket(1)
    assert ticket["subject"] == "Printer jam on the second floor"
    assert ticket["requester"] == "alice@example.com" and ticket["technician"] is None
    assert ticket["status"] == "open" and ticket["message_id"] == "<new-ticket-1@example.com>"
    assert ticket["description"].startswith("Hello,\n\nthe printer next to room 204 jams")
    [comment] = ticket["comments"]
    assert comment["author"] == "alice@example.com"
    assert comment["body"] == "It works again after the restart, thank you!\n\nAlice"
    assert comment["message_id"] == "<DB9PR01MB1234ABCD@DB9PR01MB1234.eurprd01.prod.outlook.com>"


def test_stranger_opens_new_ticket_unless_replies_unrestricted(desk: Desk) -> None:
    delivered(desk.deliver("new_ticket.eml"), "create", 1)
    outcome = delivered(desk.deliver("reply_gmail_stranger.eml"), "create", 2)
    assert any(r.startswith("replies-unrestricted: restrict_replies is on") for r in outcome["reasons"])
    assert desk.ticket(2)["requester"] == "mallory@elsewhere.example"
    desk.admin("settings", "set", "restrict_replies", "off")
    stranger_again = (MAIL / "reply_gmail_stranger.eml").read_bytes().replace(b"CAF=stranger-1", b"CAF=stranger-2")
    delivered(desk.deliver(stranger_again), "update", 1)
    assert desk.ticket(1)["comments"][0]["body"] == "I have the same problem on floor 3."


def test_technician_rights_follow_access_level(desk: Desk) -> None:
    desk.admin("settings", "set", "sender_verification", "off")  # the seed rules; see test_auth_delivery.py
    delivered(desk.deliver("new_ticket.eml"), "create", 1)
    desk.admin("user", "add", "bob@helpdesk.example", "--technician", "--name", "Bob")
    users = {u["email"]: u for u in desk.json("user", "list")}
    assert users["bob@helpdesk.example"] == {
        "email": "bob@helpdesk.example",
        "name": "Bob",
        "technician": True,
        "access": "limited",
        "disabled": False,
    }
    assert users["alice@example.com"]["technician"] is False  # created as a requester by her first mail
    delivered(desk.deliver("reply_technician.eml"), "create", 2)  # limited access: no rights
    desk.admin("user", "set", "bob@helpdesk.example", "--access", "normal")
    tech2 = (MAIL / "reply_technician.eml").read_bytes().replace(b"tech-reply-1", b"tech-reply-2")
    delivered(desk.deliver(tech2), "update", 1)
    assert desk.ticket(1)["comments"][0]["body"] == "I ordered a new fuser unit; it arrives on Monday.\n\nBob"
    desk.admin("user", "disable", "bob@helpdesk.example")
    tech3 = tech2.replace(b"tech-reply-2", b"tech-reply-3")
    delivered(desk.deliver(tech3), "create", 3)  # a departed technician keeps no rights


def test_assigned_technician_and_reopen(desk: Desk) -> None:
    desk.admin("settings", "set", "sender_verification", "off")  # the seed rules; see test_auth_delivery.py
    delivered(desk.deliver("new_ticket.eml"), "create", 1)
    desk.admin("user", "add", "bob@helpdesk.example", "--technician")
    desk.admin("ticket", "assign", "1", "bob@helpdesk.example")
    desk.admin("ticket", "close", "1")
    assert desk.ticket(1)["status"] == "closed"
    delivered(desk.deliver("reply_technician.eml"), "update", 1)  # assigned, even with limited access
    assert desk.ticket(1)["status"] == "open"
    desk.admin("ticket", "close", "1")
    desk.admin("settings", "set", "reopen_on_reply", "off")
    delivered(desk.deliver("reply_outlook_requester.eml"), "update", 1)
    assert desk.ticket(1)["status"] == "closed"


def test_duplicate_delivery_is_stored_once(desk: Desk) -> None:
    raw = (MAIL / "new_ticket.eml").read_bytes()
    delivered(desk.deliver(raw), "create", 1)
    redelivered = b"Received: from relay2.example.net by mx2.helpdesk.example; Thu, 26 Nov 2026 09:20:00\r\n" + raw
    outcome = delivered(desk.deliver(redelivered), "duplicate", 1)
    assert any(r.startswith("already-delivered: this message was already delivered") for r in outcome["reasons"])
    delivered(desk.deliver(raw), "duplicate", 1)
    assert len(desk.tickets()) == 1
    assert [m["action"] for m in desk.messages()] == ["create", "duplicate", "duplicate"]
    # Without a Message-ID the body digest and the headers relays leave alone are the key.
    no_id = re.sub(rb"Message-ID: [^\n]*\n", b"", raw).replace(b"jams on every", b"stalls on every")
    delivered(desk.deliver(no_id), "create", 2)
    delivered(desk.deliver(b"Received: from relay3.example.net; Thu, 26 Nov 2026 09:30:00\n" + no_id), "duplicate", 2)


def test_empty_bodied_alerts_without_message_id_are_not_duplicates(desk: Desk) -> None:
    def alert(host: str) -> bytes:
        return mail(f"DOWN: {host}", "", sender="nagios@monitor.example", message_id="", content_type=None)

    delivered(desk.deliver(alert("srv1")), "create", 1)
    delivered(desk.deliver(alert("srv2")), "create", 2)
    delivered(desk.deliver(alert("srv1")), "duplicate", 1)


def test_reused_message_id_with_other_body_is_delivered(desk: Desk) -> None:
    raw = (MAIL / "new_ticket.eml").read_bytes()
    delivered(desk.deliver(raw), "create", 1)
    outcome = delivered(desk.deliver(raw.replace(b"every second page", b"every page")), "create", 2)
    assert any(r.startswith("message-id-reused: another message with Message-ID") for r in outcome["reasons"])


def test_follow_up_without_prefix_keeps_whole_body(desk: Desk) -> None:
    delivered(desk.deliver("new_ticket.eml"), "create", 1)
    delivered(desk.deliver("followup_without_prefix.eml"), "update", 1)
    assert "-----Original Message-----" in desk.ticket(1)["comments"][0]["body"]


def test_attachments_and_html_only_body(desk: Desk) -> None:
    delivered(desk.deliver("with_attachments.eml"), "create", 1)
    ticket = desk.ticket(1)
    assert "Please see the attached invoice." in ticket["description"]
    by_name = {a["filename"]: a for a in ticket["attachments"]}
    assert set(by_name) == {"logo.png", "Rechnung März.pdf", "../../etc/passwd", "empty.bin"}
    assert by_name["empty.bin"]["size"] == 0
    assert by_name["Rechnung März.pdf"]["content_type"] == "application/pdf"
    assert by_name["Rechnung März.pdf"]["size"] == 30 + 1024
    assert re.fullmatch(r"[0-9a-f]{64}", by_name["logo.png"]["sha256"])


def test_no_sender_exits_65_and_envelope_fallback(desk: Desk) -> None:
    result = desk.deliver("no_from_header.eml")
    assert result.returncode == 65, result
    assert result.stderr_first_line.startswith("5.6.0 no sender")
    assert result.json["action"] == "reject" and [r.split(":")[0] for r in result.json["reasons"]] == ["has-sender"]
    assert desk.deliver("no_from_header.eml", "--sender", "").returncode == 65  # null sender
    assert desk.deliver("no_from_header.eml", "--sender", "MAILER-DAEMON").returncode == 65
    delivered(desk.deliver("no_from_header.eml", env={"SENDER": "Monitor@Example.com"}), "create", 1)
    assert desk.ticket(1)["requester"] == "monitor@example.com"
    rejected = desk.messages("reject")
    assert len(rejected) == 3 and rejected[0]["exit_code"] == 65  # the raw bytes are kept even so
    raw = desk.admin("messages", "show", str(rejected[0]["id"]), "--raw").stdout
    assert raw == (MAIL / "no_from_header.eml").read_bytes()


def test_unknown_sender_rejected_with_77(desk: Desk) -> None:
    desk.admin("settings", "set", "unknown_senders", "reject")
    result = desk.deliver("new_ticket.eml")
    assert result.returncode == 77, result
    assert result.stderr_first_line == "5.7.1 sender alice@example.com is not a help-desk user"
    assert desk.messages()[0]["action"] == "reject"
    desk.admin("user", "add", "alice@example.com")
    delivered(desk.deliver("new_ticket.eml"), "create", 1)


def test_dry_run_writes_nothing(desk: Desk) -> None:
    delivered(desk.deliver("new_ticket.eml", "--dry-run"), "create", None)
    assert desk.tickets() == [] and desk.messages() == []
    delivered(desk.deliver("new_ticket.eml"), "create", 1)
    delivered(desk.deliver("reply_outlook_requester.eml", "--dry-run"), "update", 1)
    assert desk.ticket(1)["comments"] == []


def test_explain_prints_the_same_record(desk: Desk) -> None:
    delivered(desk.deliver("new_ticket.eml"), "create", 1)
    raw = (MAIL / "reply_gmail_stranger.eml").read_bytes()
    dry = desk.deliver(raw, "--dry-run").json
    explained = desk.admin("explain", stdin=raw).stdout_text.splitlines()
    assert explained[-1] == "Decision: create new ticket"
    expected = [re.sub(r"^([a-z-]+): ", "", r) for r in dry["reasons"]]
    got = [re.sub(r"^[a-z-]+: (HIT|MISS) - ", "", line) for line in explained[:-1]]
    assert got == expected
    assert "replies-unrestricted: MISS - restrict_replies is on" in "\n".join(explained)


def test_quiet_on_success_without_json(desk: Desk) -> None:
    result = desk.pipe(stdin=(MAIL / "new_ticket.eml").read_bytes())
    assert (result.returncode, result.stdout) == (0, b""), result


def test_uninitialised_postgres_defers(postgres_url: str, run_deliver: Any, run_admin: Any) -> None:
    raw = (MAIL / "new_ticket.eml").read_bytes()
    result = run_deliver("--database-url", postgres_url, stdin=raw)
    assert result.returncode == 75, result
    assert result.stderr_first_line.startswith("4.3.5 ") and "email2ticket init" in result.stderr_first_line
    assert run_admin("--database-url", postgres_url, "init").returncode == 0
    assert run_deliver("--database-url", postgres_url, stdin=raw).returncode == 0


def test_schema_at_other_revision_defers(database_url: str, run_deliver: Any, run_admin: Any, tmp_path: Path) -> None:
    import sqlalchemy

    assert run_admin("--database-url", database_url, "init").returncode == 0
    engine = sqlalchemy.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    result = run_deliver("--database-url", database_url, stdin=(MAIL / "new_ticket.eml").read_bytes())
    assert result.returncode == 75, result
    assert "revision 9999" in result.stderr_first_line and "email2ticket init" in result.stderr_first_line


def test_database_down_defers(postgres_url: str, pg_admin: Any, run_deliver: Any, run_admin: Any) -> None:
    assert run_admin("--database-url", postgres_url, "init").returncode == 0
    pg_admin.stop()
    result = run_deliver("--database-url", postgres_url, "--json", stdin=(MAIL / "new_ticket.eml").read_bytes())
    assert result.returncode == 75, result
    assert result.stderr_first_line.startswith("4.3.0 database ")
    assert result.json == {"action": "defer", "ticket": None, "reasons": [result.json["reasons"][0]], "exit_code": 75}
    assert "Traceback" not in result.stderr_text


def test_unwritable_sqlite_defers(run_deliver: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the database directory should be")
    result = run_deliver(
        "--database-url", f"sqlite:///{blocker}/db.sqlite", stdin=(MAIL / "new_ticket.eml").read_bytes()
    )
    assert result.returncode == 75, result
    assert result.stderr_first_line.startswith("4.")


def test_locked_postgres_hits_lock_timeout(
    postgres_url: str, pg_admin: Any, run_deliver: Any, run_admin: Any, tmp_path: Path
) -> None:
    assert run_admin("--database-url", postgres_url, "init").returncode == 0
    config = tmp_path / "fast.toml"
    config.write_text("delivery_timeout = 2\n")
    with hold_lock(postgres_url):
        result = run_deliver(
            "--config", str(config), "--database-url", postgres_url, stdin=(MAIL / "new_ticket.eml").read_bytes()
        )
    assert result.returncode == 75, result
    assert "lock timeout" in result.stderr_first_line or "timeout" in result.stderr_first_line


def test_locked_sqlite_waits_then_defers(sqlite_url: str, run_deliver: Any, tmp_path: Path) -> None:
    raw = (MAIL / "new_ticket.eml").read_bytes()
    assert run_deliver("--database-url", sqlite_url, stdin=raw).returncode == 0  # creates the schema
    config = tmp_path / "fast.toml"
    config.write_text("delivery_timeout = 2\n")
    second = raw.replace(b"new-ticket-1@", b"new-ticket-2@")
    with hold_lock(sqlite_url):
        result = run_deliver("--config", str(config), "--database-url", sqlite_url, stdin=second)
    assert result.returncode == 75, result
    assert "locked" in result.stderr_first_line or "delivery_timeout" in result.stderr_first_line


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("database_url = [", "not valid TOML"),
        ("databse_url = 'sqlite:///x.db'\n", "unknown setting databse_url"),
        ("max_message_bytes = -1\n", "max_message_bytes must be a positive integer"),
    ],
)
def test_bad_configuration_defers(run_deliver: Any, tmp_path: Path, content: str, expected: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(content)
    result = run_deliver("--config", str(config), stdin=(MAIL / "new_ticket.eml").read_bytes())
    assert result.returncode == 75, result
    assert result.stderr_first_line.startswith("4.3.5 configuration file") and expected in result.stderr_first_line


def test_missing_configuration_file_defers(run_deliver: Any, tmp_path: Path) -> None:
    result = run_deliver(stdin=b"x", env={"EMAIL2TICKET_CONFIG": str(tmp_path / "absent.toml")})
    assert result.returncode == 75 and "cannot read configuration file" in result.stderr_first_line, result


def test_malformed_command_line_defers_not_2(run_deliver: Any) -> None:
    result = run_deliver("--sender", stdin=(MAIL / "new_ticket.eml").read_bytes())
    assert result.returncode == 75, result
    assert result.stderr_first_line.startswith("4.3.5 malformed command line")
    assert run_deliver("--no-such-option", stdin=b"x").returncode == 75


def test_empty_and_oversized_input_exit_65(run_deliver: Any, sqlite_url: str, tmp_path: Path) -> None:
    empty = run_deliver("--database-url", sqlite_url, stdin=b"")
    assert empty.returncode == 65 and empty.stderr_first_line == "5.6.0 no message on standard input", empty
    config = tmp_path / "small.toml"
    config.write_text("max_message_bytes = 100\n")
    big = run_deliver(
        "--config", str(config), "--database-url", sqlite_url, stdin=(MAIL / "new_ticket.eml").read_bytes()
    )
    assert big.returncode == 65 and big.stderr_first_line.startswith("5.3.4 message larger than max_message_bytes")


def test_embedded_default_database_just_works(run_deliver: Any, run_admin: Any, child_home: Path) -> None:
    env = {"XDG_DATA_HOME": str(child_home / "data")}
    result = run_deliver("--json", stdin=(MAIL / "new_ticket.eml").read_bytes(), env=env)
    assert result.returncode == 0 and result.json["ticket"] == 1, result
    assert (child_home / "data" / "email2ticket" / "email2ticket.db").exists()
    listing = run_admin("tickets", "list", "--json", env=env)
    assert json.loads(listing.stdout)[0]["subject"] == "Printer jam on the second floor"


def test_environment_database_url_and_log_file(run_deliver: Any, sqlite_url: str, tmp_path: Path) -> None:
    log = tmp_path / "deliver.log"
    config = tmp_path / "config.toml"
    config.write_text(f'[logging]\ntarget = "file"\nfile = "{log}"\n')
    env = {"EMAIL2TICKET_DATABASE_URL": sqlite_url}
    raw = (MAIL / "new_ticket.eml").read_bytes()
    result = run_deliver("--config", str(config), "--queue-id", "4F2A1C0123", stdin=raw, env=env)
    assert result.returncode == 0, result
    line = log.read_text()
    assert "queue_id=4F2A1C0123 message_id=<new-ticket-1@example.com> action=create ticket=1 exit=0" in line


def test_log_line_escapes_what_the_sender_and_the_mta_chose(run_deliver: Any, sqlite_url: str, tmp_path: Path) -> None:
    """A Message-ID is the sender's text and a queue id the MTA's: neither may add fields (a space) or lines,
    or reorder what a terminal shows (a bidi override): such values are written quoted, with escapes."""
    log = tmp_path / "deliver.log"
    config = tmp_path / "config.toml"
    config.write_text(f'[logging]\ntarget = "file"\nfile = "{log}"\n')
    raw = mail("Printer jam", "It broke.\n", message_id="unused@x").replace(
        b"Message-ID: <unused@x>", "Message-ID: <evil\u202efdp.exe@x>".encode()
    )
    assert "\u202e".encode() in raw
    forged_queue_id = "Q1 action=ignore\x85"
    args = ("--config", str(config), "--database-url", sqlite_url, "--queue-id", forged_queue_id)
    result = run_deliver(*args, stdin=raw)
    assert result.returncode == 0, result
    [line] = log.read_text().splitlines()
    assert "\u202e" not in line and "\x85" not in line
    assert "queue_id='Q1 action=ignore\\x85' message_id='<evil\\u202efdp.exe@x>' action=create ticket=1 exit=0" in line


def test_delivery_timeout_rolls_back_and_defers(
    sqlite_url: str, run_deliver: Any, run_admin: Any, tmp_path: Path
) -> None:
    config = tmp_path / "budget.toml"
    config.write_text("delivery_timeout = 0.02\n")  # less than importing the database layer takes
    raw = (MAIL / "new_ticket.eml").read_bytes()
    result = run_deliver("--config", str(config), "--database-url", sqlite_url, "--json", stdin=raw)
    assert result.returncode == 75, result
    assert result.stderr_first_line.startswith("4.3.0 delivery took longer than delivery_timeout (0.02 s)")
    assert result.json["action"] == "defer"
    assert json.loads(run_admin("--database-url", sqlite_url, "tickets", "list", "--json").stdout) == []


def test_every_reason_names_a_documented_rule(desk: Desk) -> None:
    from email2ticket.rules.chain import RULES

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    documented = {rule.name for rule in RULES}
    delivered(desk.deliver("new_ticket.eml"), "create", 1)
    seen = set()
    for name in ("reply_outlook_requester.eml", "reply_gmail_stranger.eml", "reply_technician.eml"):
        seen |= {reason.split(":", 1)[0] for reason in desk.deliver(name).json["reasons"]}
    assert seen <= documented
    assert all(f"`{name}`" in readme for name in documented)
