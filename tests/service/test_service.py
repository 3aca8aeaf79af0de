"""The resident service behind the pipe command: the same decisions as standalone, and the MTA contract kept
when the service is down, killed mid-delivery, shutting down or under concurrent load.

Every test runs the real executables: `email2ticket serve` (tests/support/servers/delivery_service.py) and
bin/email2ticket-deliver as the thin client, against SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from support.db import hold_lock
from support.desk import Desk, MakeDesk
from support.executables import DELIVER, child_env, start_deliver
from support.mail import MAIL, mail
from support.servers.delivery_service import LmtpClient, ServiceProcess, StartService

HELPDESK = "helpdesk@helpdesk.example"


def fresh_database(request: pytest.FixtureRequest, database_url: str, name: str) -> str:
    """Another empty database on the same backend as `database_url`."""
    if database_url.startswith("sqlite"):
        return database_url.replace("email2ticket.db", f"{name}.db")
    server = request.getfixturevalue("pg_server")
    return str(server.url_for(server.create_database()))


def via_service(service: ServiceProcess, *args: str) -> tuple[str, ...]:
    """Pipe arguments that use the service, and defer (75) rather than fall back if it is not there."""
    return ("--socket", str(service.socket), "--fallback", "tempfail", "--database-url", service.database_url, *args)


def audit(url: str) -> list[dict[str, Any]]:
    """Every column of the audit trail but what differs between two databases (row ids, times)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = [dict(row._mapping) for row in connection.execute(text("SELECT * FROM messages ORDER BY id"))]
    finally:
        engine.dispose()
    for row in rows:
        del row["id"], row["received_at"]
        row["raw"] = bytes(row["raw"])
    return rows


# --- the same decisions -----------------------------------------------------------------------------


def scenario(big: bytes) -> list[tuple[str, Any, str]]:
    """Admin commands and mails, in order: ("admin", args, "") or ("mail", raw, envelope sender)."""
    fixture = {name: (MAIL / name).read_bytes() for name in ("new_ticket.eml", "reply_outlook_requester.eml")}
    unknown = mail("Let me in", "hello\n", sender="mallory@example.net", message_id="unknown-1@x")
    return [
        ("admin", ("user", "add", "bob@helpdesk.example", "--technician", "--access", "normal"), ""),
        ("mail", fixture["new_ticket.eml"], "alice@example.com"),
        ("mail", fixture["new_ticket.eml"], "alice@example.com"),  # duplicate
        ("mail", fixture["reply_outlook_requester.eml"], "alice@example.com"),
        ("mail", (MAIL / "reply_gmail_stranger.eml").read_bytes(), "stranger@example.org"),
        ("mail", (MAIL / "reply_technician.eml").read_bytes(), "bob@helpdesk.example"),
        ("mail", (MAIL / "with_attachments.eml").read_bytes(), "carol@example.com"),
        ("mail", (MAIL / "room_101.eml").read_bytes(), "dave@example.com"),
        ("mail", (MAIL / "no_from_header.eml").read_bytes(), ""),  # no sender at all: 65
        ("mail", big, "erin@example.com"),  # over max_message_bytes: 65 (5.3.4)
        ("admin", ("ticket", "close", "1"), ""),
        ("mail", fixture["reply_outlook_requester.eml"].replace(b"Message-ID: <", b"Message-ID: <again-"), ""),
        ("admin", ("settings", "set", "unknown_senders", "reject"), ""),
        ("mail", unknown, "mallory@example.net"),  # 77
    ]


