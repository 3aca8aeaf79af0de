"""Hostile mail through the real executable and the real service: bounded cost, held not refused.

Each test is a finding of the hostile-mail review, which failed before the limits and deadlines: tiny
MIME parts by the ten thousand, a From: with 100,000 addresses and 20,000-deep nesting became tickets
after seconds to minutes of CPU; a deadline was swallowed by the parser's fallbacks and never counted,
so the MTA retried the message for days; the service's threads could be tied up by four such messages.
Timings are the benchmark's (bench/hostile.py); these tests assert what happens.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from support.desk import Desk, MakeDesk
from support.executables import DELIVER
from support.run import Runner


@pytest.fixture
def make_desk(sqlite_url: str, run_admin: Runner, run_deliver: Runner, child_home: Path) -> MakeDesk:
    """SQLite only: what these tests exercise (the parser's limits and deadlines) does not depend on the
    database, and each hostile message costs seconds to build and deliver."""

    def factory(settings: dict[str, Any] | None = None, **options: Any) -> Desk:
        if settings is not None:
            options.setdefault("config", child_home / "email2ticket.toml")
        return Desk(sqlite_url, run_admin, run_deliver, settings=settings, **options)

    return factory


@pytest.fixture
def desk(make_desk: MakeDesk) -> Desk:
    return make_desk()


def tiny_parts(n: int, tag: str = "parts") -> bytes:
    head = (
        f"From: carol@example.com\nSubject: Invoice\nMessage-ID: <{tag}-{n}@example.com>\nMIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=B\n\n"
    ).encode()
    return head + b"".join(b"--B\n\np%d\n" % i for i in range(n)) + b"--B--\n"


def many_addresses(n: int) -> bytes:
    return (
        b"From: " + b", ".join(b"u%d@example.net" % i for i in range(n)) + b"\nSubject: Hello\n"
        b"Message-ID: <addresses@example.com>\n\nhello\n"
    )


def deep_nesting(levels: int) -> bytes:
    out = b"From: carol@example.com\nSubject: Deep\nMessage-ID: <deep@example.com>\nMIME-Version: 1.0\n"
    out += b"Content-Type: multipart/mixed; boundary=b0\n\n"
    out += b"".join(b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i - 1, i) for i in range(1, levels))
    return out + b"--b%d\n\nleaf\n" % (levels - 1)


@pytest.mark.parametrize(
    ("build", "limit"),
    [
        (lambda: tiny_parts(50_000), "max_mime_parts"),
        (lambda: many_addresses(100_000), "max_addresses_per_header"),
        (lambda: deep_nesting(20_000), "max_mime_depth"),
    ],
    ids=["50000-parts", "100000-addresses", "20000-deep"],
)
def test_a_message_over_a_limit_is_held_not_turned_into_a_ticket(desk: Desk, build: Any, limit: str) -> None:
    result = desk.deliver(build())
    assert result.returncode == 0, result
    outcome = result.json
    assert outcome["action"] == "hold" and outcome["ticket"] is None
    held = next(reason for reason in outcome["reasons"] if reason.startswith("message-limits: "))
    assert limit in held
    assert desk.tickets() == []
    (message,) = desk.messages("hold")
    raw = desk.admin("messages", "show", str(message["id"]), "--raw").stdout
    assert raw == build()  # kept whole in the audit trail


def test_a_redelivered_held_message_is_a_duplicate(desk: Desk) -> None:
    assert desk.deliver_ok(tiny_parts(5000))["action"] == "hold"
    assert desk.deliver_ok(tiny_parts(5000))["action"] == "duplicate"
    assert len(desk.messages("hold")) == 1


def test_release_delivers_what_the_limits_allow_with_a_note(desk: Desk) -> None:
    assert desk.deliver_ok(tiny_parts(1500))["action"] == "hold"
    (held,) = desk.messages("hold")
    released = desk.admin("messages", "release", str(held["id"]))
    assert "released past message-limits" in released.stdout_text
    (ticket,) = desk.tickets()
    shown = desk.ticket(ticket["id"])
    assert len(shown["attachments"]) == 500  # max_attachments of the first 1,000 parts
    notes = desk.sql("SELECT kind, body FROM notes WHERE ticket_id = :t", t=ticket["id"])
    assert [kind for kind, _ in notes] == ["limits"]
    assert "max_mime_parts" in notes[0][1] and "messages show" in notes[0][1]


def test_raised_limits_take_the_message_whole(make_desk: MakeDesk) -> None:
    desk = make_desk({"limits": {"max_mime_parts": 3000, "max_attachments": 3000}})
    outcome = desk.deliver_ok(tiny_parts(2000))
    assert outcome["action"] == "create"
    assert len(desk.ticket(outcome["ticket"])["attachments"]) == 1999  # the first part is the body


def test_a_bad_limit_setting_defers(make_desk: MakeDesk) -> None:
    desk = make_desk({"limits": {"max_mime_parts": 0}}, init=False)
    result = desk.deliver(tiny_parts(3))
    assert result.returncode == 75, result
    assert "limits.max_mime_parts must be a positive integer" in result.stderr_text


def slow_html(size: int, tag: str) -> bytes:
    """An HTML-only new ticket whose conversion to text takes seconds: work on the message itself."""
    body = b"".join(b"<div><p>para %d <b>bold</b> text</p></div>\n" % i for i in range(size // 40))
    return (
        (
            f"From: carol@example.com\nSubject: Slow {tag}\nMessage-ID: <slow-{tag}@example.com>\n"
            "Content-Type: text/html\n\n"
        ).encode()
        + b"<html><body>"
        + body
        + b"</body></html>\n"
    )


@pytest.mark.slow
def test_running_out_of_time_on_the_message_counts_and_quarantines(make_desk: MakeDesk) -> None:
    """The deadline reaches the parser and the HTML conversion (it used to be swallowed by their fallbacks),
    and it counts toward max_attempts: the MTA is told 0 at the last attempt instead of retrying for days."""
    desk = make_desk({"delivery_timeout": 2, "max_attempts": 2})
    desk.admin("init")
    raw = slow_html(8 * 1024 * 1024, "a")
    first = desk.deliver(raw)
    assert first.returncode == 75, first
    assert "attempt 1 of 2 before quarantine" in first.stderr_text
    assert "while working on the message" in first.stderr_text
    second = desk.deliver(raw)
    assert second.returncode == 0, second
    assert second.json["action"] == "quarantine"
    assert desk.tickets() == []


def test_the_watchdog_ends_a_pipe_stuck_in_a_c_call() -> None:
    """A C call holds the main thread past the alarm: the watchdog writes the status line and exits 75."""
    code = textwrap.dedent(
        """
        import time
        from email2ticket.delivery.deadline import Watchdog
        with Watchdog(0.2):
            time.sleep(30)  # a C call: no Python signal handler runs until it returns
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=20)
    assert result.returncode == 75
    assert result.stderr.startswith(b"4.3.0 delivery took longer than delivery_timeout (0.2 s)")


