"""`email2ticket doctor` checks the resident service's sockets when [service] configures them: each exists, has
the owner, group and mode it should, and a service answers on it (E2T1 PING, or an LMTP greeting and LHLO)."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

from support.servers.delivery_service import ServiceProcess


def _checks(run_admin: Any, config: Path, *, status: int | None = None) -> dict[str, dict[str, Any]]:
    result = run_admin("--config", str(config), "doctor", "--json")
    assert status is None or result.returncode == status, result
    return {c["check"]: c for c in json.loads(result.stdout)}


def _verdict(check: dict[str, Any]) -> str:
    return "FAIL" if not check["ok"] else "WARN" if check["warning"] else "OK"


def test_doctor_checks_the_service_sockets(run_admin: Any, sqlite_url: str, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    service = ServiceProcess(sqlite_url, config=config)
    try:
        config.write_text(
            f'database_url = "{sqlite_url}"\n[logging]\nfile = "{tmp_path}/deliver.log"\n'
            f'[service]\nsocket = "{service.socket}"\nlmtp = "unix:{service.lmtp_socket}"\nsocket_mode = "0660"\n'
        )
        assert run_admin("--config", str(config), "init").returncode == 0
        before = _checks(run_admin, config)  # not started yet: no socket file
        assert _verdict(before["service lmtp socket"]) == "FAIL"  # Postfix keeps the mail queued
        assert "does not exist" in before["service lmtp socket"]["detail"]
        assert "systemctl start email2ticket" in before["service lmtp socket"]["fix"]
        assert _verdict(before["service socket"]) == "WARN"  # fallback = "standalone": mail still flows
        assert "fall back to standalone" in before["service socket"]["detail"]

        service.start()
        running = _checks(run_admin, config, status=0)
        for name in ("service socket", "service lmtp socket"):
            assert _verdict(running[name]) == "OK", running[name]
            assert "mode 0660) answers" in running[name]["detail"]
        assert "serve: closed a pipe connection" not in service.log_text()  # the ping is part of the protocol

        os.chmod(service.socket, 0o600)  # private, but not what socket_mode says: the MTA's group is locked out
        narrower = _checks(run_admin, config)["service socket"]
        assert _verdict(narrower) == "WARN" and "socket_mode says 0660" in narrower["detail"], narrower
        assert "restart the service" in narrower["fix"]

        service.kill()  # a crash leaves the socket files behind, with nobody listening
        stale = _checks(run_admin, config, status=1)
        assert _verdict(stale["service socket"]) == "WARN"
        assert _verdict(stale["service lmtp socket"]) == "FAIL"
        assert "nothing listens" in stale["service lmtp socket"]["detail"], stale["service lmtp socket"]
    finally:
        service.close()


def test_a_socket_that_is_not_the_service(run_admin: Any, sqlite_url: str, tmp_path: Path) -> None:
    """Something listens, but does not speak the thin client's protocol: it is no service of ours."""
    path = f"/tmp/e2t-doctor-{os.getpid()}.sock"
    config = tmp_path / "config.toml"
    config.write_text(
        f'database_url = "{sqlite_url}"\n[service]\nsocket = "{path}"\nsocket_mode = "0600"\nfallback = "tempfail"\n'
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(path)
        os.chmod(path, 0o600)
        other.listen()
        try:

            def answer_wrongly() -> None:
                connection, _ = other.accept()
                with connection:
                    connection.recv(64)
                    connection.sendall(b"HELLO\n")

            thread = threading.Thread(target=answer_wrongly)
            thread.start()
            check = _checks(run_admin, config)["service socket"]
            thread.join(10)
        finally:
            os.unlink(path)
    assert _verdict(check) == "FAIL" and "not the email2ticket service" in check["detail"], check
