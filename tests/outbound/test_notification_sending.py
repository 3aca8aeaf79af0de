"""Sending notifications under pressure, through the real executables: many processes retrying the same queue,
and relays that are slow. Each notification reaches the relay once, and a slow relay costs a delivery at most
`notifications.timeout`, however many commands it answers late.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from support.desk import Desk
from support.executables import ADMIN, child_env, start_deliver
from support.servers.relay import StallingRelay, wait_for
from support.servers.smtpsink import SmtpSink

HELPDESK = "helpdesk@example.org"


def mail(sender: str, subject: str) -> bytes:
    return (
        f"From: {sender}\nTo: {HELPDESK}\nSubject: {subject}\nMessage-ID: <{subject.replace(' ', '-')}@example.com>\n"
        f"Date: Thu, 26 Nov 2026 10:00:00 +0000\n\nPlease help.\n"
    ).encode()


def notifying_desk(
    url: str, run_admin: Any, run_deliver: Any, home: Path, host: str, port: int, timeout: float
) -> Desk:
    settings = {
        "logging": {"target": "none"},
        "notifications": {
            "from_address": f"Help Desk <{HELPDESK}>",
            "method": "smtp",
            "smtp_host": host,
            "smtp_port": port,
            "timeout": timeout,
            "key_file": str(home / "keys" / "notification-keys"),
        },
    }
    return Desk(url, run_admin, run_deliver, config=home / "email2ticket.toml", settings=settings, init=True)


def blocking_every_transaction(url: str) -> Any:
    """PostgreSQL: a session whose exclusive lock on `settings` stops every transaction at its first statement."""
    import psycopg

    holder = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    holder.execute("LOCK TABLE settings IN ACCESS EXCLUSIVE MODE")
    return holder


def waiting_for_locks(desk: Desk) -> int:
    return int(desk.sql("SELECT count(*) FROM pg_locks WHERE NOT granted")[0][0])


def test_each_notification_reaches_the_relay_once_however_many_retry_it(
    database_url: str, run_admin: Any, run_deliver: Any, child_home: Path, smtp_sink: SmtpSink
) -> None:
    """10 acknowledgements wait for a retry; 2 `notifications retry` commands and 20 deliveries (each of which takes
    on up to 3 due retries) start at the same moment. Every acknowledgement reaches the relay exactly once.

    On PostgreSQL all 22 processes are held at their first statement by a lock and let go together, so their
    claims really race (before the fix: each of the 10 reached the relay 2 to 4 times). SQLite's BEGIN IMMEDIATE
    makes the claims take turns by itself."""
    desk = notifying_desk(database_url, run_admin, run_deliver, child_home, smtp_sink.host, smtp_sink.port, 10)
    smtp_sink.data_reply = "451 4.3.0 try again later"
    for n in range(10):
        desk.deliver_ok(mail(f"waiting{n}@example.com", f"Waiting {n}"))
    assert [row["status"] for row in desk.notifications()] == ["failed"] * 10
    smtp_sink.data_reply = None
    desk.sql("UPDATE notifications SET next_attempt_at = :past", past="2026-01-01 00:00:00")

    postgres = not database_url.startswith("sqlite")
    holder = blocking_every_transaction(database_url) if postgres else None
    try:
        retry = [ADMIN, *desk.options(), "notifications", "retry"]
        admins = [
            subprocess.Popen([sys.executable, *map(str, retry)], env=child_env(child_home), stdout=subprocess.PIPE)
            for _ in range(2)
        ]
        deliveries = [
            start_deliver(child_home, *desk.options(), stdin=mail(f"new{n}@example.com", f"New {n}")) for n in range(20)
        ]
        if holder is not None:
            assert wait_for(lambda: waiting_for_locks(desk) >= 22, 120), "the 22 processes never reached the lock"
    finally:
        if holder is not None:
            holder.rollback()
            holder.close()
    for process in [*admins, *deliveries]:
        assert process.wait(120) == 0, (process.args, process.stderr.read() if process.stderr else b"")
    assert wait_for(lambda: len(smtp_sink.messages) >= 30, 30)
    time.sleep(0.5)  # anything sent twice would arrive now
    received = Counter(message.rcpt_tos[0] for message in smtp_sink.messages)
    expected = {f"waiting{n}@example.com": 1 for n in range(10)} | {f"new{n}@example.com": 1 for n in range(20)}
    assert dict(received) == expected
    assert {row["status"] for row in desk.notifications()} == {"sent"}


def test_a_slow_relay_costs_a_delivery_at_most_the_notification_timeout(
    sqlite_url: str, run_admin: Any, run_deliver: Any, child_home: Path
) -> None:
    """A relay that answers each command 2 s late, with `timeout = 4`: every single command is in time, so a
    timeout per operation let one acknowledgement hold the delivery for 7 replies x 2 s (and each due retry as
    much again). The whole send now ends within the 4 s; the acknowledgement waits for a retry."""
    with StallingRelay(delay=2.0) as relay:
        desk = notifying_desk(sqlite_url, run_admin, run_deliver, child_home, relay.host, relay.port, 4)
        desk.deliver_ok(mail("warm@example.com", "Warm up"))  # the SQLite file and the first imports
        started = time.monotonic()
        data = desk.deliver_ok(mail("alice@example.com", "Printer broken"))
        took = time.monotonic() - started
    assert data["action"] == "create" and data["notify"][0]["kind"] == "acknowledgement"
    assert took < 4 + 3, f"the delivery took {took:.1f} s"
    ack = next(row for row in desk.notifications() if row["recipient"] == "alice@example.com")
    assert ack["status"] == "failed" and "timed out" in ack["last_error"], ack


@pytest.mark.parametrize("relay_delay", [None], ids=["hung"])
def test_a_hung_relay_costs_a_pipe_delivery_one_timeout_with_its_retries(
    sqlite_url: str, run_admin: Any, run_deliver: Any, child_home: Path, relay_delay: float | None
) -> None:
    """A relay that never answers: the delivery's own acknowledgement uses the budget, and the three retries it
    found due are not taken on (they would wait on the same relay); it ends within `timeout`."""
    with StallingRelay(delay=relay_delay) as relay:
        desk = notifying_desk(sqlite_url, run_admin, run_deliver, child_home, relay.host, relay.port, 2)
        for n in range(3):
            desk.deliver_ok(mail(f"early{n}@example.com", f"Early {n}"))
        desk.sql("UPDATE notifications SET next_attempt_at = :past", past="2026-01-01 00:00:00")
        connections = relay.connections
        started = time.monotonic()
        desk.deliver_ok(mail("alice@example.com", "Printer broken"))
        took = time.monotonic() - started
        assert relay.connections == connections + 1  # its own acknowledgement only
    assert took < 2 + 3, f"the delivery took {took:.1f} s"
