"""`email2ticket metrics --textfile PATH`: the audit trail, the quarantine and the notification queue as a
node-exporter textfile, read back with prometheus_client's own parser."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from support.desk import Desk
from support.mail import mail


def _samples(path: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_the_textfile_counts_the_audit_trail(
    sqlite_url: str, run_admin: Any, run_deliver: Any, child_home: Path, tmp_path: Path
) -> None:
    desk = Desk(sqlite_url, run_admin, run_deliver, config=child_home / "e2t.toml", settings={}, init=True)
    first = mail("Printer", message_id="<t1@example.com>")
    desk.deliver_ok(first)
    desk.deliver_ok(first)  # a duplicate
    desk.deliver_ok(mail("Scanner", sender="bob@example.com"))
    desk.sql("UPDATE messages SET action = 'quarantine' WHERE subject = 'Scanner'")  # as repeated crashes leave it
    path = tmp_path / "email2ticket.prom"

    result = desk.admin("metrics", "--textfile", str(path))
    assert result.returncode == 0, result
    samples = _samples(path)
    audit = {dict(labels)["action"] + "/" + dict(labels)["exit_code"]: value for labels, value in
             samples["email2ticket_audit_messages_total"].items()}  # fmt: skip
    assert audit == {"create/0": 1, "duplicate/0": 1, "quarantine/0": 1}, audit
    assert samples["email2ticket_database_up"][()] == 1
    assert samples["email2ticket_quarantine_messages"][()] == 1
    assert abs(samples["email2ticket_audit_last_received_timestamp_seconds"][()] - time.time()) < 600
    assert set(samples["email2ticket_notifications"].values()) == {0}
    assert not list(tmp_path.glob("email2ticket.prom.*"))  # written to a temporary file, then renamed


def test_an_unreadable_database_is_written_down_and_exits_1(run_admin: Any, tmp_path: Path) -> None:
    path = tmp_path / "email2ticket.prom"
    result = run_admin("--database-url", f"sqlite:///{tmp_path}/missing/dir/e2t.db", "metrics", "--textfile", str(path))
    assert result.returncode == 1, result
    assert "cannot read the database" in result.stderr_text
    assert _samples(path)["email2ticket_database_up"][()] == 0
