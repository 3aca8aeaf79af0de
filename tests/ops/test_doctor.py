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
    # With a log file: without one, a host without syslog would log deliveries nowhere (WARN).
    config = write_config(tmp_path, f'database_url = "{sqlite_url}"\n[logging]\nfile = "{tmp_path}/deliver.log"\n')
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


def test_relative_config_is_the_file_the_pipe_user_check_reads(run_admin: Any, sqlite_url: str, tmp_path: Path) -> None:
    """The probe of the pipe user's access runs in /: a relative path must be made absolute before it."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "config.toml").write_text(f'database_url = "{sqlite_url}"\n')
    assert run_admin("--database-url", sqlite_url, "init").returncode == 0
    by_flag = checks(run_admin("--config", "config.toml", "doctor", "--json", cwd=workdir))
    by_env = checks(run_admin("doctor", "--json", env={"EMAIL2TICKET_CONFIG": "config.toml"}, cwd=workdir))
    for found in (by_flag, by_env):
        assert found["configuration"]["detail"] == f"{workdir / 'config.toml'} is valid"
        assert found["pipe user"]["ok"], found["pipe user"]


def test_pipe_user_that_cannot_read_a_relative_config(run_admin: Any, tmp_path: Path) -> None:
    import os

    import pytest

    if os.geteuid() != 0:
        pytest.skip("checking another user's access needs root")
    from support.servers.pgserver import _ensure_os_user

    _ensure_os_user("e2t-test")
    workdir = Path("/tmp") / f"e2t-doctor-config-{os.getpid()}"
    workdir.mkdir(mode=0o755, exist_ok=True)
    try:
        config = workdir / "config.toml"
        config.write_text(f'database_url = "sqlite:///{workdir}/desk.db"\n')
        config.chmod(0o600)  # root's alone
        result = run_admin("--config", "config.toml", "doctor", "--user", "e2t-test", "--json", cwd=workdir)
        found = checks(result)["pipe user"]
        if "cannot run" in found["detail"]:
            pytest.skip(f"e2t-test cannot run this interpreter at all: {found['detail']}")
        assert not found["ok"] and f"cannot read the configuration file ({config})" in found["detail"]
        config.chmod(0o644)
        found = checks(run_admin("--config", "config.toml", "doctor", "--user", "e2t-test", "--json", cwd=workdir))
        assert "configuration file" not in found["pipe user"]["detail"]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_probe_imports_the_copy_of_the_package_that_runs_doctor() -> None:
    """The probe's PYTHONPATH is the directory holding this very package, whatever subpackage doctor moves to."""
    import os
    import pwd

    from email2ticket.ops import doctor

    env = doctor._probe_env(pwd.getpwuid(os.geteuid()))
    assert Path(env["PYTHONPATH"], "email2ticket", "ops", "doctor.py").resolve() == Path(doctor.__file__).resolve()


# --- the documented wirings (ops/postfix.py), the delivery log and the key's fix (ops/checks.py) ----------


def _wiring(tmp_path: Path, master: str, transport: str, *, main: str = "") -> Path:
    """A Postfix configuration directory: master.cf, main.cf.snippet's settings and a transport table."""
    etc = tmp_path / "postfix"
    etc.mkdir(parents=True)
    (etc / "master.cf").write_text(master)
    snippet = (REPO / "postfix" / "main.cf.snippet").read_text()
    (etc / "main.cf").write_text(snippet.replace("/etc/postfix/", f"{etc}/") + main)
    (etc / "transport").write_text(transport)
    return etc


def _by_name(found: list[Any]) -> dict[str, Any]:
    return {check.name: check for check in found}


def test_the_thin_client_line_is_a_pipe_service(tmp_path: Path) -> None:
    """service.snippet A runs `.../python -IS .../email2ticket-deliver`: doctor sees the same pipe service, checks
    the interpreter and the script, and never asks for a second service."""
    import sys

    from email2ticket.config.load import config_from_mapping
    from email2ticket.ops.postfix import postfix_checks

    snippet = (REPO / "postfix" / "service.snippet").read_text()
    thin = snippet[snippet.index("email2ticket unix") : snippet.index("# main.cf and the transport table")]
    deliver = REPO / "bin" / "email2ticket-deliver"
    master = thin.replace("/opt/email2ticket/bin/python", sys.executable).replace(
        "/opt/email2ticket/bin/email2ticket-deliver", str(deliver)
    )
    etc = _wiring(tmp_path, master, "helpdesk@helpdesk.example email2ticket:\n", main="maillog_file = /dev/stdout\n")
    config = config_from_mapping({"service": {"socket": "/run/email2ticket/deliver.sock"}})
    found = _by_name(postfix_checks(etc, config))
    assert all(check.ok and not check.warning for check in found.values()), found
    assert found["postfix master.cf (email2ticket)"].detail == (
        f"pipe service runs {deliver} as email2ticket, a thin client of the service at /run/email2ticket/deliver.sock"
    )
    assert found["postfix transport"].detail == "helpdesk@helpdesk.example routed to email2ticket"

    # As the guide writes it (/opt/email2ticket not installed here): the interpreter is what is missing.
    etc2 = _wiring(tmp_path / "opt", thin, "helpdesk@helpdesk.example email2ticket:\n")
    master_check = _by_name(postfix_checks(etc2, config))["postfix master.cf (email2ticket)"]
    assert master_check.detail == "/opt/email2ticket/bin/python is not executable"
    # A socket other than the service's: every delivery would fall back.
    other = config_from_mapping({"service": {"socket": "/run/other.sock"}})
    master_check = _by_name(postfix_checks(etc, other))["postfix master.cf (email2ticket)"]
    assert not master_check.ok and "is not the socket the service listens on" in master_check.detail


