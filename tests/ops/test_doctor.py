"""`email2ticket doctor`: each check prints OK or FAIL with a fix; the exit status is 1 when any failed.

The end-to-end check of a real, working Postfix wiring is in test_mta_postfix.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


def checks(result: Any) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in json.loads(result.stdout)}


def test_healthy_installation_passes(run_admin: Any, sqlite_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, f'database_url = "{sqlite_url}"\n')
    assert run_admin("--config", config, "init").returncode == 0
    result = run_admin("--config", config, "doctor")
    assert result.returncode == 0, result
    lines = result.stdout_text.splitlines()
    assert [line.split()[0] for line in lines] == ["OK"] * len(lines)
    assert {line.split()[1].rstrip(":") for line in lines} >= {"configuration", "database", "schema", "quarantine"}


def test_broken_configuration_is_a_failed_check_not_a_crash(run_admin: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path, "delivery_timeout = 'soon'\n")
    result = run_admin("--config", config, "doctor", "--json")
    assert result.returncode == 1, result
    found = checks(result)["configuration"]
    assert not found["ok"] and "delivery_timeout must be a positive number" in found["detail"]
    assert "Traceback" not in result.stderr_text


def test_missing_schema_and_default_database_are_named_with_their_fix(
    run_admin: Any, postgres_url: str, tmp_path: Path
) -> None:
    result = run_admin("--database-url", postgres_url, "doctor", "--json")
    assert result.returncode == 1
    found = checks(result)
    assert found["database"]["ok"]
    assert not found["schema"]["ok"] and "email2ticket init" in found["schema"]["fix"]
    assert found["database_url"]["ok"]  # given on the command line

    result = run_admin("--config", write_config(tmp_path, ""), "doctor", "--json")
    assert not checks(result)["database_url"]["ok"]  # unset: every user gets its own SQLite file


def test_unreachable_database(run_admin: Any, postgres_url: str, pg_admin: Any) -> None:
    assert run_admin("--database-url", postgres_url, "init").returncode == 0
    pg_admin.stop()
    result = run_admin("--database-url", postgres_url, "doctor", "--json")
    pg_admin.start()
    found = checks(result)
    assert result.returncode == 1
    assert not found["database"]["ok"] and "unavailable" in found["database"]["detail"]
    assert "start the database" in found["database"]["fix"]


def test_pipe_user_that_cannot_write_the_database(run_admin: Any, tmp_path: Path) -> None:
    import os

    if os.geteuid() != 0:
        import pytest

        pytest.skip("checking another user's access needs root")
    from support.servers.pgserver import _ensure_os_user

    _ensure_os_user("e2t-test")
    database = Path("/tmp") / f"e2t-doctor-{os.getpid()}"
    database.mkdir(mode=0o755, exist_ok=True)
    try:
        url = f"sqlite:///{database}/desk.db"
        assert run_admin("--database-url", url, "init").returncode == 0  # owned by root, 0644
        result = run_admin("--database-url", url, "doctor", "--user", "e2t-test", "--json")
        found = checks(result)["pipe user"]
        assert not found["ok"]
        # Either the interpreter (a pyenv or venv under root's home) or the database is out of reach.
        assert "cannot" in found["detail"]
    finally:
        shutil.rmtree(database, ignore_errors=True)


def test_postfix_wiring_from_the_snippets(run_admin: Any, sqlite_url: str, tmp_path: Path) -> None:
    etc = tmp_path / "postfix"
    etc.mkdir()
    shutil.copy(REPO / "postfix" / "master.cf.snippet", etc / "master.cf")
    shutil.copy(REPO / "postfix" / "main.cf.snippet", etc / "main.cf")
    result = run_admin("--database-url", sqlite_url, "doctor", "--postfix-config", str(etc), "--json")
    found = checks(result)
    assert found["postfix main.cf"]["ok"], found["postfix main.cf"]
    master = found["postfix master.cf (email2ticket)"]
    # Everything in the snippet is right except that /opt/email2ticket is not installed here.
    assert master["detail"] == "/opt/email2ticket/bin/email2ticket-deliver is not executable"

    (etc / "master.cf").write_text("smtp inet n - y - - smtpd\n")
    found = checks(run_admin("--database-url", sqlite_url, "doctor", "--postfix-config", str(etc), "--json"))
    assert "no pipe service running email2ticket-deliver" in found["postfix master.cf"]["detail"]


def test_notifications_key_templates_and_transport(run_admin: Any, sqlite_url: str, tmp_path: Path) -> None:
    from support.servers.smtpsink import SmtpSink

    key_file = tmp_path / "keys" / "notification-keys"
    base = f'database_url = "{sqlite_url}"\n[notifications]\nfrom_address = "helpdesk@example.org"\n'
    config = write_config(tmp_path, base + f'key_file = "{key_file}"\nsendmail = "/nonexistent/sendmail"\n')
    found = checks(run_admin("--config", config, "doctor", "--json"))
    assert found["notifications"]["ok"] and "by sendmail" in found["notifications"]["detail"]
    assert not found["notification key"]["ok"] and "email2ticket init" in found["notification key"]["fix"]
    assert not found["pipe user"]["ok"] and "read the notification key file" in found["pipe user"]["detail"]
    assert found["notification templates"]["ok"]
    assert (
        not found["notification transport"]["ok"]
        and "/nonexistent/sendmail" in found["notification transport"]["detail"]
    )
    assert run_admin("--config", config, "init").returncode == 0
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "acknowledgement.txt").write_text("Subject: $subject\n\nHello $nobody\n")
    with SmtpSink() as sink:
        smtp = f'key_file = "{key_file}"\nmethod = "smtp"\nsmtp_port = {sink.port}\ntemplates = "{templates}"\n'
        found = checks(run_admin("--config", write_config(tmp_path, base + smtp), "doctor", "--json"))
    assert found["notification key"]["ok"] and found["notification transport"]["ok"]
    assert not found["notification templates"]["ok"] and "$nobody" in found["notification templates"]["detail"]
    off = checks(run_admin("--config", write_config(tmp_path, f'database_url = "{sqlite_url}"\n'), "doctor", "--json"))
    assert off["notifications"]["ok"] and off["notifications"]["detail"].startswith("off")