def test_hostile_messages_do_not_stall_the_service(desk: Desk, start_service: Any, child_home: Any) -> None:
    """Four 50,000-part messages at once in a 4-thread service, and an ordinary mail: all answered, none 75."""
    service = start_service(desk.url, threads=4, home=child_home)
    results: dict[str, Any] = {}

    def send(name: str, raw: bytes) -> None:
        argv = [sys.executable, "-IS", str(DELIVER), "--database-url", desk.url, "--socket", str(service.socket)]
        argv += ["--fallback", "tempfail", "--json"]
        results[name] = subprocess.run(argv, input=raw, capture_output=True, timeout=120)

    threads = [threading.Thread(target=send, args=(f"h{i}", tiny_parts(50_000, f"h{i}"))) for i in range(4)]
    for thread in threads:
        thread.start()
    ordinary = b"From: dave@example.com\nSubject: Printer jam\nMessage-ID: <jam@example.com>\n\nIt jams.\n"
    send("ordinary", ordinary)
    for thread in threads:
        thread.join()
    assert {name: r.returncode for name, r in results.items()} == {"h0": 0, "h1": 0, "h2": 0, "h3": 0, "ordinary": 0}
    assert b'"action":"create"' in results["ordinary"].stdout
    assert all(b'"action":"hold"' in results[f"h{i}"].stdout for i in range(4))