def test_the_lmtp_transport_must_name_the_socket_the_service_listens_on(tmp_path: Path) -> None:
    """service.snippet B: the transport's unix: path is relative to Postfix's queue directory."""
    import socket

    from email2ticket.config.load import config_from_mapping
    from email2ticket.ops.postfix import postfix_checks

    spool = Path("/tmp") / f"e2t-spool-{tmp_path.name[-20:]}"  # a short path: a Unix socket's is at most 107 bytes
    (spool / "email2ticket").mkdir(parents=True)
    master = "email2ticket-lmtp unix - - n - 20 lmtp\n"
    transport = "helpdesk@helpdesk.example    email2ticket-lmtp:unix:email2ticket/lmtp.sock\n"
    etc = _wiring(tmp_path, master, transport, main=f"queue_directory = {spool}\nmaillog_file = /dev/stdout\n")
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listening.bind(str(spool / "email2ticket" / "lmtp.sock"))
        listening.listen()
        right = config_from_mapping({"service": {"lmtp": f"unix:{spool}/email2ticket/lmtp.sock"}})
        found = _by_name(postfix_checks(etc, right))
        assert all(check.ok and not check.warning for check in found.values()), found
        assert "postfix master.cf" not in found  # no pipe service is needed, and none is asked for
        lmtp = found["postfix lmtp (email2ticket-lmtp)"]
        socket_path = f"unix:{spool}/email2ticket/lmtp.sock"
        assert lmtp.detail == f"Postfix delivers over LMTP to {socket_path}, where the service answers"

        # examples/config.toml used to suggest Postfix's private/ directory: Postfix looks elsewhere, and the
        # service (not the postfix user) could not even create its socket there.
        wrong = config_from_mapping({"service": {"lmtp": f"unix:{spool}/private/email2ticket"}})
        lmtp = _by_name(postfix_checks(etc, wrong))["postfix lmtp (email2ticket-lmtp)"]
        assert not lmtp.ok
        assert f"Postfix connects to unix:{spool}/email2ticket/lmtp.sock, but the service listens on" in lmtp.detail
        assert f"{spool}/private belongs to Postfix" in lmtp.detail
        unset = _by_name(postfix_checks(etc, config_from_mapping({})))["postfix lmtp (email2ticket-lmtp)"]
        assert not unset.ok and "[service] lmtp is not set" in unset.detail
    finally:
        listening.close()
        shutil.rmtree(spool, ignore_errors=True)
    stopped = _by_name(postfix_checks(etc, right))["postfix lmtp (email2ticket-lmtp)"]
    assert not stopped.ok and "nothing answers on" in stopped.detail


def test_no_wiring_at_all_names_every_documented_one(tmp_path: Path) -> None:
    from email2ticket.config.load import config_from_mapping
    from email2ticket.ops.postfix import postfix_checks

    master = "smtp inet n - y - - smtpd\nlmtp unix - - y - - lmtp\n"
    etc = _wiring(tmp_path, master, "example.com lmtp:unix:private/dovecot\n")
    (found,) = postfix_checks(etc, config_from_mapping({}))  # Dovecot's LMTP is not ours
    assert not found.ok and "no pipe service running email2ticket-deliver" in found.detail
    assert "setup.sh" in found.fix and "service.snippet" in found.fix


def test_delivery_log_that_goes_nowhere_is_a_warning(tmp_path: Path) -> None:
    from email2ticket.config.load import config_from_mapping
    from email2ticket.ops.checks import logging_check

    auto = config_from_mapping({})
    assert logging_check(auto, syslog=True).detail == "syslog (/dev/log), facility mail"
    nowhere = logging_check(auto, "e2t-pipe", syslog=False)
    assert nowhere.ok and nowhere.warning and "logged nowhere" in nowhere.detail
    assert "install -d -o e2t-pipe -g e2t-pipe -m 0750 /var/log/email2ticket" in nowhere.fix
    assert nowhere.lines()[0].startswith("WARN  delivery log: ")
    syslog = logging_check(config_from_mapping({"logging": {"target": "syslog"}}), syslog=False)
    assert syslog.warning and "nothing listens on /dev/log" in syslog.detail
    missing = tmp_path / "no-such-dir" / "deliver.log"
    no_dir = logging_check(config_from_mapping({"logging": {"file": str(missing)}}), "e2t-pipe", syslog=False)
    assert no_dir.warning and "does not exist" in no_dir.detail and str(missing.parent) in no_dir.fix
    file = logging_check(config_from_mapping({"logging": {"file": str(tmp_path / "deliver.log")}}), syslog=False)
    assert (file.ok, file.warning, file.detail) == (True, False, f"file {tmp_path / 'deliver.log'} (no syslog here)")
    off = logging_check(config_from_mapping({"logging": {"target": "none"}}), syslog=False)
    assert off.ok and not off.warning


def test_a_missing_key_file_gets_a_fix_that_creates_it(run_admin: Any, sqlite_url: str, tmp_path: Path) -> None:
    """chown/chmod cannot help a file that does not exist: the fix says where to put it and who makes it."""
    key_file = tmp_path / "state" / "notification-keys"
    config = write_config(
        tmp_path,
        f'database_url = "{sqlite_url}"\n[notifications]\nfrom_address = "helpdesk@example.org"\n'
        f'key_file = "{key_file}"\n',
    )
    found = checks(run_admin("--config", config, "doctor", "--json"))
    for name in ("notification key", "pipe user"):
        assert not found[name]["ok"], found[name]
        assert "chown" not in found[name]["fix"], found[name]
        assert "key_file" in found[name]["fix"] and f"--config {config} init" in found[name]["fix"], found[name]
