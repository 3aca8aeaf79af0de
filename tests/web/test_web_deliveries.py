"""Deliveries: the audit trail with its filters and pages, each decision as stored, release and the quarantine."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from markupsafe import escape

from email2ticket.web.app import WebAdmin
from support.mail import mail
from web.webclient import Admin

Deliver = Callable[..., tuple[str, int | None, int | None]]


def test_the_audit_trail_newest_first_filtered_and_paged(
    make_web: Callable[..., WebAdmin], make_admin: Callable[..., Admin], web: WebAdmin, deliver: Deliver
) -> None:
    for n in range(3):
        deliver(mail(f"Printer {n}", sender=f"user{n}@example.org"))
    deliver(mail("Cheap pills", headers={"X-Spam-Flag": "YES"}, sender="spammer@bad.example"))
    small = make_web(page_size=2)
    admin = make_admin(small)
    first = admin.get("/messages").text
    assert first.index("Cheap pills") < first.index("Printer 2")  # newest first
    assert "Printer 1" not in first and "page 1 of 2 (4 in all)" in first
    assert "Printer 0" in admin.get("/messages?page=2").text
    held = admin.get("/messages?action=hold").text
    assert "Cheap pills" in held and "Printer" not in held and '<option value="hold" selected>' in held
    by_sender = admin.get("/messages?sender=USER1").text
    assert "Printer 1" in by_sender and "Printer 2" not in by_sender
    assert "Printer" not in admin.get("/messages?sender=%25").text  # LIKE's wildcard is taken literally
    today = datetime.now(UTC).date()
    assert "Printer 0" in admin.get(f"/messages?since={today}&until={today}&page=2").text
    assert "no message matches" in admin.get(f"/messages?since={today + timedelta(days=1)}").text
    assert "no message matches" in admin.get(f"/messages?until={today - timedelta(days=1)}").text
    bad = admin.get("/messages?since=yesterday&page=x")
    assert bad.status_code == 200 and "expected a date as YYYY-MM-DD" in bad.text


def test_a_message_page_shows_the_decision_as_stored(admin: Admin, web: WebAdmin, deliver: Deliver) -> None:
    action, ticket, row = deliver(mail("Printer jam", sender="alice@example.org"), sender="bounces@example.org")
    assert action == "create" and row is not None
    record, raw = web.state.admin.show_message(row)
    page = admin.get(f"/messages/{row}").text
    for reason in record["reasons"]:
        assert f"<code>{escape(reason)}</code>" in page
    assert "<code>known-sender: alice@example.org is not in the user table; unknown_senders=accept" in page
    assert f'href="/tickets/{ticket}"' in page
    assert "bounces@example.org" in page and "helpdesk@helpdesk.example" in page
    download = admin.get(f"/messages/{row}/raw")
    assert download.status_code == 200 and download.content == raw
    assert download.headers["content-type"] == "message/rfc822"
    assert download.headers["content-disposition"].startswith(f'attachment; filename="message-{row}.eml"')
    assert admin.get("/messages/999999").status_code == 404
    assert admin.get("/messages/99999999999999").status_code == 404


def test_html_only_mail_is_shown_as_text_never_as_html(admin: Admin, deliver: Deliver) -> None:
    body = '<html><body><p>Hello <b>there</b></p><script>alert(1)</script><img src=x onerror="alert(2)"></body></html>'
    raw = mail("<script>alert('subject')</script>", body, content_type="text/html; charset=utf-8")
    _, ticket, row = deliver(raw)
    page = admin.get(f"/messages/{row}").text
    assert "HTML-only: shown as its text conversion" in page
    assert "Hello" in page and "<b>there</b>" not in page and "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt;" in page
    listing = admin.get("/messages").text
    assert "<script>" not in listing and "&lt;script&gt;" in listing
    ticket_page = admin.get(f"/tickets/{ticket}").text
    assert "<script>" not in ticket_page and "<b>there</b>" not in ticket_page


def test_release_of_held_mail_delivers_it_and_shows_its_ticket(admin: Admin, web: WebAdmin, deliver: Deliver) -> None:
    action, _, row = deliver(mail("Urgent printer", headers={"X-Spam-Flag": "YES"}))
    assert action == "hold"
    page = admin.get(f"/messages/{row}").text
    assert f'action="/messages/{row}/release"' in page
    released = admin.post(f"/messages/{row}/release")
    assert released.status_code == 303
    new_page = admin.follow(released)
    assert f"Message {row}: released past spam-flag, delivered as message" in new_page.text
    assert "(create, ticket #1)" in new_page.text and 'href="/tickets/1"' in new_page.text
    assert web.state.admin.show_message(row)[0]["action"] == "released"
    again = admin.follow(admin.post(f"/messages/{row}/release"))
    assert f"message {row} is not held or ignored (action released)" in again.text
    assert "Urgent printer" in admin.get("/tickets/1").text


def _poison(url: str, pg: Any, on: bool) -> None:
    """A trigger that refuses one subject: a real error on the real delivery path (as tests/delivery do)."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.execute(
                "CREATE TRIGGER poison BEFORE INSERT ON tickets WHEN NEW.subject LIKE 'POISON%' "
                "BEGIN SELECT RAISE(ABORT, 'value refused for this subject'); END"
                if on
                else "DROP TRIGGER poison"
            )
        return
    pg.execute(
        """CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN IF NEW.subject LIKE 'POISON%' THEN
             RAISE EXCEPTION 'value refused for this subject' USING ERRCODE = '22000'; END IF;
           RETURN NEW; END $$;
           CREATE TRIGGER poison BEFORE INSERT ON tickets FOR EACH ROW EXECUTE FUNCTION poison();"""
        if on
        else "DROP TRIGGER poison ON tickets",
        database=url,
    )


