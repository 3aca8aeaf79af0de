"""The service sends notifications that wait for a retry by itself, on a timer (`[service] retry_interval`):
before, only the next delivery retried them, and on a quiet help desk that could be hours later."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from support.desk import Desk
from support.mail import mail
from support.servers.delivery_service import StartService
from support.servers.relay import wait_for
from support.servers.smtpsink import SmtpSink

HELPDESK = "helpdesk@helpdesk.example"


def _settings(child_home: Path, sink: SmtpSink, retry_interval: float) -> dict[str, Any]:
    return {
        "logging": {"target": "none"},
        "service": {"retry_interval": retry_interval},
        "notifications": {
            "from_address": f"Help Desk <{HELPDESK}>",
            "method": "smtp",
            "smtp_host": sink.host,
            "smtp_port": sink.port,
            "timeout": 5,
            "key_file": str(child_home / "keys" / "notification-keys"),
        },
    }


def _status(desk: Desk) -> list[tuple[str, int]]:
    return [(status, attempts) for status, attempts in desk.sql("SELECT status, attempts FROM notifications")]


@pytest.mark.parametrize("retry_interval", [1, 0], ids=["timer", "no-timer"])
def test_a_notification_that_failed_once_is_sent_without_another_delivery(
    sqlite_url: str,
    run_admin: Any,
    run_deliver: Any,
    child_home: Path,
    start_service: StartService,
    smtp_sink: SmtpSink,
    retry_interval: int,
) -> None:
    """The relay refuses the acknowledgement once (451), then takes mail again; no other mail arrives. The
    failed notification's back-off (a minute) is brought forward in the table instead of waited for; then the
    service's timer sends it within a few seconds. With the timer off (retry_interval = 0) it still waits."""
    smtp_sink.data_reply = "451 4.3.0 try again later"
    settings = _settings(child_home, smtp_sink, retry_interval)
    desk = Desk(sqlite_url, run_admin, run_deliver, config=child_home / "e2t.toml", settings=settings, init=True)
    service = start_service(sqlite_url, config=desk.config, home=child_home)
    with service.lmtp() as lmtp:
        [(code, text)] = lmtp.send(mail("Printer jam", sender="alice@example.com"), "alice@example.com", [HELPDESK])
    assert code == 250, text
    assert wait_for(lambda: _status(desk) == [("failed", 1)], 30), _status(desk)

    smtp_sink.data_reply = None  # the relay is back
    desk.sql("UPDATE notifications SET next_attempt_at = :past", past="2000-01-01 00:00:00")  # the back-off is over
    if retry_interval:
        assert wait_for(lambda: _status(desk) == [("sent", 2)], 15), (_status(desk), service.log_text())
        (received,) = smtp_sink.messages
        assert received.rcpt_tos == ("alice@example.com",)
        assert b"[Ticket #1]" in received.data
    else:
        time.sleep(3)
        assert _status(desk) == [("failed", 1)] and smtp_sink.messages == []
    assert [m["action"] for m in desk.messages()] == ["create"]  # no delivery sent it
