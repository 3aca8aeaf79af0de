"""The resident service behind PgBouncer in transaction pooling mode (store/pooling.py).

The service keeps its database connections open, so each of them runs the same statements over and over:
past psycopg's `prepare_threshold` (5 executions) it would prepare them on the server, which a pooler in
transaction mode cannot keep. With `?pool_mode=transaction` nothing is prepared. What happens without it is
shown where it happens, on an engine's connections: tests/store/test_pgbouncer.py.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.mail import mail
from support.run import Result, Runner
from support.servers.delivery_service import LmtpClient, ServiceProcess, StartService
from support.servers.pgbouncer import PgBouncer
from support.servers.pgserver import PgServer

HELPDESK = "helpdesk@helpdesk.example"
THREADS = 2


@pytest.fixture
def database(pg_server: PgServer, run_admin: Runner) -> str:
    """A new database with the schema (created directly: `init` through PgBouncer is tests/store/test_pgbouncer.py)."""
    name = pg_server.create_database()
    assert run_admin("--database-url", pg_server.url_for(name), "init").returncode == 0
    return name


def messages(count: int) -> list[bytes]:
    """`count` mails: new tickets from several senders, the rest replies to ticket #1 from its requester."""
    opening = [mail("Shared printer", f"hello {n}\n", sender=f"user{n}@example.com") for n in range(count // 4)]
    replies = [mail("Re: Shared printer [Ticket #1]", f"reply {n}\n", sender="user0@example.com") for n in range(count)]
    return opening + replies[: count - len(opening)]


def through(service: ServiceProcess, run_deliver: Runner, raw: bytes) -> Result:
    """One message through the thin client; 75 rather than a standalone delivery if the service fails."""
    args = ("--socket", str(service.socket), "--fallback", "tempfail", "--database-url", service.database_url)
    return run_deliver(*args, "--json", "--recipient", HELPDESK, stdin=raw)


def burst(service: ServiceProcess, run_deliver: Runner, mails: list[bytes], senders: int = 8) -> list[Result]:
    with ThreadPoolExecutor(senders) as pool:
        return list(pool.map(lambda raw: through(service, run_deliver, raw), mails))


def count(pg_server: PgServer, database: str, table: str) -> int:
    return int(pg_server.execute(f"SELECT count(*) FROM {table}", database=database)[0][0])


def test_a_burst_through_the_service_and_pgbouncer_lands_exactly_once(
    database: str,
    pg_server: PgServer,
    start_pgbouncer: Callable[..., PgBouncer],
    start_service: StartService,
    run_deliver: Runner,
) -> None:
    bouncer = start_pgbouncer(pool_size=1)
    service = start_service(bouncer.url_for(database), threads=THREADS)
    first = through(service, run_deliver, mail("Shared printer", "the first\n", sender="user0@example.com"))
    assert (first.returncode, first.json["ticket"]) == (0, 1), first
    burst_mails = messages(32)
    results = burst(service, run_deliver, burst_mails)
    assert [r.returncode for r in results] == [0] * 32, [str(r) for r in results if r.returncode]
    with LmtpClient.unix(str(service.lmtp_socket)) as lmtp:
        reply = "Re: Shared printer [Ticket #1]"
        lmtp_mails = [mail(reply, f"lmtp {n}\n", sender="user0@example.com") for n in range(6)]
        codes = [lmtp.send(raw, "user0@example.com", [HELPDESK])[0][0] for raw in lmtp_mails]
    assert codes == [250] * 6
    # The MTA retrying messages of the burst finds each delivered once.
    again = burst(service, run_deliver, burst_mails[:10])
    assert [r.json["action"] for r in again] == ["duplicate"] * 10, again

    assert count(pg_server, database, "tickets") == 1 + 8
    assert count(pg_server, database, "comments") == 24 + 6
    assert count(pg_server, database, "messages") == 1 + 32 + 6 + 10
    # The service's pooled connections (PgBouncer's clients) ran the delivery statements past prepare_threshold
    # (49 deliveries on at most 2 * THREADS connections), all on PgBouncer's one server connection.
    pool = bouncer.pool(database)
    servers = sum(int(pool[key]) for key in ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"))
    assert servers == 1 < int(pool["cl_active"]) <= 2 * THREADS, pool
    assert int(bouncer.stats(database)["total_xact_count"]) >= 49
    assert service.stop() == 0, service.log_text()
