"""The overview (chart, counts, doctor) and the Outgoing Notifications tab (queue, retry, unblock, test mail)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert

from email2ticket.config.model import NotificationsConfig
from email2ticket.outbound.keys import create_keyring
from email2ticket.store import schema
from email2ticket.store.accounts import AccountStore
from email2ticket.web.app import WebAdmin
from email2ticket.web.chart import css_class, hourly_chart
from support.mail import mail
from support.servers.smtpsink import SmtpSink
from web.webclient import PASSWORD, Admin

Deliver = Callable[..., tuple[str, int | None, int | None]]


def test_chart_stacks_actions_per_hour() -> None:
    now = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    counts = [("2026-12-01 10", "create", 3), ("2026-12-01 10", "hold", 1), ("2026-12-01 09", "update", 2)]
    counts += [("2026-11-20 10", "create", 99), ("2026-12-01 10", "weird<action>", 1)]  # too old; unknown action
    chart = hourly_chart(counts, now, hours=24)
    assert chart.total == 7
    assert [(a, n) for a, _, n in chart.legend] == [("create", 3), ("update", 2), ("hold", 1), ("weird<action>", 1)]
    last_hour = [b for b in chart.bars if b.label.startswith("2026-12-01 10:00")]
    assert [b.action for b in last_hour] == ["create", "hold", "weird<action>"]
    assert last_hour[0].height == pytest.approx(3 * last_hour[1].height)  # one scale for every bar
    assert min(b.y for b in chart.bars) >= 0 and [t.label for t in chart.y_ticks] == ["0", "5", "10"]
    assert css_class("weird<action>") == "act-weirdaction"
    assert [t.label for t in chart.x_ticks] == ["Tue 01"]
    assert hourly_chart([], now).bars == []


def test_overview_counts_chart_and_doctor(admin: Admin, deliver: Deliver) -> None:
    deliver(mail("Printer jam"))
    deliver(mail("Pills", headers={"X-Spam-Flag": "YES"}))
    page = admin.get("/").text
    assert '<a class="count warn" href="/messages?action=hold"><strong>1</strong> held</a>' in page
    assert '<svg class="chart"' in page and page.count('<rect class="bar act-') == 2
    assert ": 1 create</title>" in page and ": 1 hold</title>" in page
    for check in ("configuration", "database", "schema"):
        assert f"<td>{check}</td>" in page
    assert "<script" not in page
    rerun = admin.follow(admin.post("/doctor"))
    assert "Checks run again:" in rerun.text


def test_notifications_queue_retry_unblock_and_test_mail(
    make_web: Callable[..., WebAdmin], make_admin: Callable[..., Admin], smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys"
    create_keyring(key_file)
    notifications = NotificationsConfig(
        from_address="Help Desk <helpdesk@helpdesk.example>",
        method="smtp",
        smtp_host=smtp_sink.host,
        smtp_port=smtp_sink.port,
        key_file=str(key_file),
        timeout=5,
    )
    app = make_web(notifications=notifications)
    AccountStore(app.state.admin).add("admin", PASSWORD)
    from email2ticket.delivery.run import deliver_message
    from email2ticket.mail.envelope import Envelope

    with app.state.delivery_store() as store:  # queued, not sent: the pipe would send it after the commit
        result = deliver_message(mail("Printer jam", sender="alice@example.org"), Envelope(), store, app.state.config)
        assert result.outcome is not None and result.outcome.notifications
        with store.engine.begin() as connection:
            connection.execute(
                insert(schema.bounced_addresses).values(
                    address="gone@example.org", status="5.1.1", reason="user unknown", created_at=datetime.now(UTC)
                )
            )
    admin = make_admin(app)
    page = admin.get("/notifications?status=pending").text
    assert "alice@example.org" in page and "acknowledgement" in page
    assert "Notifications are <strong>on</strong>." in page and "<th>smtp_port</th>" in page
    row = result.outcome.notifications[0].id
    retried = admin.follow(admin.post(f"/notifications/{row}/retry"))
    assert f"Notification {row}: 1 sent, 0 failed." in retried.text
    assert [m.rcpt_tos for m in smtp_sink.new_messages()] == [("alice@example.org",)]
    assert "gone@example.org" in retried.text
    unblocked = admin.follow(admin.post("/notifications/unblock", {"address": "gone@example.org"}))
    assert "gone@example.org will be notified again." in unblocked.text and "no address is blocked" in unblocked.text
    tested = admin.follow(admin.post("/notifications/test", {"recipient": "admin@example.org"}))
    assert "A test notification to admin@example.org was handed to the MTA" in tested.text
    (sent,) = smtp_sink.new_messages()
    assert sent.rcpt_tos == ("admin@example.org",) and b"Subject: email2ticket test notification" in sent.data
    assert b"X-Email2ticket-Loop: helpdesk.example" in sent.data
    bad = admin.follow(admin.post("/notifications/test", {"recipient": "not an address"}))
    assert "The test notification was not sent: cannot notify" in bad.text


def test_notifications_off(admin: Admin) -> None:
    page = admin.get("/notifications").text
    assert "Notifications are <strong>off</strong>." in page and '<button type="submit" disabled>' in page
    refused = admin.follow(admin.post("/notifications/test", {"recipient": "a@example.org"}))
    assert "Notifications are off" in refused.text
    retry = admin.follow(admin.post("/notifications/1/retry"))
    assert "Notifications are not configured" in retry.text
