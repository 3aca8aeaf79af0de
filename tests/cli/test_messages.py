"""`email2ticket messages list --since`: an ISO date or time, or an age such as 1h; a bad value is one clear line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from email2ticket.cli.messages import parse_since

MAIL = Path(__file__).resolve().parents[1] / "fixtures" / "mail"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26", datetime(2026, 11, 26, tzinfo=UTC)),  # naive means UTC, as the store keeps it
        ("2026-11-26T08:00", datetime(2026, 11, 26, 8, 0, tzinfo=UTC)),
        ("2026-11-26 08:00:30", datetime(2026, 11, 26, 8, 0, 30, tzinfo=UTC)),
        ("2026-11-26T08:00Z", datetime(2026, 11, 26, 8, 0, tzinfo=UTC)),
        ("2026-11-26T08:00+01:00", datetime(2026, 11, 26, 7, 0, tzinfo=UTC)),  # turned into UTC
        ("90s", NOW - timedelta(seconds=90)),
        ("30m", NOW - timedelta(minutes=30)),
        ("1h", NOW - timedelta(hours=1)),
        ("2d", NOW - timedelta(days=2)),
        ("1w", NOW - timedelta(weeks=1)),
        ("0s", NOW),
    ],
)
def test_since_accepts_iso_times_and_ages(text: str, expected: datetime) -> None:
    moment = parse_since(text, NOW)
    assert moment == expected
    assert moment.utcoffset() == timedelta(0)


NOT_A_TIME = ["yesterday", "", "1", "h", "1.5h", "-1h", "1 h", "1H", "1y", "2026-13-01"]
OUT_OF_RANGE = ["99999999999w", "0001-01-01T00:00+01:00"]  # Python's datetime ends at the years 1 and 9999


@pytest.mark.parametrize("text", NOT_A_TIME + OUT_OF_RANGE)
def test_since_refuses_anything_else_naming_the_formats(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_since(text, NOW)
    expected = "expected an ISO date or time (2026-11-26, 2026-11-26T08:00) or an age (30m, 1h, 2d): "
    assert str(caught.value) == expected + repr(text)


def test_since_through_the_admin_command(run_deliver: Any, run_admin: Any, sqlite_url: str) -> None:
    delivered = run_deliver("--database-url", sqlite_url, "--json", stdin=(MAIL / "new_ticket.eml").read_bytes())
    assert delivered.returncode == 0, delivered

    def listed(since: str) -> list[int]:
        result = run_admin("--database-url", sqlite_url, "messages", "list", "--json", "--since", since)
        assert result.returncode == 0, result
        return [m["id"] for m in json.loads(result.stdout)]

    assert listed("1h") == [1]
    assert listed("2099-01-01") == []
    # Half an hour from now, written in a zone five hours behind UTC: its clock reads the past, yet nothing
    # arrived after it. (SQLite compares UTC text: the time must be turned into UTC first.)
    later = (datetime.now(UTC) + timedelta(minutes=30)).astimezone(timezone(timedelta(hours=-5)))
    assert listed(later.isoformat(timespec="seconds")) == []


def test_bad_since_is_one_line_and_exit_2(run_admin: Any, sqlite_url: str) -> None:
    result = run_admin("--database-url", sqlite_url, "messages", "list", "--since", "yesterday")
    assert result.returncode == 2, result
    assert result.stdout_text == ""
    [line] = result.stderr_text.splitlines()
    assert line.startswith("error: ") and "_timestamp" not in line and "_since" not in line
    assert line.endswith(
        "argument --since: expected an ISO date or time (2026-11-26, 2026-11-26T08:00) or an age (30m, 1h, 2d): "
        "'yesterday'"
    )
