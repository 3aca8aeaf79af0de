"""SIGHUP reloads the service's configuration (service/reload.py): no socket closes, no message is dropped, the
changed settings apply to the next deliveries, and what needs a restart is named in the service's log."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from support.desk import Desk
from support.executables import start_deliver
from support.mail import mail
from support.servers.delivery_service import ServiceProcess, StartService
from support.servers.relay import wait_for

HELPDESK = "helpdesk@helpdesk.example"
RELOADED = "configuration reloaded from"


def _pipe_args(service: ServiceProcess, desk: Desk) -> tuple[str, ...]:
    """Through the service only: 75, not a standalone delivery, should it not take a message."""
    return (*desk.options(), "--socket", str(service.socket), "--fallback", "tempfail", "--recipient", HELPDESK)


def _deliver(home: Path, args: tuple[str, ...], raw: bytes) -> tuple[int, str]:
    process = start_deliver(home, *args, stdin=raw)
    code = process.wait(120)
    assert process.stderr is not None
    return code, process.stderr.read().decode(errors="replace")


def _hangup(service: ServiceProcess, before: int, lines: int) -> None:
    """SIGHUP, then wait until `lines` more processes logged their reload (the supervisor and each worker)."""
    os.kill(service.pid, signal.SIGHUP)
    assert wait_for(lambda: service.log_text().count(RELOADED) >= before + lines, 30), service.log_text()


def test_sighup_during_a_burst_drops_nothing_and_a_changed_setting_takes_effect(
    sqlite_url: str, run_admin: Any, run_deliver: Any, child_home: Path, start_service: StartService
) -> None:
    desk = Desk(sqlite_url, run_admin, run_deliver, config=child_home / "e2t.toml", settings={}, init=True)
    desk.configure(logging={"target": "none"})
    service = start_service(sqlite_url, config=desk.config, home=child_home, workers=2, threads=2)
    args = _pipe_args(service, desk)

    # A burst of 30 deliveries at once, with a SIGHUP every few: each is answered 0 and lands once.
    burst = []
    for n in range(30):
        burst.append(start_deliver(child_home, *args, stdin=mail(f"Burst {n:02d}", sender=f"b{n}@example.com")))
        if n % 6 == 3:
            os.kill(service.pid, signal.SIGHUP)
    outcomes = [(process.wait(120), process.stderr.read() if process.stderr else b"") for process in burst]
    assert [code for code, _ in outcomes] == [0] * 30, outcomes
    assert [m["action"] for m in desk.messages()] == ["create"] * 30 and len(desk.tickets()) == 30
    # Five SIGHUPs, five reloads of the supervisor, unless two came so close together (while it started, or
    # before a worker's event loop ran the first) that one reload took both: that is a reload all the same.
    assert wait_for(lambda: service.log_text().count(f"serve: {RELOADED}") >= 3, 30), service.log_text()
    assert service.process is not None and service.process.poll() is None

    # A changed setting applies to the next deliveries in every worker: max_message_bytes lowered to 3000.
    big = mail("Log attached", body=("x" * 70 + "\n") * 100, sender="carol@example.com")
    assert _deliver(child_home, args, big)[0] == 0
    desk.configure(logging={"target": "none"}, max_message_bytes=3000, service={"threads": 3})
    _hangup(service, service.log_text().count(RELOADED), 3)
    log = service.log_text()
    assert "changed but applied only by a restart: service.threads" in log
    for n in range(4):  # the two workers take turns at the socket: both must refuse it
        code, err = _deliver(child_home, args, mail(f"Log {n}", body=("x" * 70 + "\n") * 100, sender="dan@example.com"))
        assert (code, err.partition(" ")[0]) == (65, "5.3.4"), err
    assert _deliver(child_home, args, mail("Small", sender="erin@example.com"))[0] == 0

    # A file that no longer parses changes nothing: the service goes on as it was.
    desk.config.write_text("max_message_bytes = [\n")
    before = service.log_text().count("reload refused")
    os.kill(service.pid, signal.SIGHUP)
    assert wait_for(lambda: service.log_text().count("reload refused") >= before + 3, 30), service.log_text()
    assert _deliver(child_home, args, mail("Still here", sender="fay@example.com"))[0] == 0
    code, err = _deliver(child_home, args, mail("Log again", body=("x" * 70 + "\n") * 100, sender="gus@example.com"))
    assert code == 65, err
