"""No credential of the database URL is ever shown: not the user-info password, and not one given as a query
parameter (`?password=`, `passfile`, `sslpassword`, `sslkey`, ...), which libpq accepts just as well and which
used to be printed whole in the `4.3.0 database ... unavailable` line that Postfix logs and puts into delay
notices and bounces.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from email2ticket.store.engine import redact
from support.executables import ADMIN, child_env

SECRETS = ("hunter2", "s3cret", "user-info-pw", "secret-pgpass", "secret.key")
URL = (
    "postgresql://e2t:user-info-pw@127.0.0.1:1/e2t?sslmode=disable&password=hunter2&sslpassword=s3cret"
    "&passfile=/etc/secret-pgpass&sslkey=/etc/secret.key&application_name=e2t"
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://e2t:pw@db.example/e2t", "postgresql+psycopg://e2t:***@db.example/e2t"),
        ("postgresql://e2t@db/e2t?password=pw&sslmode=require", "postgresql://e2t@db/e2t?password=***&sslmode=require"),
        (
            "postgresql:///e2t?host=/run/postgresql&passfile=/p&sslkey=/k&sslpassword=x&PGPASSWORD=y",
            "postgresql:///e2t?host=/run/postgresql&passfile=***&sslkey=***&sslpassword=***&PGPASSWORD=***",
        ),
        ("sqlite:////var/lib/email2ticket/email2ticket.db", "sqlite:////var/lib/email2ticket/email2ticket.db"),
        ("postgresql://e2t@db/e2t?application_name=desk", "postgresql://e2t@db/e2t?application_name=desk"),
    ],
)
def test_redact_masks_every_credential(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_no_credential_reaches_the_mta_the_service_log_or_doctor(
    run_deliver: Any, run_admin: Any, child_home: Path, tmp_path: Path
) -> None:
    deferred = run_deliver("--database-url", URL, stdin=b"From: alice@example.com\nSubject: x\n\nx\n")
    assert deferred.returncode == 75 and deferred.stderr_first_line.startswith("4.3.0 database "), deferred
    assert "password=***" in deferred.stderr_first_line
    doctor = run_admin("--database-url", URL, "doctor")
    assert "password=***" in doctor.stdout_text, doctor
    shown = deferred.stderr_text + doctor.stdout_text + doctor.stderr_text + started_service(URL, child_home, tmp_path)
    assert [secret for secret in SECRETS if secret in shown] == []


def started_service(url: str, home: Path, directory: Path) -> str:
    """What `email2ticket serve` prints at start (its warning about the database included), then stopped."""
    service = subprocess.Popen(
        [sys.executable, str(ADMIN), "--database-url", url, "serve", "--socket", str(directory / "s.sock")],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=child_env(home),
    )
    assert service.stderr is not None
    output = b""
    deadline = time.monotonic() + 60
    while b" thread(s)" not in output and time.monotonic() < deadline:
        line = service.stderr.readline()
        if not line:
            break
        output += line
    service.send_signal(signal.SIGTERM)
    output += service.communicate(timeout=60)[1]
    assert b"database postgresql://e2t:***@127.0.0.1:1/e2t?" in output, output
    return output.decode(errors="replace")
