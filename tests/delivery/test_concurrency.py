"""Concurrent deliveries: every message lands exactly once, on SQLite and on PostgreSQL.

Each delivery is its own process, as under an MTA with several pipe processes running at once.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from support.desk import Desk, MakeDesk
from support.executables import start_deliver
from support.mail import mail
from support.servers.smtpsink import SmtpSink


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
def test_twenty_reply_alls_from_twenty_participants_land_once_each(
    database_url: str, run_admin: Any, run_deliver: Any, tmp_path: Path
) -> None:
    """Everyone copied on the first mail answers it with Reply-All at the same moment, the subject without a
    ticket number: each reply finds the ticket by its In-Reply-To and lands once as a comment, and the new
    addresses each copies in become participants once (concurrent inserts of the same row do not fail)."""
    admin = partial(run_admin, "--database-url", database_url)
    assert admin("init").returncode == 0
    assert admin("settings", "set", "own_addresses", "helpdesk@helpdesk.example").returncode == 0
    copied = [f"p{i}@example.com" for i in range(20)]
    opening = mail(
        "Office move", "hi\n", sender="alice@example.com", message_id="move@x", headers={"Cc": ", ".join(copied)}
    )
    first = run_deliver("--database-url", database_url, stdin=opening)
    assert first.returncode == 0, first
    replies = [
        mail(
            "RE: Office move",
            f"reply {i}\n\n-----Original Message-----\nFrom: Alice\nhi\n",
            sender=address,
            to="alice@example.com",
            message_id=f"reply-all-{i}@x",
            in_reply_to="<move@x>",
            headers={"Cc": ", ".join(["helpdesk@helpdesk.example", *copied, f"newcomer{i % 3}@example.com"])},
        )
        for i, address in enumerate(copied)
    ]
    results = deliver_all(database_url, replies, tmp_path)
    assert [code for code, _, _ in results] == [0] * 20, results
    assert {(outcome["action"], outcome["ticket"]) for _, outcome, _ in results} == {("update", 1)}
    ticket = json.loads(admin("ticket", "show", "1", "--json").stdout)
    assert sorted(c["body"] for c in ticket["comments"]) == sorted(f"reply {i}" for i in range(20))
    assert ticket["participants"] == sorted(
        [*copied, "newcomer0@example.com", "newcomer1@example.com", "newcomer2@example.com"]
    )
    assert len(json.loads(admin("tickets", "list", "--json").stdout)) == 1


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


# --- the limits hold under concurrency ---------------------------------------------------------------
# Twenty deliveries at once against a limit of five: on PostgreSQL each delivery counts under a transaction-scoped
# advisory lock (store/facts.py PREAMBLE_LOCKED), on SQLite under the write lock; without them all twenty could
# count the same four and go on. PostgreSQL only: SQLite's serialised deliveries cannot overshoot.

postgresql_only = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)

HELPDESK = "helpdesk@example.org"
BURST, LIMIT = 20, 5


def requests(senders: list[str]) -> list[bytes]:
    """One new request from each of `senders` (subjects without a number, which could name a ticket)."""
    return [mail(f"Request {chr(ord('a') + i)}", "x\n", sender=sender) for i, sender in enumerate(senders)]


def notifying_desk(make_desk: MakeDesk, sink: SmtpSink, child_home: Path, **settings: str) -> Desk:
    """A desk that acknowledges new tickets to the sink, with the rule `settings` set (exit 0 asserted)."""
    notifications = {
        "from_address": f"Help Desk <{HELPDESK}>",
        "method": "smtp",
        "smtp_host": sink.host,
        "smtp_port": sink.port,
        "timeout": 5,
        "key_file": str(child_home / "keys" / "notification-keys"),
    }
    # Twenty processes at once on a machine of two cores, the deliveries of one sender in a queue: time enough.
    configuration = {"delivery_timeout": 600, "logging": {"target": "none"}, "notifications": notifications}
    desk = make_desk(configuration, init=True, recipient=HELPDESK)
    for name, value in settings.items():
        desk.set(name, value)
    return desk


def burst(desk: Desk, messages: list[bytes], home: Path, gate: str) -> list[dict[str, Any]]:
    """Every message through its own bin/email2ticket-deliver at once; each must exit 0: their outcomes.

    The deliveries are made to overlap whatever this machine's speed: this session holds `gate` (the table the
    limited rows go to) in SHARE mode until every delivery waits for a lock, there or on the limits' lock. Without
    the limits' lock all of them would have counted by then, each seeing none of the others' rows."""
    import psycopg

    url = desk.url.replace("+psycopg", "")
    with psycopg.connect(url) as gatekeeper, psycopg.connect(url, autocommit=True) as watcher:
        gatekeeper.execute(f"LOCK TABLE {gate} IN SHARE MODE")  # INSERT waits for it; reads do not
        procs = [start_deliver(home, *desk.options(), "--json", "--recipient", HELPDESK, stdin=raw) for raw in messages]
        # Its own transaction each time (autocommit): pg_stat_activity is a snapshot per transaction.
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        deadline = time.monotonic() + 300
        while watcher.execute(waiting).fetchone() != (len(messages),):
            assert time.monotonic() < deadline, "the deliveries never all waited at the gate"
            assert all(proc.poll() is None for proc in procs), "a delivery ended before the gate opened"
            time.sleep(0.1)
    outcomes = []
    for proc in procs:
        proc.stdin = None  # start_deliver wrote and closed it: communicate() must not flush it
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, (proc.returncode, out, err)
        outcomes.append(json.loads(out))
    return outcomes


@pytest.mark.slow
@postgresql_only
def test_new_tickets_per_sender_per_hour_hold_under_concurrency(
    make_desk: MakeDesk, smtp_sink: SmtpSink, child_home: Path, tmp_path: Path
) -> None:
    desk = notifying_desk(
        make_desk, smtp_sink, child_home, max_new_tickets_per_sender_per_hour=str(LIMIT), acknowledge_new_tickets="off"
    )
    outcomes = burst(desk, requests(["robot@example.net"] * BURST), tmp_path, gate="tickets")
    assert sorted(o["action"] for o in outcomes) == ["create"] * LIMIT + ["hold"] * (BURST - LIMIT)
    assert len(desk.tickets()) == LIMIT
    assert len(desk.messages("hold")) == BURST - LIMIT


@pytest.mark.slow
@postgresql_only
def test_acknowledgements_per_address_per_day_hold_under_concurrency(
    make_desk: MakeDesk, smtp_sink: SmtpSink, child_home: Path, tmp_path: Path
) -> None:
    desk = notifying_desk(
        make_desk, smtp_sink, child_home, max_autoreplies_per_day=str(LIMIT), max_new_tickets_per_sender_per_hour="0"
    )
    outcomes = burst(desk, requests(["alice@example.com"] * BURST), tmp_path, gate="notifications")
    assert [o["action"] for o in outcomes] == ["create"] * BURST
    assert sum(len(o["notify"]) for o in outcomes) == LIMIT
    acknowledgements = [n for n in desk.notifications() if n["kind"] == "acknowledgement"]
    assert len(acknowledgements) == LIMIT
    assert len(smtp_sink.messages) == LIMIT


@pytest.mark.slow
@postgresql_only
def test_acknowledgements_per_hour_hold_under_concurrency(
    make_desk: MakeDesk, smtp_sink: SmtpSink, child_home: Path, tmp_path: Path
) -> None:
    desk = notifying_desk(make_desk, smtp_sink, child_home, max_autoreplies_per_hour=str(LIMIT))
    outcomes = burst(desk, requests([f"user{i}@example.com" for i in range(BURST)]), tmp_path, gate="notifications")
    assert [o["action"] for o in outcomes] == ["create"] * BURST
    assert sum(len(o["notify"]) for o in outcomes) == LIMIT
    assert len([n for n in desk.notifications() if n["kind"] == "acknowledgement"]) == LIMIT
    assert len(smtp_sink.messages) == LIMIT