@pytest.fixture
def pg(database_url: str, request: pytest.FixtureRequest) -> Any:
    return None if database_url.startswith("sqlite") else request.getfixturevalue("pg_admin")


def test_quarantine_replay_and_delete(
    make_web: Callable[..., WebAdmin], make_admin: Callable[..., Admin], web_url: str, pg: Any
) -> None:
    from msgspec.structs import replace

    from email2ticket.delivery.run import deliver_message
    from email2ticket.mail.envelope import Envelope
    from email2ticket.store.accounts import AccountStore
    from email2ticket.store.quarantine import QuarantineStore

    app = make_web()
    AccountStore(app.state.admin).add("admin", "correct horse battery staple")
    config = replace(app.state.config, max_attempts=1)
    _poison(web_url, pg, True)
    for subject in ("POISON one", "POISON two"):
        with app.state.delivery_store() as store:
            result = deliver_message(mail(subject), Envelope(None, None, None), store, config)
        assert result.outcome is not None and result.outcome.quarantined
    admin = make_admin(app)
    page = admin.get("/quarantine").text
    assert "POISON one" in page and "value refused for this subject" in page
    rows = [q.id for q in QuarantineStore(web_url, lock_timeout=5).entries()]
    failing = admin.follow(admin.post(f"/quarantine/{rows[0]}/replay"))
    assert f"Message {rows[0]}: still failing, left where it was" in failing.text
    _poison(web_url, pg, False)
    replayed = admin.follow(admin.post(f"/quarantine/{rows[0]}/replay"))
    assert f"Message {rows[0]}: replayed as message" in replayed.text and "(create, ticket #" in replayed.text
    deleted = admin.follow(admin.post(f"/quarantine/{rows[1]}/delete"))
    assert f"Deleted message {rows[1]} from the quarantine" in deleted.text
    assert "the quarantine is empty" in deleted.text
    assert json.loads(json.dumps(app.state.admin.list_messages(action="quarantine", since=None))) == []
