"""PostgreSQL behind PgBouncer in transaction pooling mode (store/pooling.py): the pipe and every admin command
through a real PgBouncer (Debian's, tests/support/servers/pgbouncer.py), with `?pool_mode=transaction` in
database_url; and what an installation without that option sees.

The resident service, where prepared statements would break, is tests/service/test_pgbouncer_service.py.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

import support.mail
from email2ticket.exits import ConfigurationError
from email2ticket.store.engine import make_engine
from email2ticket.store.errors import translate_errors
from support.desk import Desk
from support.run import Result, Runner
from support.servers.pgbouncer import PgBouncer
from support.servers.pgserver import PgServer
from support.servers.smtpsink import SmtpSink

HELPDESK = "helpdesk@example.org"
POOL_SIZE = 2


def mail(subject: str, sender: str = "alice@example.com", **options: Any) -> bytes:
    return support.mail.mail(subject, "It broke.\n", sender=sender, to=HELPDESK, **options)


@pytest.fixture
def database(pg_server: PgServer) -> str:
    return pg_server.create_database()


@pytest.fixture
def bouncer(start_pgbouncer: Callable[..., PgBouncer]) -> PgBouncer:
    return start_pgbouncer(pool_size=POOL_SIZE)


@pytest.fixture
def desk(
    bouncer: PgBouncer, database: str, run_admin: Runner, run_deliver: Runner, child_home: Path, smtp_sink: SmtpSink
) -> Desk:
    """A desk whose every command reaches the database through PgBouncer (`init` included), sending its
    acknowledgements to the test's SMTP sink."""
    notifications = {
        "from_address": f"Help Desk <{HELPDESK}>",
        "method": "smtp",
        "smtp_host": smtp_sink.host,
        "smtp_port": smtp_sink.port,
        "timeout": 5,
        "key_file": str(child_home / "keys" / "notification-keys"),
    }
    settings = {"max_attempts": 3, "logging": {"target": "none"}, "notifications": notifications}
    return Desk(
        bouncer.url_for(database),
        run_admin,
        run_deliver,
        config=child_home / "email2ticket.toml",
        settings=settings,
        init=True,
        recipient=HELPDESK,
    )


def burst(desk: Desk, messages: list[bytes], senders: int = 8) -> list[Result]:
    """Every message through its own pipe process, `senders` at a time."""
    with ThreadPoolExecutor(senders) as pool:
        return list(pool.map(desk.deliver, messages))


def server_connections(pg_server: PgServer, database: str) -> int:
    """PostgreSQL's sessions on `database` (PgBouncer's server connections, when only it connects)."""
    rows = pg_server.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [database])
    return int(rows[0][0])


@pytest.mark.slow  # some forty executables, each paying its imports: a minute or more on a busy machine
def test_pipes_and_admin_commands_work_through_pgbouncer(
    desk: Desk, bouncer: PgBouncer, database: str, pg_server: PgServer, smtp_sink: SmtpSink
) -> None:
    desk.admin("user", "add", "bob@example.org", "--technician", "--access", "normal")
    assert [u["email"] for u in desk.json("user", "list")] == ["bob@example.org"]

    # A burst of new tickets, then of replies to the first, 8 pipes at a time on 2 server connections.
    results = burst(desk, [mail(f"Printer {n} broken", sender=f"user{n}@example.com") for n in range(10)])
    assert [r.returncode for r in results] == [0] * 10, [str(r) for r in results if r.returncode]
    first = results[0].json["ticket"]  # (in the order sent)
    replies = [mail(f"Re: Printer 0 broken [Ticket #{first}]", sender="user0@example.com") for _ in range(10)]
    results = burst(desk, replies)
    assert [r.returncode for r in results] == [0] * 10, [str(r) for r in results if r.returncode]
    assert [r.json["action"] for r in results] == ["update"] * 10
    assert len(desk.tickets()) == 10
    assert len(desk.ticket(first)["comments"]) == 10  # the ten replies (the opening message is the ticket)
    assert server_connections(pg_server, database) <= POOL_SIZE

    # messages release: spam is held, the admin releases it.
    held = desk.deliver_ok(mail("Cheap pills", headers={"X-Spam-Flag": "YES"}))
    assert held["action"] == "hold"
    [row] = desk.messages("hold")
    assert "(create, ticket #" in desk.admin("messages", "release", str(row["id"])).stdout_text

    # quarantine replay: a message the database refuses three times is quarantined, then replayed.
    pg_server.execute(
        """CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN IF NEW.subject LIKE 'POISON%' THEN RAISE EXCEPTION 'refused' USING ERRCODE = '22000'; END IF;
           RETURN NEW; END $$;
           CREATE TRIGGER poison BEFORE INSERT ON tickets FOR EACH ROW EXECUTE FUNCTION poison();""",
        database=database,
    )
    poison = mail("POISON pill", sender="ann@example.com", message_id="poison@x")
    assert [desk.deliver(poison).returncode for _ in range(3)] == [75, 75, 0]
    [item] = desk.json("quarantine", "list")
    pg_server.execute("DROP TRIGGER poison ON tickets", database=database)
    assert "replayed as message" in desk.admin("quarantine", "replay", str(item["id"])).stdout_text

    # notifications retry: an acknowledgement the relay refused is sent again on the admin's word.
    smtp_sink.new_messages()
    smtp_sink.rcpt_reply = "450 4.2.0 mailbox busy"
    desk.deliver_ok(mail("Keyboard broken", sender="kim@example.com"))
    smtp_sink.rcpt_reply = None
    [failed] = [n for n in desk.notifications() if n["status"] == "failed"]
    assert desk.admin("notifications", "retry", str(failed["id"])).stdout_text.strip() == "1 sent, 0 failed"
    assert [m.rcpt_tos for m in smtp_sink.new_messages()] == [("kim@example.com",)]

    doctor = desk.admin("doctor", check=False).stdout_text
    assert "OK    database: " in doctor and "pool_mode=transaction is reachable" in doctor, doctor
    assert "OK    schema: " in doctor, doctor

    # All of it went through PgBouncer, on no more server connections than its pool has.
    assert int(bouncer.stats(database)["total_xact_count"]) > 100
    assert server_connections(pg_server, database) <= POOL_SIZE


