"""Several delivery hosts, one database: two resident services and standalone pipes against one PostgreSQL.

Each "host" is an `email2ticket serve` of its own (its own process, configuration file, HOME, sockets and log
file), as two MX hosts would run it; the standalone pipes are a third kind of host. Bursts go to all of them at
once: new tickets, replies to one ticket, and the same messages delivered by both services (an MTA whose retry
lands on the other host). Every message lands exactly once: counted in, landed, duplicated, lost.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from support.desk import toml
from support.executables import start_deliver
from support.mail import mail
from support.run import Runner
from support.servers.delivery_service import ServiceProcess, StartService

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HELPDESK = "helpdesk@example.org"
HOSTS = ("mx1", "mx2")


def host_config(tmp_path: Path, host: str, url: str) -> Path:
    """The configuration file of one host: the shared database, its own log file."""
    config = tmp_path / f"{host}.toml"
    log = tmp_path / f"{host}.log"
    config.write_text(toml({"database_url": url, "logging": {"target": "file", "file": str(log)}}))
    return config


def test_two_services_and_standalone_pipes_land_every_message_once(
    postgres_url: str, run_admin: Runner, start_service: StartService, tmp_path: Path
) -> None:
    assert run_admin("--database-url", postgres_url, "init").returncode == 0
    opening = mail("Shared printer", "x\n", message_id="first@x")
    assert start_deliver(tmp_path, "--database-url", postgres_url, stdin=opening).wait(120) == 0
    services: dict[str, ServiceProcess] = {}
    for host in HOSTS:
        config = host_config(tmp_path, host, postgres_url)
        (tmp_path / host).mkdir()
        services[host] = start_service(postgres_url, config=config, threads=4, home=tmp_path / host)

    new = {
        f"new-{i}@x": mail(f"Problem {i} here", "x\n", sender=f"user{i}@example.com", message_id=f"new-{i}@x")
        for i in range(12)
    }
    replies = {
        f"reply-{i}@x": mail("Re: Shared printer [Ticket #1]", f"reply {i}\n", message_id=f"reply-{i}@x")
        for i in range(9)
    }
    both = {
        f"both-{i}@x": mail(f"Twice {i} over", "x\n", sender=f"twice{i}@example.com", message_id=f"both-{i}@x")
        for i in range(6)
    }
    ways = ("mx1", "mx2", "standalone")
    plan = [(ways[i % 3], m, raw) for i, (m, raw) in enumerate({**new, **replies}.items())]
    plan += [(host, m, raw) for m, raw in both.items() for host in HOSTS]  # the MTA's retry on the other host

    def start(way: str, raw: bytes) -> subprocess.Popen[bytes]:
        if way == "standalone":
            return start_deliver(tmp_path, "--database-url", postgres_url, "--recipient", HELPDESK, "--json", stdin=raw)
        service = services[way]
        config = str(service.config)
        args = ("--config", config, "--socket", str(service.socket), "--fallback", "tempfail", "--recipient", HELPDESK)
        return start_deliver(tmp_path, *args, "--json", stdin=raw)

    running = [(way, message_id, start(way, raw)) for way, message_id, raw in plan]
    actions: dict[str, list[str]] = {}
    for way, message_id, process in running:
        process.stdin = None  # start_deliver wrote and closed it: communicate() must not flush it
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, (way, message_id, out, err)
        actions.setdefault(message_id, []).append(json.loads(out)["action"])

    assert all(sorted(actions[m]) == ["create"] for m in new), actions
    assert all(actions[m] == ["update"] for m in replies), actions
    assert all(sorted(actions[m]) == ["create", "duplicate"] for m in both), actions

    incoming = {"first@x", *new, *replies, *both}
    stored = [
        str(row[0]).strip("<>")
        for row in _rows(postgres_url, "SELECT message_id FROM tickets UNION ALL SELECT message_id FROM comments")
    ]
    counts = {
        "in": len(incoming),
        "deliveries": len(plan) + 1,
        "landed": len(incoming & set(stored)),
        "duplicated": len(stored) - len(set(stored)),
        "lost": len(incoming - set(stored)),
    }
    print(f"several hosts counts: {counts}")
    assert (counts["landed"], counts["duplicated"], counts["lost"]) == (len(incoming), 0, 0), counts
    for host in HOSTS:  # each host ran on its own configuration: its deliveries are in its own log
        logged = (tmp_path / f"{host}.log").read_text()
        sent = sum(way == host for way, _, _ in plan)
        assert logged.count("\n") >= sent, (host, sent, logged)


def _rows(url: str, statement: str) -> list[tuple[object, ...]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(statement))]
    finally:
        engine.dispose()
