"""Poison messages: an unexpected error is counted per message, the max_attempts-th quarantines it (exit 0),
and `email2ticket quarantine list|show|replay|delete` deals with it. Infrastructure failures never count.

The poison is a database trigger that refuses one subject with a data error, the way a value the
database cannot store would: a real error on the real path, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

POISON = "POISON pill"


def mail(sender: str, subject: str, message_id: str) -> bytes:
    headers = f"From: {sender}\nTo: helpdesk@x.example\nSubject: {subject}\nMessage-ID: <{message_id}>\n"
    return f"{headers}\nIt broke.\n".encode()


def add_poison_trigger(url: str, pg: Any) -> None:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.execute(
                "CREATE TRIGGER poison BEFORE INSERT ON tickets WHEN NEW.subject LIKE 'POISON%' "
                "BEGIN SELECT RAISE(ABORT, 'value refused for this subject'); END"
            )
        return
    pg.execute(
        """CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN IF NEW.subject LIKE 'POISON%' THEN
             RAISE EXCEPTION 'value refused for this subject' USING ERRCODE = '22000'; END IF;
           RETURN NEW; END $$;
           CREATE TRIGGER poison BEFORE INSERT ON tickets FOR EACH ROW EXECUTE FUNCTION poison();""",
        database=url,
    )


def drop_poison_trigger(url: str, pg: Any) -> None:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.execute("DROP TRIGGER poison")
        return
    pg.execute("DROP TRIGGER poison ON tickets", database=url)


@pytest.fixture
def desk(database_url: str, run_admin: Any, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    assert run_admin("--database-url", database_url, "init").returncode == 0
    pg = request.getfixturevalue("pg_admin") if not database_url.startswith("sqlite") else None
    add_poison_trigger(database_url, pg)
    log = tmp_path / "deliver.log"
    config = tmp_path / "config.toml"
    config.write_text(
        f'database_url = "{database_url}"\nmax_attempts = 3\n[logging]\ntarget = "file"\nfile = "{log}"\n'
    )
    return {"url": database_url, "pg": pg, "config": str(config), "log": log}


def test_poison_message_is_quarantined_after_max_attempts_then_replayed(
    desk: dict[str, Any], run_deliver: Any, run_admin: Any
) -> None:
    raw = mail("ann@example.com", POISON, "poison@x")
    admin = ("--config", desk["config"])
    for attempt in (1, 2):
        result = run_deliver("--config", desk["config"], "--json", stdin=raw)
        assert result.returncode == 75, result
        assert result.stderr_first_line.startswith(
            f"4.3.0 internal error, attempt {attempt} of 3 before quarantine: "
        ), result.stderr_first_line
        assert "value refused for this subject" in result.stderr_first_line
        assert "Traceback" in result.stderr_text  # the bug's traceback follows for the admin
        assert result.json["action"] == "defer"
    result = run_deliver("--config", desk["config"], "--json", stdin=raw)
    assert result.returncode == 0, result  # the MTA stops retrying
    assert result.json["action"] == "quarantine"
    assert "error: quarantine " in desk["log"].read_text()  # logged at error level

    actions = [m["action"] for m in json.loads(run_admin(*admin, "messages", "list", "--json").stdout)]
    assert actions == ["defer", "defer", "quarantine"]
    (item,) = json.loads(run_admin(*admin, "quarantine", "list", "--json").stdout)
    assert (item["attempts"], item["subject"], item["sender"]) == (3, POISON, "ann@example.com")
    assert "value refused for this subject" in item["error"]
    assert run_admin(*admin, "quarantine", "show", str(item["id"]), "--raw").stdout == raw
    doctor = run_admin(*admin, "doctor")
    assert doctor.returncode == 1
    assert "FAIL  quarantine: 1 message(s) failed repeatedly" in doctor.stdout_text

    still = run_admin(*admin, "quarantine", "replay", str(item["id"]))
    assert still.returncode == 1
    assert "still failing, left in the quarantine" in still.stdout_text

    drop_poison_trigger(desk["url"], desk["pg"])  # "the bug is fixed"
    replay = run_admin(*admin, "quarantine", "replay", str(item["id"]))
    assert replay.returncode == 0, replay
    # (PostgreSQL's sequences do not roll back: the failed attempts used up ticket numbers.)
    assert re.match(rf"message {item['id']}: replayed as message \d+ \(create, ticket #\d+\)$", replay.stdout_text)
    assert json.loads(run_admin(*admin, "quarantine", "list", "--json").stdout) == []
    assert "OK    quarantine: empty" in run_admin(*admin, "doctor").stdout_text
    # The MTA delivering another copy later finds it delivered.
    again = run_deliver("--config", desk["config"], "--json", stdin=raw)
    assert (again.returncode, again.json["action"]) == (0, "duplicate")
    tickets = json.loads(run_admin(*admin, "tickets", "list", "--json").stdout)
    assert [t["subject"] for t in tickets] == [POISON]


def test_quarantine_replay_all_and_delete(desk: dict[str, Any], run_deliver: Any, run_admin: Any) -> None:
    admin = ("--config", desk["config"])
    for n in range(3):
        raw = mail(f"u{n}@example.com", f"{POISON} {n} here", f"p{n}@x")
        codes = [run_deliver("--config", desk["config"], stdin=raw).returncode for _ in range(3)]
        assert codes == [75, 75, 0]
    items = json.loads(run_admin(*admin, "quarantine", "list", "--json").stdout)
    assert len(items) == 3
    deleted = run_admin(*admin, "quarantine", "delete", str(items[0]["id"]))
    assert deleted.returncode == 0 and "3 record(s)" in deleted.stdout_text
    assert run_admin(*admin, "quarantine", "show", str(items[0]["id"])).returncode == 1

    drop_poison_trigger(desk["url"], desk["pg"])
    replay = run_admin(*admin, "quarantine", "replay", "--all")
    assert replay.returncode == 0, replay
    assert replay.stdout_text.count("replayed as message") == 2
    assert json.loads(run_admin(*admin, "quarantine", "list", "--json").stdout) == []
    subjects = sorted(t["subject"] for t in json.loads(run_admin(*admin, "tickets", "list", "--json").stdout))
    assert subjects == [f"{POISON} 1 here", f"{POISON} 2 here"]


def test_infrastructure_failures_are_never_counted(
    postgres_url: str, pg_admin: Any, run_admin: Any, run_deliver: Any, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'database_url = "{postgres_url}"\nmax_attempts = 1\n')
    raw = mail("bo@example.com", "Database trouble", "infra@x")
    # No schema yet: 75 naming the fix, however often.
    for _ in range(2):
        result = run_deliver("--config", str(config), stdin=raw)
        assert (result.returncode, result.stderr_first_line[:6]) == (75, "4.3.5 ")
    assert run_admin("--config", str(config), "init").returncode == 0
    pg_admin.stop()
    for _ in range(2):
        result = run_deliver("--config", str(config), stdin=raw)
        assert result.returncode == 75 and "unavailable" in result.stderr_first_line, result
    pg_admin.start()
    assert json.loads(run_admin("--config", str(config), "messages", "list", "--json").stdout) == []
    assert run_deliver("--config", str(config), stdin=raw).returncode == 0


def test_max_attempts_is_validated(run_deliver: Any, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("max_attempts = 0\n")
    result = run_deliver("--config", str(config), stdin=mail("a@example.com", "x", "v@x"))
    assert result.returncode == 75
    assert "max_attempts must be a positive integer" in result.stderr_first_line
