"""The connection budget: more delivery processes at once than PostgreSQL's max_connections, and no pooler.

A standalone pipe holds one connection for its one transaction. When the MTA runs more of them at once than the
server takes, the ones refused defer (75) with a sentence that says why, and the MTA's retry delivers them: 200
pipes at once against a server with max_connections = 50, every message landed exactly once.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.executables import start_deliver
from support.mail import mail
from support.run import Runner
from support.servers.pgserver import find_pg_bindir
from support.servers.replication import TunedServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PIPES, MAX_CONNECTIONS, HELD = 200, 50, 40


def test_two_hundred_pipes_against_fifty_connections_lose_nothing(run_admin: Runner, tmp_path: Path) -> None:
    if find_pg_bindir() is None:
        pytest.skip("PostgreSQL server binaries not found")
    with TunedServer({"max_connections": MAX_CONNECTIONS}) as server:
        database = server.create_database()
        url = server.url_for(database)
        # 200 Python processes at once on a small machine: none may run out of delivery_timeout before it even
        # connects, or its 75 would be for another reason than the one under test.
        config = tmp_path / "config.toml"
        config.write_text("delivery_timeout = 900\n")
        assert run_admin("--database-url", url, "init").returncode == 0
        messages = {
            f"budget-{i}@x": mail(
                f"Request {i} of the burst", "x\n", sender=f"user{i}@example.com", message_id=f"budget-{i}@x"
            )
            for i in range(PIPES)
        }
        # Other clients hold most of the budget, as a busy web admin or a second host would: the burst meets a
        # full server however fast or slow this machine starts its processes.
        held = [server.connect(database) for _ in range(HELD)]
        try:
            started = {
                message_id: start_deliver(tmp_path, "--config", str(config), "--database-url", url, "--json", stdin=raw)
                for message_id, raw in messages.items()
            }
            first = {message_id: finish(process) for message_id, process in started.items()}
        finally:
            for connection in held:
                connection.close()

        deferred = [message_id for message_id, (code, _) in first.items() if code == 75]
        assert all(code in (0, 75) for code, _ in first.values()), first
        assert deferred, "no delivery met the full server: the test proved nothing"
        for message_id in deferred:
            line = first[message_id][1]
            assert line.startswith("4.3.0 database ") and "has too many connections" in line, line
            assert "Traceback" not in line

        # The MTA's retry, a few at a time as its queue runner would.
        with ThreadPoolExecutor(max_workers=8) as pool:
            again = pool.map(lambda m: retry(tmp_path, config, url, messages[m]), deferred)
            retried = dict(zip(deferred, again, strict=True))
        assert all(code == 0 for code in retried.values()), retried

        rows = server.execute("SELECT message_id FROM tickets", database=database)
        stored = [str(row[0]).strip("<>") for row in rows]
        counts = {
            "in": PIPES,
            "first try": PIPES - len(deferred),
            "deferred": len(deferred),
            "landed": len(set(stored) & set(messages)),
            "duplicated": len(stored) - len(set(stored)),
        }
        print(f"connection budget counts: {counts}")
        assert counts["landed"] == PIPES == len(stored), counts


def finish(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    """The exit status and the first line of stderr of a started delivery."""
    process.stdin = None  # start_deliver wrote and closed it: communicate() must not flush it
    out, err = process.communicate(timeout=600)
    if process.returncode == 0:
        assert json.loads(out)["action"] == "create", out
    lines = err.decode("utf-8", "replace").splitlines()
    return process.returncode, lines[0] if lines else ""


def retry(home: Path, config: Path, url: str, raw: bytes) -> int:
    return finish(start_deliver(home, "--config", str(config), "--database-url", url, "--json", stdin=raw))[0]