def test_pipe_and_lmtp_give_the_same_decisions_as_standalone(
    request: pytest.FixtureRequest,
    database_url: str,
    run_deliver: Any,
    run_admin: Any,
    start_service: StartService,
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("max_message_bytes = 30000\n")
    urls = {kind: fresh_database(request, database_url, kind) for kind in ("standalone", "pipe", "lmtp")}
    desks = [Desk(url, run_admin, init=True) for url in urls.values()]
    service_pipe = start_service(urls["pipe"], config=config)
    service_lmtp = start_service(urls["lmtp"], config=config)
    big = mail("Big", ("x" * 70 + "\n") * 600 + "\n", sender="erin@example.com", message_id="big-1@x")
    lmtp = service_lmtp.lmtp()
    for kind, item, sender in scenario(big):
        if kind == "admin":
            for desk in desks:
                desk.admin(*item)
            continue
        # pipe(8) with flags=R adds Return-Path; the LMTP server adds the same header itself.
        piped = f"Return-Path: <{sender}>\n".encode() + item
        args = ("--config", str(config), "--sender", sender, "--recipient", HELPDESK, "--json")
        alone = run_deliver("--database-url", urls["standalone"], *args, stdin=piped)
        served = run_deliver(*via_service(service_pipe, *args), stdin=piped)
        assert (served.returncode, served.stdout, served.stderr) == (alone.returncode, alone.stdout, alone.stderr), (
            f"{alone}\n{served}"
        )
        [(code, text)] = lmtp.send(item, sender, [HELPDESK])
        expected = {0: 250, 75: 451, 77: 550, 65: 552 if alone.stderr_first_line.startswith("5.3.4") else 550}
        assert code == expected[alone.returncode], (code, text, alone)
        if alone.returncode:
            assert text == alone.stderr_first_line
        else:
            ticket = f" ticket #{alone.json['ticket']}" if alone.json["ticket"] else ""
            assert text == f"2.0.0 <{HELPDESK}> {alone.json['action']}{ticket}"
    lmtp.close()
    reference = audit(urls["standalone"])
    assert [row["action"] for row in reference].count("create") >= 4
    assert audit(urls["pipe"]) == reference
    # LMTP reads the MTA's queue id from the topmost Received: line (the pipe gets it as --queue-id).
    without_queue_id = [{**row, "queue_id": None} for row in reference]
    assert [{**row, "queue_id": None} for row in audit(urls["lmtp"])] == without_queue_id
    tickets = [desk.tickets() for desk in desks]
    assert tickets[0] == tickets[1] == tickets[2] and len(tickets[0]) >= 4


def test_dry_run_and_bad_input_through_the_service(
    database_url: str, run_deliver: Any, make_desk: MakeDesk, start_service: StartService
) -> None:
    desk = make_desk(init=True)
    service = start_service(database_url)
    raw = (MAIL / "new_ticket.eml").read_bytes()
    dry = run_deliver(*via_service(service, "--dry-run", "--json"), stdin=raw)
    assert dry.returncode == 0 and dry.json["action"] == "create" and dry.json["ticket"] is None, dry
    empty = run_deliver(*via_service(service, "--json"), stdin=b"")
    assert empty.returncode == 65 and empty.stderr_first_line == "5.6.0 no message on standard input", empty
    assert desk.messages() == []
    # A command line argparse refuses is reported exactly as standalone does (75, never 2).
    bad = run_deliver(*via_service(service, "--no-such-option"), stdin=raw)
    assert bad.returncode == 75 and bad.stderr_first_line.startswith("4.3.5 malformed command line"), bad


# --- the MTA contract when the service fails ------------------------------------------------------


def test_service_down_gives_the_configured_fallback(
    sqlite_url: str, run_deliver: Any, run_admin: Any, tmp_path: Path
) -> None:
    desk = Desk(sqlite_url, run_admin, init=True)
    missing = tmp_path / "no-such.sock"
    raw = (MAIL / "new_ticket.eml").read_bytes()
    base = ("--database-url", sqlite_url, "--socket", str(missing), "--json")
    deferred = run_deliver(*base, "--fallback", "tempfail", stdin=raw)
    assert deferred.returncode == 75, deferred
    assert deferred.stderr_first_line.startswith(f"4.3.0 the delivery service at {missing} is unavailable"), deferred
    assert desk.tickets() == []
    alone = run_deliver(*base, "--fallback", "standalone", stdin=raw)
    assert alone.returncode == 0 and alone.json["action"] == "create", alone

    # A socket file left behind by a dead service (nobody listening), found through the configuration file.
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as left_behind:
        left_behind.bind(str(stale))
    config = tmp_path / "config.toml"
    config.write_text(f'[service]\nsocket = "{stale}"\nfallback = "tempfail"\n')
    second = raw.replace(b"new-ticket-1@", b"new-ticket-2@")
    result = run_deliver("--config", str(config), "--database-url", sqlite_url, stdin=second)
    assert result.returncode == 75 and "is unavailable (Connection refused)" in result.stderr_first_line, result
    config.write_text(f'[service]\nsocket = "{stale}"\n')  # fallback defaults to standalone
    result = run_deliver("--config", str(config), "--database-url", sqlite_url, "--json", stdin=second)
    assert result.returncode == 0 and result.json["action"] == "create", result
    # $EMAIL2TICKET_SOCKET works like --socket; --socket '' switches the service off.
    env = {"EMAIL2TICKET_SOCKET": str(missing)}
    third = raw.replace(b"new-ticket-1@", b"new-ticket-3@")
    assert run_deliver("--database-url", sqlite_url, "--fallback", "tempfail", stdin=third, env=env).returncode == 75
    off = run_deliver("--database-url", sqlite_url, "--socket", "", "--fallback", "tempfail", stdin=third, env=env)
    assert off.returncode == 0, off


def finish(client: subprocess.Popen[bytes], timeout: float = 60) -> tuple[bytes, bytes]:
    """Wait for a client whose standard input the test already wrote and closed."""
    client.wait(timeout)
    assert client.stdout is not None and client.stderr is not None
    return client.stdout.read(), client.stderr.read()


def test_killed_mid_delivery_defers_and_redelivery_lands_once(
    database_url: str, run_deliver: Any, make_desk: MakeDesk, start_service: StartService, child_home: Path
) -> None:
    desk = make_desk(init=True)
    service = start_service(database_url)
    raw = (MAIL / "new_ticket.eml").read_bytes()
    with hold_lock(database_url):
        client = start_deliver(child_home, *via_service(service, "--json"), stdin=raw)
        time.sleep(1.5)  # the service has the message and waits for the lock
        assert client.poll() is None
        service.kill()
        out, err = finish(client)
    assert client.returncode == 75, (out, err)
    assert err.decode().startswith("4.3.0 the delivery service at "), err
    assert "the message will be retried" in err.decode().splitlines()[0]

    # Killed while a large message (streamed, not read whole first) was still arriving: 75 as well,
    # and nothing half-received is delivered.
    second = start_service(database_url)
    large = raw + b"A log line that makes this message larger than what the client reads first.\n" * 5000
    client = start_deliver(child_home, *via_service(second, "--json"))
    client.stdin.write(large[: len(large) // 2])  # type: ignore[union-attr]
    client.stdin.flush()  # type: ignore[union-attr]
    time.sleep(1.0)
    second.kill()
    time.sleep(0.2)
    try:
        client.stdin.write(large[len(large) // 2 :])  # type: ignore[union-attr]
        client.stdin.close()  # type: ignore[union-attr]
    except BrokenPipeError:
        pass
    out, err = finish(client)
    assert client.returncode == 75, (out, err)
    assert err.decode().startswith("4.3.0 the delivery service at "), err
    assert desk.tickets() == []

    # The MTA's retries land exactly once.
    third = start_service(database_url)
    first_retry = run_deliver(*via_service(third, "--json"), stdin=raw)
    again = run_deliver(*via_service(third, "--json"), stdin=raw)
    assert (first_retry.json["action"], again.json["action"]) == ("create", "duplicate"), (first_retry, again)
    assert len(desk.tickets()) == 1


def test_graceful_shutdown_finishes_in_flight_and_refuses_new(
    database_url: str, run_deliver: Any, make_desk: MakeDesk, start_service: StartService, child_home: Path
) -> None:
    make_desk(init=True)
    service = start_service(database_url)
    raw = (MAIL / "new_ticket.eml").read_bytes()
    with hold_lock(database_url):
        in_flight = start_deliver(child_home, *via_service(service, "--json"), stdin=raw)
        time.sleep(1.0)
        assert service.process is not None
        service.process.terminate()  # SIGTERM: drain
        time.sleep(0.5)
        assert service.process.poll() is None, "the service must wait for the message in flight"
        refused = run_deliver(*via_service(service), stdin=raw.replace(b"new-ticket-1@", b"new-ticket-2@"))
        assert refused.returncode == 75 and "unavailable" in refused.stderr_first_line, refused
    out, err = finish(in_flight)
    assert in_flight.returncode == 0 and json.loads(out)["action"] == "create", (out, err)
    assert service.process.wait(60) == 0, service.log_text()
    assert not service.socket.exists() and not service.lmtp_socket.exists()


def test_twenty_concurrent_clients_land_exactly_once(
    database_url: str, make_desk: MakeDesk, start_service: StartService, child_home: Path
) -> None:
    desk = make_desk(init=True)
    service = start_service(database_url, workers=2, threads=3)
    first = start_deliver(child_home, *via_service(service, "--json"))
    opening = mail("Shared printer", "hello\n", sender="alice@example.com", message_id="t1@x")
    out, _ = first.communicate(opening, timeout=60)
    assert json.loads(out)["ticket"] == 1
    messages = [
        mail(f"Problem {i}", "hello\n", sender=f"user{i}@example.com", message_id=f"new{i}@x") for i in range(10)
    ]
    messages += [
        mail("Re: Shared printer [Ticket #1]", f"reply {i}\n", sender="alice@example.com", message_id=f"re{i}@x")
        for i in range(10)
    ]
    for round_ in ("first", "again"):
        clients = [(start_deliver(child_home, *via_service(service, "--json")), raw) for raw in messages]
        results = []
        for client, raw in clients:
            out, err = client.communicate(raw, timeout=120)
            assert client.returncode == 0, (client.returncode, out, err)
            results.append(json.loads(out)["action"])
        expected = ["create"] * 10 + ["update"] * 10 if round_ == "first" else ["duplicate"] * 20
        assert results == expected
    tickets = desk.tickets()
    assert len(tickets) == 11
    shown = desk.ticket(1)
    assert sorted(c["body"] for c in shown["comments"]) == sorted(f"reply {i}" for i in range(10))
    rows = desk.messages()
    assert sorted(row["action"] for row in rows).count("duplicate") == 20 and len(rows) == 41
    assert service.stop() == 0


def test_lmtp_reaches_the_same_service(
    database_url: str, run_deliver: Any, make_desk: MakeDesk, start_service: StartService
) -> None:
    make_desk(init=True)
    service = start_service(database_url)
    with LmtpClient.unix(str(service.lmtp_socket)) as lmtp:
        [(code, text)] = lmtp.send((MAIL / "new_ticket.eml").read_bytes(), "alice@example.com", [HELPDESK])
    assert (code, text) == (250, f"2.0.0 <{HELPDESK}> create ticket #1")
    piped = run_deliver(*via_service(service, "--json"), stdin=(MAIL / "new_ticket.eml").read_bytes())
    # The same Message-ID and body: the same idempotency key, whichever way the first copy came in.
    assert piped.json["action"] == "duplicate", piped


def test_delivery_timeout_has_the_same_effect_as_in_the_pipe(
    database_url: str, run_deliver: Any, make_desk: MakeDesk, start_service: StartService, tmp_path: Path
) -> None:
    """The pipe's budget is SIGALRM; the service's is a per-message deadline: same rollback, same answer."""
    desk = make_desk(init=True)
    config = tmp_path / "config.toml"
    config.write_text("delivery_timeout = 0.5\n")  # database lock waits stop at 1 s: the budget ends first
    service = start_service(database_url, config=config)
    raw = (MAIL / "new_ticket.eml").read_bytes()
    args = ("--config", str(config), "--json")
    with hold_lock(database_url):
        alone = run_deliver("--database-url", database_url, *args, stdin=raw)
        served = run_deliver(*via_service(service, *args), stdin=raw)
    expected = "4.3.0 delivery took longer than delivery_timeout (0.5 s); rolled back"
    assert (alone.returncode, alone.stderr_first_line) == (75, expected), alone
    assert (served.returncode, served.stdout, served.stderr) == (alone.returncode, alone.stdout, alone.stderr)
    assert desk.messages() == []


def test_deadline_interrupts_a_running_statement(database_url: str, make_desk: MakeDesk) -> None:
    """Past the deadline the running statement is cancelled (PostgreSQL) or interrupted (SQLite)."""
    import threading

    from sqlalchemy import text

    from email2ticket.exits import DeliveryTimeout
    from email2ticket.service.worker import Deadline, ServiceStore, _current

    make_desk(init=True)
    store = ServiceStore(database_url, lock_timeout=60, pool_size=1)
    count_far = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)"
    slow = "SELECT pg_sleep(30)" if database_url.startswith("postgresql") else f"{count_far} SELECT count(*) FROM c"
    insert = "INSERT INTO separator_edits (op, text, created_at) VALUES ('add', 'marker', CURRENT_TIMESTAMP)"
    deadline = Deadline(0.3)
    _current.deadline = deadline
    timer = threading.Timer(0.3, deadline.expire)
    started = time.monotonic()
    try:
        timer.start()
        with pytest.raises(DeliveryTimeout), store.transaction() as tx:
            tx.conn.execute(text(insert))
            tx.conn.execute(text(slow))
    finally:
        _current.deadline = None
        timer.cancel()
    assert time.monotonic() - started < 10
    with store.transaction(commit=False) as tx:  # the pool's connection is usable again, and nothing was kept
        assert tx.conn.execute(text("SELECT count(*) FROM separator_edits")).scalar() == 0
    store.dispose()


def test_the_thin_client_imports_next_to_nothing(
    sqlite_url: str, start_service: StartService, child_home: Path
) -> None:
    """With the service up, the pipe command loads only C modules beyond what `python -IS` itself loads."""

    def imported(*argv: str, stdin: bytes = b"") -> set[str]:
        result = subprocess.run(
            [sys.executable, "-IS", "-X", "importtime", *argv],
            input=stdin,
            capture_output=True,
            env=child_env(child_home),
            check=True,
        )
        lines = result.stderr.decode().splitlines()
        return {line.rpartition("|")[2].strip() for line in lines if line.startswith("import time:")}

    service = start_service(sqlite_url)
    baseline = imported("-c", "import sys; sys.stdin.buffer.read()")
    client = imported(str(DELIVER), *via_service(service), stdin=(MAIL / "new_ticket.eml").read_bytes())
    # The package and subpackage (a docstring each) and errors.py, the one describer, which imports nothing.
    ours = {"email2ticket", "email2ticket.service", "email2ticket.service.client", "email2ticket.errors"}
    assert client - baseline == ours | {"__future__", "_socket"}


@pytest.mark.parametrize("size", ["small", "large"])
def test_a_refused_message_is_delivered_standalone_whole(
    sqlite_url: str, run_deliver: Any, run_admin: Any, start_service: StartService, tmp_path: Path, size: str
) -> None:
    """The service refuses a command line naming another database; the client, which has already read
    (all or the start of) the message, hands all of it to the standalone delivery."""
    service = start_service(sqlite_url)
    other = f"sqlite:///{tmp_path}/other.db"
    raw = (MAIL / "new_ticket.eml").read_bytes()
    if size == "large":  # beyond what the client reads before connecting
        raw += b"Another line of the attached log file, repeated to make the message large.\n" * 5000
    result = run_deliver("--socket", str(service.socket), "--database-url", other, "--json", stdin=raw)
    assert result.returncode == 0 and result.json["action"] == "create", result
    stored = run_admin("--database-url", other, "messages", "show", "1", "--raw").stdout
    assert stored == raw
    tempfail = run_deliver(
        "--socket", str(service.socket), "--fallback", "tempfail", "--database-url", other, stdin=raw + b"x"
    )
    assert tempfail.returncode == 75 and "names another database" in tempfail.stderr_first_line, tempfail