def test_timeouts_hold_in_every_transaction_through_pgbouncer_and_end_with_it(
    start_pgbouncer: Callable[..., PgBouncer], database: str
) -> None:
    """PgBouncer refuses the `options` start-up parameter that sets the lock and statement timeouts for a session:
    behind it they are set in each transaction (SET LOCAL), so every transaction has them and the server connection
    goes back to the pool without them (one server connection here: the next client gets the same one)."""
    bouncer = start_pgbouncer(pool_size=1)
    engine = make_engine(bouncer.url_for(database), lock_timeout=3, pool_size=1)
    show = "SELECT current_setting('lock_timeout'), current_setting('statement_timeout'), current_setting('TimeZone')"
    try:
        for _ in range(3):
            with engine.begin() as connection:
                assert tuple(connection.execute(text(show)).one()) == ("3s", "3s", "UTC")
            with engine.connect() as connection:  # a transaction begun by its first statement, rolled back
                assert tuple(connection.execute(text(show)).one()) == ("3s", "3s", "UTC")
    finally:
        engine.dispose()
    with psycopg.connect(host=bouncer.host, port=bouncer.port, user=bouncer.user, dbname=database) as other:
        row = other.execute(show).fetchone()
        assert row is not None and row[:2] == ("0", "0"), f"a setting outlived its transaction: {row}"


def test_without_pool_mode_pgbouncer_refuses_and_the_status_line_names_the_option(
    bouncer: PgBouncer, database: str, run_admin: Runner, run_deliver: Runner, pg_server: PgServer
) -> None:
    assert run_admin("--database-url", pg_server.url_for(database), "init").returncode == 0
    result = run_deliver("--database-url", bouncer.url_for(database, query=""), stdin=mail("Printer jam"))
    assert result.returncode == 75, result
    line = result.stderr_first_line
    assert line.startswith("4.3.5 ") and "unsupported startup parameter: options" in line, line
    assert "add ?pool_mode=transaction to database_url" in line, line
    assert "Traceback" not in result.stderr_text


@pytest.mark.parametrize("pool_mode", [False, True], ids=["without-pool_mode", "pool_mode=transaction"])
def test_prepared_statements_break_behind_pgbouncer_unless_pool_mode_says_transaction(
    pool_mode: bool, start_pgbouncer: Callable[..., PgBouncer], database: str, pg_server: PgServer
) -> None:
    """What the service's pooled connections meet without the option: psycopg prepares a statement on the server
    at its sixth execution on one connection, and PgBouncer runs the next transaction on another server
    connection. Here the PgBouncer ignores the `options` start-up parameter (what installations are often told
    to set, so the URL without the option gets through) and takes its two server connections in turn."""
    bouncer = start_pgbouncer(
        pool_size=2, settings={"ignore_startup_parameters": "options", "server_round_robin": 1, "min_pool_size": 2}
    )
    url = bouncer.url_for(database, query="pool_mode=transaction" if pool_mode else "")
    engine = make_engine(url, lock_timeout=10, pool_size=1)
    try:
        # Two transactions at once: PgBouncer now has both server connections.
        with engine.connect() as first, engine.pool.connect() as second:  # the pool allows as many again
            first.execute(text("SELECT 1"))
            second.cursor().execute("SELECT 1")
        failures = []
        for n in range(8):
            try:
                with translate_errors(url), engine.begin() as connection:
                    assert connection.execute(text("SELECT :n + 1"), {"n": n}).scalar() == n + 1
            except ConfigurationError as exc:
                failures.append((n, exc.reason))
    finally:
        engine.dispose()
    if pool_mode:
        assert failures == []
    else:
        # The sixth execution prepared the statement on one server connection; the seventh ran on the other.
        assert [n for n, _ in failures] == [6], failures
        assert 'prepared statement "_pg3_0" does not exist' in failures[0][1]
        assert failures[0][1].endswith("add ?pool_mode=transaction to database_url"), failures


def test_an_unknown_pool_mode_is_a_configuration_error(bouncer: PgBouncer, database: str) -> None:
    for query in ("pool_mode=statement", "pool_mode=transaction&pool_mode=session"):
        with pytest.raises(ConfigurationError) as raised:
            make_engine(bouncer.url_for(database, query=query), lock_timeout=10)
        assert "say pool_mode=transaction for a pooler in transaction mode" in raised.value.reason, raised.value.reason
    with pytest.raises(ConfigurationError, match="pool_mode is for PostgreSQL"):
        make_engine("sqlite:////tmp/never.db?pool_mode=transaction", lock_timeout=10)


def test_the_test_pgbouncer_is_private_and_pools_transactions(bouncer: PgBouncer) -> None:
    """The helper's own promises: files only its user reads, loopback only, transaction pooling."""
    assert bouncer.base_dir.stat().st_mode & 0o777 == 0o700
    for path in (bouncer.config_file, bouncer.auth_file):
        assert path.stat().st_mode & 0o777 == 0o600
    config = bouncer.config_text()
    assert "pool_mode = transaction" in config and "listen_addr = 127.0.0.1" in config
    with psycopg.connect(host=bouncer.host, port=bouncer.port, user=bouncer.user, dbname="postgres") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert bouncer.pool("postgres")["pool_mode"] == "transaction"
