"""The resident service when what it depends on misbehaves: a relay that never answers, database server processes
that stop answering, a parent process killed. The real `email2ticket serve` and the real pipe command each time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support.desk import Desk
from support.executables import start_deliver
from support.mail import mail
from support.servers.delivery_service import ServiceProcess, StartService
from support.servers.pgserver import PgServer
from support.servers.relay import StallingRelay, wait_for

HELPDESK = "helpdesk@helpdesk.example"


def via_service(service: ServiceProcess, desk: Desk) -> tuple[str, ...]:
    """The pipe's arguments through the service; 75 rather than a standalone fallback if it is not there."""
    return (*desk.options(), "--socket", str(service.socket), "--fallback", "tempfail", "--recipient", HELPDESK)


def deliver_timed(home: Path, args: tuple[str, ...], raw: bytes) -> tuple[int, float, str]:
    """One pipe delivery: its exit status, how long it took, its first stderr line."""
    started = time.monotonic()
    process = start_deliver(home, *args, stdin=raw)
    process.wait(120)
    assert process.stderr is not None
    return process.returncode, time.monotonic() - started, process.stderr.read().decode(errors="replace")


# --- a relay that never answers -------------------------------------------------------------------------


def test_a_hung_relay_never_defers_incoming_mail(
    sqlite_url: str, run_admin: Any, run_deliver: Any, child_home: Path, start_service: StartService
) -> None:
    """A relay that accepts connections and never answers, `timeout = 10`, 4 delivery threads: a burst of 40 new
    tickets (40 acknowledgements to send), then 50 more mails. Before, the acknowledgements were sent on the
    delivery threads and the next mails waited for one past delivery_timeout: 75 for all of them. Now every
    mail is delivered as fast as without notifications, and the acknowledgements wait for a retry."""
    with StallingRelay() as relay:
        settings = {
            "delivery_timeout": 5,
            "logging": {"target": "none"},
            "notifications": {
                "from_address": f"Help Desk <{HELPDESK}>",
                "method": "smtp",
                "smtp_host": relay.host,
                "smtp_port": relay.port,
                "timeout": 10,
                "key_file": str(child_home / "keys" / "notification-keys"),
            },
        }
        desk = Desk(sqlite_url, run_admin, run_deliver, config=child_home / "e2t.toml", settings=settings, init=True)
        service = start_service(sqlite_url, config=desk.config, home=child_home, threads=4)
        with service.lmtp() as lmtp:
            for n in range(40):
                started = time.monotonic()
                sender = f"burst{n}@example.com"
                [(code, text)] = lmtp.send(mail(f"Burst {n}", sender=sender), sender, [HELPDESK])
                assert (code, time.monotonic() - started < 2.5) == (250, True), (n, code, text)
        assert wait_for(lambda: relay.connections >= 1, 10)  # the acknowledgements are being sent meanwhile
        for n in range(50):
            raw = mail(f"After the burst {n}", sender=f"after{n}@example.com")
            code, took, err = deliver_timed(child_home, via_service(service, desk), raw)
            assert (code, took < 2.5) == (0, True), (n, code, f"{took:.1f} s", err)
    statuses = desk.sql("SELECT status, count(*) FROM notifications GROUP BY status")
    assert sum(count for _, count in statuses) == 90 and {status for status, _ in statuses} <= {"pending", "failed"}


# --- database server processes that stop answering ---------------------------------------------------------


@contextlib.contextmanager
def stopped_backends(pg: PgServer, database: str) -> Iterator[list[int]]:
    """SIGSTOP every server process connected to `database` (the service's pooled connections), SIGCONT after."""
    pids = [
        int(pid)
        for (pid,) in pg.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [database]
        )
    ]
    assert pids, "the service holds no connection"
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)  # the tests run as root; the server as its own unprivileged user
    try:
        yield pids
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def test_a_hung_database_connection_is_discarded_not_waited_on(
    postgres_url: str, pg_server: PgServer, run_admin: Any, run_deliver: Any, child_home: Path,
    start_service: StartService,
) -> None:  # fmt: skip
    """The server processes behind the service's pooled connections are stopped (SIGSTOP): they take no cancel
    request and never answer. Before, every delivery answered 75 after delivery_timeout + 10 s, for as long as
    they stayed stopped, while a standalone delivery (a new connection) worked in half a second. Now a delivery
    that meets a hung connection answers 75 within its budget, the connection is discarded, and the next
    deliveries connect afresh and succeed, the stopped processes notwithstanding."""
    settings = {"delivery_timeout": 3, "logging": {"target": "none"}}
    desk = Desk(postgres_url, run_admin, run_deliver, config=child_home / "e2t.toml", settings=settings)
    service = start_service(postgres_url, config=desk.config, home=child_home, threads=2)
    args = via_service(service, desk)
    database = postgres_url.rpartition("/")[2]

    def both_threads_connected() -> bool:  # concurrent deliveries, until the pool holds two connections
        batch = [start_deliver(child_home, *args, stdin=mail(f"Warm-up {n}")) for n in range(4)]
        assert [process.wait(60) for process in batch] == [0] * 4
        return len(pg_server.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [database])) >= 2

    assert wait_for(both_threads_connected, 60, step=0)
    outcomes = []
    with stopped_backends(pg_server, database):
        for n in range(6):
            code, took, err = deliver_timed(child_home, args, mail(f"During {n}", sender=f"during{n}@example.com"))
            outcomes.append((code, round(took, 1), err.partition("\n")[0]))
    timed_out = [outcome for outcome in outcomes if outcome[0] == 75]
    assert len(timed_out) <= 2 and all(took < 3 + 2 + 2 for _, took, _ in timed_out), outcomes
    assert all("delivery_timeout" in line for _, _, line in timed_out), outcomes
    assert [code for code, _, _ in outcomes[-3:]] == [0, 0, 0], outcomes
    assert all(took < 2 for _, took, _ in outcomes[-3:]), outcomes


# --- the parent killed -----------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for whoever adopted it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_workers_exit_when_the_parent_is_killed(
    sqlite_url: str, run_admin: Any, run_deliver: Any, child_home: Path, start_service: StartService
) -> None:
    """SIGKILL of the supervising process (the OOM killer, an admin's kill -9), no systemd to clean up: its
    pre-forked workers used to keep serving as orphans, and a new `serve` refused to start ("another process is
    already serving"). They now exit with their parent, and a new service takes over the same sockets."""
    desk = Desk(sqlite_url, run_admin, run_deliver, init=True)
    first = start_service(sqlite_url, home=child_home, workers=2)
    assert wait_for(lambda: len(children(first.pid)) == 2, 30), first.log_text()
    workers = children(first.pid)
    second = ServiceProcess(sqlite_url, home=child_home)
    second.socket, second.lmtp_socket = first.socket, first.lmtp_socket
    try:
        os.kill(first.pid, signal.SIGKILL)
        assert wait_for(lambda: not any(alive(pid) for pid in workers), 30), [pid for pid in workers if alive(pid)]
        second.start()
        args = (*desk.options(), "--socket", str(second.socket), "--fallback", "tempfail")
        assert deliver_timed(child_home, args, mail("After the takeover"))[0] == 0
    finally:
        second.close()
        for pid in workers:  # orphans are no longer this test's descendants: nothing else would stop them
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
