"""Concurrent deliveries: every message lands exactly once, on SQLite and on PostgreSQL.

Each delivery is its own process, as under an MTA with several pipe processes running at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support.executables import start_deliver
from support.mail import mail


def deliver_all(url: str, messages: list[bytes], home: Path) -> list[tuple[int, dict[str, Any], str]]:
    """Start one delivery process per message at once, then collect them all."""
    procs = [(start_deliver(home, "--database-url", url, "--json"), raw) for raw in messages]
    results = []
    for proc, raw in procs:
        out, err = proc.communicate(raw, timeout=180)
        results.append((proc.returncode, json.loads(out) if out.strip() else {}, err.decode()))
    return results


@pytest.mark.slow
def test_twenty_new_tickets_and_twenty_replies_at_once(
    database_url: str, run_admin: Any, run_deliver: Any, tmp_path: Path
) -> None:
    assert run_admin("--database-url", database_url, "init").returncode == 0
    opening = mail("Shared printer", "hi\n", sender="alice@example.com", message_id="t1@x")
    first = run_deliver("--database-url", database_url, stdin=opening)
    assert first.returncode == 0, first

    news = [
        mail(f"Problem {i}", f"body {i}\n", sender=f"user{i}@example.com", message_id=f"new{i}@x") for i in range(20)
    ]
    replies = [
        mail(
            "Re: Shared printer [Ticket #1]",
            f"reply {i}\n\nOn Thu, 26 Nov 2026 at 10:00, Help Desk wrote:\n> quoted\n",
            sender="alice@example.com",
            message_id=f"reply{i}@x",
        )
        for i in range(20)
    ]
    results = deliver_all(database_url, news + replies, tmp_path)
    failures = [r for r in results if r[0] != 0]
    assert not failures, failures
    assert sorted(r[1]["action"] for r in results) == ["create"] * 20 + ["update"] * 20

    tickets = json.loads(run_admin("--database-url", database_url, "tickets", "list", "--json").stdout)
    assert len(tickets) == 21
    assert len({t["requester"] for t in tickets}) == 21
    comments = json.loads(run_admin("--database-url", database_url, "ticket", "show", "1", "--json").stdout)["comments"]
    assert sorted(c["body"] for c in comments) == sorted(f"reply {i}" for i in range(20))


@pytest.mark.slow
def test_same_message_delivered_concurrently_lands_once(database_url: str, run_admin: Any, tmp_path: Path) -> None:
    assert run_admin("--database-url", database_url, "init").returncode == 0
    raw = mail("VPN drops every hour", "It drops.\n", sender="carol@example.com", message_id="same@x")
    results = deliver_all(database_url, [raw] * 8, tmp_path)
    assert all(code == 0 for code, _, _ in results), results
    actions = sorted(outcome["action"] for _, outcome, _ in results)
    assert actions == ["create"] + ["duplicate"] * 7
    tickets = json.loads(run_admin("--database-url", database_url, "tickets", "list", "--json").stdout)
    assert len(tickets) == 1
