"""Poison messages: an unexpected error is counted per message, the max_attempts-th quarantines it (exit 0),
and `email2ticket quarantine list|show|replay|delete` deals with it. Infrastructure failures never count.

The poison is a database trigger that refuses one subject with a data error, the way a value the
database cannot store would: a real error on the real path, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import re
import sqlite3
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import support.mail
from support.desk import Desk, MakeDesk
from support.servers.pgserver import PgServer

POISON = "POISON pill"


# A bare message: no Content-Type, to another help-desk address.
mail = partial(support.mail.mail, to="helpdesk@x.example", content_type=None)


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
def pg(database_url: str, request: pytest.FixtureRequest) -> PgServer | None:
    """The server for the triggers on PostgreSQL; None on SQLite."""
    return None if database_url.startswith("sqlite") else request.getfixturevalue("pg_admin")  # type: ignore[no-any-return]


@pytest.fixture
def desk(make_desk: MakeDesk, pg: PgServer | None, tmp_path: Path) -> Desk:
    """A desk whose configuration file names its database, max_attempts = 3, a poison trigger in the database."""
    desk = make_desk({"max_attempts": 3}, url_in_config=True, log_file=tmp_path / "deliver.log", init=True)
    add_poison_trigger(desk.url, pg)
    return desk


def test_poison_message_is_quarantined_after_max_attempts_then_replayed(
    desk: Desk, pg: PgServer | None, tmp_path: Path
) -> None:
    raw = mail(POISON, sender="ann@example.com", message_id="poison@x")
    for attempt in (1, 2):
        result = desk.deliver(raw)
        assert result.returncode == 75, result
        assert result.stderr_first_line.startswith(
            f"4.3.0 internal error, attempt {attempt} of 3 before quarantine: "
        ), result.stderr_first_line
        assert "value refused for this subject" in result.stderr_first_line
        assert "Traceback" in result.stderr_text  # the bug's traceback follows for the admin
        assert result.json["action"] == "defer"
    result = desk.deliver(raw)
    assert result.returncode == 0, result  # the MTA stops retrying
    assert result.json["action"] == "quarantine"
    assert "error: quarantine " in (tmp_path / "deliver.log").read_text()  # logged at error level

    actions = [m["action"] for m in desk.messages()]
    assert actions == ["defer", "defer", "quarantine"]
    (item,) = desk.json("quarantine", "list")
    assert (item["attempts"], item["subject"], item["sender"]) == (3, POISON, "ann@example.com")
    assert "value refused for this subject" in item["error"]
    assert desk.admin("quarantine", "show", str(item["id"]), "--raw").stdout == raw
    doctor = desk.admin("doctor", check=False)
    assert doctor.returncode == 1
    assert "FAIL  quarantine: 1 message(s) failed repeatedly" in doctor.stdout_text

    still = desk.admin("quarantine", "replay", str(item["id"]), check=False)
    assert still.returncode == 1
    assert "still failing, left in the quarantine" in still.stdout_text

    drop_poison_trigger(desk.url, pg)  # "the bug is fixed"
    replay = desk.admin("quarantine", "replay", str(item["id"]), check=False)
    assert replay.returncode == 0, replay
    # (PostgreSQL's sequences do not roll back: the failed attempts used up ticket numbers.)
    assert re.match(rf"message {item['id']}: replayed as message \d+ \(create, ticket #\d+\)$", replay.stdout_text)
    assert desk.json("quarantine", "list") == []
    assert "OK    quarantine: empty" in desk.admin("doctor", check=False).stdout_text
    # The MTA delivering another copy later finds it delivered.
    again = desk.deliver(raw)
    assert (again.returncode, again.json["action"]) == (0, "duplicate")
    tickets = desk.tickets()
    assert [t["subject"] for t in tickets] == [POISON]


def test_quarantine_replay_all_and_delete(desk: Desk, pg: PgServer | None) -> None:
    for n in range(3):
        raw = mail(f"{POISON} {n} here", sender=f"u{n}@example.com", message_id=f"p{n}@x")
        codes = [desk.pipe(stdin=raw).returncode for _ in range(3)]
        assert codes == [75, 75, 0]
    items = desk.json("quarantine", "list")
    assert len(items) == 3
    deleted = desk.admin("quarantine", "delete", str(items[0]["id"]), check=False)
    assert deleted.returncode == 0 and "3 record(s)" in deleted.stdout_text
    assert desk.admin("quarantine", "show", str(items[0]["id"]), check=False).returncode == 1

    drop_poison_trigger(desk.url, pg)
    replay = desk.admin("quarantine", "replay", "--all", check=False)
    assert replay.returncode == 0, replay
    assert replay.stdout_text.count("replayed as message") == 2
    assert desk.json("quarantine", "list") == []
    subjects = sorted(t["subject"] for t in desk.tickets())
    assert subjects == [f"{POISON} 1 here", f"{POISON} 2 here"]


def test_infrastructure_failures_are_never_counted(
    postgres_url: str, pg_admin: Any, run_admin: Any, run_deliver: Any, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'database_url = "{postgres_url}"\nmax_attempts = 1\n')
    raw = mail("Database trouble", sender="bo@example.com", message_id="infra@x")
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
    result = run_deliver("--config", str(config), stdin=mail("x", sender="a@example.com", message_id="v@x"))
    assert result.returncode == 75
    assert "max_attempts must be a positive integer" in result.stderr_first_line
