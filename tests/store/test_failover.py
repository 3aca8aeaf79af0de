"""PostgreSQL failover: a primary and a streaming-replication standby, both real servers (tests/support/servers/
replication.py), and the real executables delivering into them.

database_url names both servers with libpq's multi-host syntax and target_session_attrs=read-write; the primary is
stopped in the middle of a burst as a crash would stop it (`pg_ctl stop -m immediate`), and the standby promoted.
The MTA's side of it is played here: a delivery that exits 75 is retried until it exits 0, and then every message
is counted: in, landed, duplicated, lost. A standby reached by mistake defers with a sentence that says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.mail import mail
from support.run import Result, Runner
from support.servers.delivery_service import StartService
from support.servers.pgserver import PgServer, find_pg_bindir
from support.servers.replication import Standby, TunedServer, failover_url

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HELPDESK = "helpdesk@example.org"


@pytest.fixture
def replicated() -> Iterator[tuple[TunedServer, Standby]]:
    """A primary and its standby, each commit on the primary waiting until the standby has it (synchronous
    replication: without it, the last deliveries acknowledged to the MTA before a crash may never reach the
    standby, and are lost with the primary)."""
    if find_pg_bindir() is None:
        pytest.skip("PostgreSQL server binaries not found")
    primary = TunedServer({"synchronous_commit": "on"})
    standby: Standby | None = None
    try:
        primary.start()
        standby = Standby(primary)
        standby.start()
        primary.require_synchronous_standby()
        yield primary, standby
    finally:
        if standby is not None:
            standby.close()
        primary.close()


def wait_for(server: PgServer, database: str, query: str, timeout: float = 60.0) -> None:
    """Until `query` returns a row on `server` (a standby replays what the primary committed a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if server.execute(query, database=database):
                return
        except Exception:  # the database or its tables may not be there yet
            if time.monotonic() > deadline:
                raise
        assert time.monotonic() < deadline, f"{query!r} found nothing on the standby"
        time.sleep(0.1)


def refuses_cleanly(result: Result) -> None:
    """Deferred (75) with one sentence for the MTA: never a traceback, never a bounce."""
    assert result.returncode == 75, result
    assert "Traceback" not in result.stderr_text, result
    assert result.stderr_first_line.startswith("4."), result


# --- a standby reached by mistake ------------------------------------------------------------------------


def test_a_read_only_standby_defers_and_says_so(
    replicated: tuple[TunedServer, Standby], run_admin: Runner, run_deliver: Runner
) -> None:
    primary, standby = replicated
    database = primary.create_database()
    assert run_admin("--database-url", failover_url([primary, standby], database), "init").returncode == 0
    wait_for(standby, database, "SELECT 1 FROM alembic_version")
    mistakes = {
        "the standby alone": standby.url_for(database),
        "the standby first, no target_session_attrs": failover_url([standby, primary], database, read_write=False),
    }
    for why, url in mistakes.items():
        result = run_deliver("--database-url", url, stdin=mail("Printer", "x\n", message_id=f"{len(why)}@x"))
        refuses_cleanly(result)
        assert "the database is read-only (a standby?)" in result.stderr_first_line, (why, result)
        assert "target_session_attrs=read-write" in result.stderr_first_line, result
    assert primary.execute("SELECT count(*) FROM messages", database=database) == [(0,)]


# --- the primary lost in the middle of a burst ------------------------------------------------------------


def message_ids(server: PgServer, database: str) -> list[str]:
    """The Message-IDs of every ticket and comment the database holds (one entry each: a repeat is a duplicate)."""
    rows = server.execute("SELECT message_id FROM tickets UNION ALL SELECT message_id FROM comments", database=database)
    return [str(row[0]).strip("<>") for row in rows]


def test_failover_in_the_middle_of_a_burst_loses_and_duplicates_nothing(
    replicated: tuple[TunedServer, Standby], run_admin: Runner, run_deliver: Runner, start_service: StartService
) -> None:
    primary, standby = replicated
    database = primary.create_database()
    url = failover_url([primary, standby], database)
    assert run_admin("--database-url", url, "init").returncode == 0
    assert run_deliver("--database-url", url, stdin=mail("Shared printer", "x\n", message_id="first@x")).returncode == 0
    service = start_service(url, threads=4)

    def deliver(index: int, raw: bytes) -> Result:
        """Even messages through the service (deferring if it cannot answer), odd ones standalone."""
        through = ("--socket", str(service.socket), "--fallback", "tempfail") if index % 2 == 0 else ()
        return run_deliver(*through, "--database-url", url, "--recipient", HELPDESK, stdin=raw)

    burst = {f"burst-{i}@x": new_or_reply(i, f"burst-{i}@x") for i in range(24)}
    gap = {f"gap-{i}@x": new_or_reply(i, f"gap-{i}@x") for i in range(2)}
    incoming = {"first@x": b"", **burst, **gap}
    exits: dict[str, list[int]] = {message_id: [] for message_id in (*burst, *gap)}

    def record(message_id: str, result: Result) -> Result:
        exits[message_id].append(result.returncode)
        assert result.returncode in (0, 75), result  # the MTA's contract holds all along
        return result

    with ThreadPoolExecutor(max_workers=6) as pool:
        running = [
            pool.submit(lambda i=i, m=m, raw=raw: record(m, deliver(i, raw)))
            for i, (m, raw) in enumerate(burst.items())
        ]
        until(lambda: sum(future.done() for future in running) >= 8, "a third of the burst delivered")
        primary.crash()
        # The gap: the primary is gone and the standby takes no writes yet; the MTA keeps the mail.
        for index, (message_id, raw) in enumerate(gap.items()):
            result = record(message_id, deliver(index, raw))
            refuses_cleanly(result)
            if index % 2:  # standalone: psycopg's own words for each server it tried
                assert "no server of database" in result.stderr_first_line, result
                assert "accepts writes (a failover under way?)" in result.stderr_first_line, result
        standby.promote()
        for future in running:
            future.result()
    # The MTA retries what was deferred, through the same ways in, the service never restarted.
    for _round in range(10):
        deferred = [m for m, codes in exits.items() if codes[-1] == 75]
        if not deferred:
            break
        for message_id in deferred:
            index = int(message_id.rsplit("-", 1)[1].split("@")[0])
            record(message_id, deliver(index, {**burst, **gap}[message_id]))
    assert service.process is not None and service.process.poll() is None, service.log_text()
    assert all(codes[-1] == 0 for codes in exits.values()), exits

    stored = message_ids(standby, database)
    landed = {message_id for message_id in incoming if stored.count(message_id) >= 1}
    counts = {
        "in": len(incoming),
        "landed": len(landed),
        "duplicated": sum(stored.count(message_id) > 1 for message_id in incoming),
        "lost": len(set(incoming) - landed),
        "deferred": sum(75 in codes for codes in exits.values()),
    }
    print(f"failover counts: {counts}")
    assert counts["in"] == counts["landed"] == len(stored)
    assert (counts["duplicated"], counts["lost"]) == (0, 0), counts
    assert counts["deferred"] >= len(gap), counts


def new_or_reply(index: int, message_id: str) -> bytes:
    """Two in three a new ticket from its own sender, the third a reply to ticket 1 by its requester."""
    if index % 3 == 2:
        return mail("Re: Shared printer [Ticket #1]", f"reply {index}\n", message_id=message_id)
    return mail(f"Request {message_id}", f"body {index}\n", sender=f"user{index}@example.com", message_id=message_id)


def until(condition: Callable[[], bool], what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
