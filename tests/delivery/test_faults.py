"""Faults with the executable run directly, as the MTA runs it: killed at random points, a full disk,
lock and statement timeouts. Each one defers (75, an RFC 3463 4.x.y first line) with nothing half
written, is not counted against the message (no quarantine), and the redelivery lands exactly once.
"""

from __future__ import annotations

import json
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from support.db import hold_lock
from support.executables import DELIVER, child_env, start_deliver
from support.mail import mail


def tickets(run_admin: Any, url: str) -> Counter[str]:
    result = run_admin("--database-url", url, "tickets", "list", "--json")
    assert result.returncode == 0, result
    return Counter(t["subject"] for t in json.loads(result.stdout))


def audit(run_admin: Any, url: str) -> Counter[str]:
    result = run_admin("--database-url", url, "messages", "list", "--json")
    assert result.returncode == 0, result
    return Counter(m["action"] for m in json.loads(result.stdout))


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "faults.toml"
    path.write_text(text)
    return str(path)


# --- SIGKILL at random points ----------------------------------------------------------------------


def _start(url: str, raw: bytes, home: Path, stderr: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    args = ("--database-url", url, "--queue-id", "KILLTEST")
    return start_deliver(home, *args, stdin=raw, stdout=subprocess.DEVNULL, stderr=stderr)


@pytest.mark.slow
def test_sigkill_at_random_points_then_redelivery_lands_exactly_once(
    database_url: str, run_admin: Any, tmp_path: Path
) -> None:
    assert run_admin("--database-url", database_url, "init").returncode == 0
    rng = random.Random(20261126)
    subjects = [f"Killed {i:03d} scanner" for i in range(200)]
    raws = [mail(s, sender=f"k{i}@example.com", message_id=f"kill{i}@x") for i, s in enumerate(subjects)]
    # Kill points spread over a whole delivery: calibrate its duration under the same parallelism.
    calibration = [mail(f"Calibration {i} ok", sender=f"cal{i}@example.com", message_id=f"cal{i}@x") for i in range(4)]
    started = time.monotonic()
    procs = [_start(database_url, raw, tmp_path) for raw in calibration]
    assert all(proc.wait(timeout=120) == 0 for proc in procs)
    duration = time.monotonic() - started
    first: dict[int, int] = {}
    redelivered: Counter[int] = Counter()

    def worker(indices: list[int], deliver_once: bool) -> None:
        for i in indices:
            if deliver_once:
                with open(tmp_path / f"stderr-{i}", "wb") as err:
                    proc = _start(database_url, raws[i], tmp_path, stderr=err)
                    try:
                        proc.wait(timeout=rng.uniform(0, 2 * duration))  # startup, parse, transaction, commit
                    except subprocess.TimeoutExpired:
                        proc.send_signal(signal.SIGKILL)
                    first[i] = proc.wait(timeout=120)
                continue
            # The MTA redelivers what it did not see exit 0 (a killed pipe is deferred), until it does.
            for _attempt in range(3):
                code = _start(database_url, raws[i], tmp_path).wait(timeout=120)
                redelivered[code] += 1
                if code == 0:
                    break

    def in_parallel(indices: list[int], deliver_once: bool) -> None:
        threads = [threading.Thread(target=worker, args=(indices[k::4], deliver_once)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    in_parallel(list(range(200)), True)
    killed = [i for i, code in first.items() if code == -signal.SIGKILL]
    # A delivery beside a killed one may defer (75: the MTA retries it too), never fail otherwise.
    deferred = [i for i, code in first.items() if code == 75]
    reasons = Counter((tmp_path / f"stderr-{i}").read_text().split("\n")[0][:80] for i in deferred)
    assert set(first.values()) <= {0, 75, -signal.SIGKILL}, Counter(first.values())
    in_parallel(killed + deferred, False)
    landed = tickets(run_admin, database_url)
    counts = {
        "in": 200,
        "landed": sum(landed[s] == 1 for s in subjects),
        "duplicated": sum(landed[s] > 1 for s in subjects),
        "lost": sum(landed[s] == 0 for s in subjects),
    }
    actions = audit(run_admin, database_url)
    print(
        f"\nfault sigkill-{database_url.split(':')[0]}: {counts} killed={len(killed)} deferred={dict(reasons)} "
        f"calibrated-duration={duration:.2f}s audit={dict(actions)}"
    )
    assert 20 <= len(killed) <= 190, "the kill points should hit a good share of deliveries, not all"
    assert counts == {"in": 200, "landed": 200, "duplicated": 0, "lost": 0}
    assert actions["create"] == 200 + len(calibration)
    # A delivery killed after its commit (before exiting) is redelivered as a duplicate: still once.
    assert actions["duplicate"] <= len(killed)
    assert redelivered[0] == len(killed) + len(deferred)


# --- disk full --------------------------------------------------------------------------------------


def test_sqlite_full_database_defers_and_is_not_counted(sqlite_url: str, run_admin: Any) -> None:
    """PRAGMA max_page_count: a real SQLITE_FULL inside the real deliver(). The pragma lives per
    connection, so it is set on each connection of the delivery's own engine."""
    from sqlalchemy import event

    from email2ticket.delivery.core import Options, deliver
    from email2ticket.exits import TemporaryFailure
    from email2ticket.mail.envelope import Envelope
    from email2ticket.store.delivery import DeliveryStore

    assert run_admin("--database-url", sqlite_url, "init").returncode == 0
    store = DeliveryStore(sqlite_url, lock_timeout=5)
    pages = sqlite3.connect(sqlite_url.removeprefix("sqlite:///")).execute("PRAGMA page_count").fetchone()[0]

    @event.listens_for(store.engine, "connect")
    def _limit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 2}")

    big = mail("Full disk report", "log line\n" * 20000, sender="ann@example.com", message_id="full@x")  # > 2 pages
    with pytest.raises(TemporaryFailure, match="database or disk is full"):
        deliver(big, Envelope("ann@example.com"), store, Options(max_message_bytes=10**7))
    store.dispose()
    assert audit(run_admin, sqlite_url) == Counter()  # nothing written, no attempt counted
    assert tickets(run_admin, sqlite_url) == Counter()


def test_sqlite_file_size_limit_defers_through_the_executable(sqlite_url: str, run_admin: Any, tmp_path: Path) -> None:
    """The same fault as Postfix's local(8) causes (it applies mailbox_size_limit as RLIMIT_FSIZE):
    the write fails, the delivery exits 75 with a 4.x.y line, and succeeds once the limit is gone."""
    assert run_admin("--database-url", sqlite_url, "init").returncode == 0
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    limit = max(p.stat().st_size for p in database.parent.glob(database.name + "*")) + 8192
    big = mail("Full disk report", "log line\n" * 20000, sender="ann@example.com", message_id="fsize@x")
    env = child_env(tmp_path)
    argv = [sys.executable, str(DELIVER), "--database-url", sqlite_url]

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(argv, input=big, capture_output=True, env=env, preexec_fn=limited, check=False)
    first = proc.stderr.decode().splitlines()[0]
    assert proc.returncode == 75, proc.stderr.decode()
    assert first.startswith("4.3.0 database ") and ("disk" in first or "I/O" in first), first
    proc = subprocess.run(argv, input=big, capture_output=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert tickets(run_admin, sqlite_url) == Counter({"Full disk report": 1})
    assert sqlite3.connect(database).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_postgresql_disk_full_defers_and_is_not_counted(
    postgres_url: str, pg_admin: Any, run_admin: Any, run_deliver: Any
) -> None:
    assert run_admin("--database-url", postgres_url, "init").returncode == 0
    pg_admin.execute(
        """CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'could not extend file "base/16384/16385": No space left on device'
                 USING ERRCODE = '53100'; END $$;
           CREATE TRIGGER disk_full BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION disk_full();""",
        database=postgres_url,
    )
    raw = mail("Mail server full", sender="bea@example.com", message_id="pgfull@x")
    result = run_deliver("--database-url", postgres_url, stdin=raw)
    assert result.returncode == 75, result
    assert result.stderr_first_line.startswith("4.3.0 database ")
    assert "No space left on device" in result.stderr_first_line
    pg_admin.execute("DROP TRIGGER disk_full ON messages", database=postgres_url)
    assert audit(run_admin, postgres_url) == Counter()  # rolled back, and no failed attempt recorded
    assert run_deliver("--database-url", postgres_url, stdin=raw).returncode == 0
    assert tickets(run_admin, postgres_url) == Counter({"Mail server full": 1})


# --- lock and statement timeouts --------------------------------------------------------------------


def test_lock_timeout_defers_within_the_budget(
    database_url: str, run_admin: Any, run_deliver: Any, tmp_path: Path
) -> None:
    assert run_admin("--database-url", database_url, "init").returncode == 0
    budget = config(tmp_path, "delivery_timeout = 2\n")  # lock timeout: 1.5 s
    raw = mail("Locked out", sender="cid@example.com", message_id="lock@x")
    with hold_lock(database_url, "tickets, messages"):
        started = time.monotonic()
        result = run_deliver("--config", budget, "--database-url", database_url, stdin=raw)
        elapsed = time.monotonic() - started
    assert result.returncode == 75, result
    assert result.stderr_first_line.startswith("4.3.0 "), result.stderr_first_line
    assert elapsed < 15, elapsed
    assert audit(run_admin, database_url) == Counter()
    assert run_deliver("--config", budget, "--database-url", database_url, stdin=raw).returncode == 0
    assert tickets(run_admin, database_url) == Counter({"Locked out": 1})


@pytest.mark.postgres
def test_statement_timeout_defers(
    postgres_url: str, pg_admin: Any, run_admin: Any, run_deliver: Any, tmp_path: Path
) -> None:
    assert run_admin("--database-url", postgres_url, "init").returncode == 0
    pg_admin.execute(
        """CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN PERFORM pg_sleep(30); RETURN NEW; END $$;
           CREATE TRIGGER slow BEFORE INSERT ON tickets FOR EACH ROW EXECUTE FUNCTION slow();""",
        database=postgres_url,
    )
    budget = config(tmp_path, "delivery_timeout = 2\n")
    raw = mail("Slow database", sender="dan@example.com", message_id="slow@x")
    result = run_deliver("--config", budget, "--database-url", postgres_url, stdin=raw)
    assert result.returncode == 75, result
    assert result.stderr_first_line.startswith("4.3.0 "), result.stderr_first_line
    assert "statement timeout" in result.stderr_first_line or "delivery_timeout" in result.stderr_first_line
    pg_admin.execute("DROP TRIGGER slow ON tickets", database=postgres_url)
    assert audit(run_admin, postgres_url) == Counter()
    assert run_deliver("--config", budget, "--database-url", postgres_url, stdin=raw).returncode == 0
    assert tickets(run_admin, postgres_url) == Counter({"Slow database": 1})
