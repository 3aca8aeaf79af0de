"""The separator search over one message has a deadline, and no separator (built-in or added) makes it crawl.

RE2 is linear in the body, but its DFA can run out of memory on a pattern whose states multiply (a counted
repetition of a character class that can start anywhere, `a[ab]{20}`), and then falls back to an engine a
hundred times slower: a 6 MB reply took 14-40 s. The search now runs in chunks and checks its deadline
between them (exits.DeadlineExceeded, which the delivery layer turns into 75), `separators add` refuses the
costly shapes it can recognise, and the built-in device taglines no longer have one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from email2ticket.exits import DeadlineExceeded
from email2ticket.mail.message import parse_message
from email2ticket.reply import pattern_cost, search
from email2ticket.reply import separators as separators_module
from email2ticket.reply.extract import DEFAULT_SEPARATORS, InvalidSeparator, extract_reply, parse_separator, strip_reply
from email2ticket.reply.pattern_cost import costly_reason
from email2ticket.reply.search import first_hit
from email2ticket.reply.separators import compiled_regex
from support.desk import Desk

SLOW = "/[ab]*a[ab]{20}c/"
MARGIN = 1.0  # seconds past the deadline: one chunk of the slowest search, on a busy two-core machine


def _lines(make: object, size: int) -> str:
    """Lines from `make()` until `size` characters, below a first line of new text."""
    assert callable(make)
    lines = ["Thanks, that fixed it."]
    total = 0
    while total < size:
        line = make()
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines) + "\n"


def _ab_reply(size: int = 6_000_000) -> bytes:
    """A reply whose body is random lines of a and b: every position may start `a[ab]{20}`."""
    rnd = random.Random(7)
    body = _lines(lambda: "".join(rnd.choice("ab") for _ in range(rnd.randint(20, 70))), size)
    head = "From: alice@example.com\nTo: help@example.com\nSubject: Re: printer [Ticket #1]\n\n"
    return (head + body).encode()


@pytest.fixture
def unchecked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if the cost check could not recognise SLOW (it is a best effort): only the deadline is left."""
    monkeypatch.setattr(pattern_cost, "costly_reason", lambda *_args: None)  # separators.py imports it when used
    separators_module.parsed.cache_clear()
    yield
    separators_module.parsed.cache_clear()


@pytest.mark.usefixtures("unchecked")
def test_a_slow_separator_stops_at_the_deadline() -> None:
    message = parse_message(_ab_reply())
    separators = [*DEFAULT_SEPARATORS, SLOW]
    started = time.monotonic()
    deadline = started + 1.0
    with pytest.raises(DeadlineExceeded):
        extract_reply(message, separators, deadline=deadline)
    assert time.monotonic() - deadline < MARGIN


def test_a_deadline_already_past_stops_before_searching() -> None:
    message = parse_message(b"From: a@example.com\nSubject: Re: x\n\nnew text\n-----Original Message-----\nold\n")
    with pytest.raises(DeadlineExceeded):
        extract_reply(message, DEFAULT_SEPARATORS, deadline=time.monotonic() - 1)


def test_the_deadline_is_not_an_exception_a_fallback_can_swallow() -> None:
    """`except Exception` around a separator (search.py skips broken ones) must let it through."""
    assert not issubclass(DeadlineExceeded, Exception)


def test_without_a_deadline_the_cut_is_the_same() -> None:
    raw = b"From: a@example.com\nSubject: Re: x\n\nnew text\n\n-----Original Message-----\nold\n"
    assert extract_reply(parse_message(raw), DEFAULT_SEPARATORS).text == "new text"
    far = time.monotonic() + 60
    assert extract_reply(parse_message(raw), DEFAULT_SEPARATORS, deadline=far).text == "new text"


def test_adversarial_tagline_lines_are_fast_with_the_built_in_list() -> None:
    """Lines that look like "Sent from <device><device>..." but never end like one made the built-in taglines'
    DFA blow up: 2 MB took 20 s with nothing but the built-in list, and no admin separator needed."""
    rnd = random.Random(3)
    body = _lines(lambda: "Sent from " + "".join(rnd.choice(("LG", "xx")) for _ in range(20)) + ",", 2_000_000)
    started = time.monotonic()
    cut = strip_reply(body, DEFAULT_SEPARATORS)
    assert time.monotonic() - started < 2.0
    assert cut.separator is None


@pytest.mark.parametrize(
    "line",
    [
        "Sent from my iPhone",
        "Sent from my Samsung Galaxy smartphone.",
        "Sent from Yahoo Mail on Android",
        "Sent from Mail for Windows 10",
        "Envoyé de mon iPhone 12 Pro",
        "Von meinem iPad gesendet",
    ],
)
def test_taglines_still_cut(line: str) -> None:
    cut = strip_reply(f"Works now.\n\n{line}\n\n> old text\n", DEFAULT_SEPARATORS)
    assert cut.text == "Works now."


# --- chunks: the same earliest match as one search over the whole body ----------------------------------------


def _whole(data: bytes, separators: list[str]) -> int | None:
    hit = first_hit(data, separators, [])
    return None if hit is None else hit.offset


@pytest.mark.parametrize("at", [0, 1, 7, 4093, 4096, 4100, 8190, 12000])
def test_a_match_across_a_chunk_boundary_is_found(monkeypatch: pytest.MonkeyPatch, at: int) -> None:
    """A header block that starts in one chunk and ends in the next is still found, at its first line."""
    monkeypatch.setattr(search, "CHUNK", 4096)
    monkeypatch.setattr(search, "FIRST_CHUNK", 4096)
    monkeypatch.setattr(search, "MIN_CHUNK", 4096)
    filler = "".join(f"line {n} of the new text\n" for n in range(2000))[:at]
    block = "From: Bob <bob@example.com>\nSent: Monday, 5 January 2026 10:00\nTo: help\nSubject: x\n\nold\n"
    data = (filler + "\n" + block + filler).encode()
    hit = first_hit(data, list(DEFAULT_SEPARATORS), [])
    assert hit is not None
    assert data[hit.offset :].startswith(b"From: Bob")


def test_chunked_search_agrees_with_the_first_line_that_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "CHUNK", 4096)
    monkeypatch.setattr(search, "FIRST_CHUNK", 4096)
    monkeypatch.setattr(search, "MIN_CHUNK", 4096)
    rnd = random.Random(5)
    for _ in range(20):
        lines = [f"text line {n} {'x' * rnd.randint(0, 80)}" for n in range(rnd.randint(50, 600))]
        target = rnd.randrange(len(lines))
        lines.insert(target, "On Mon, 5 Jan 2026 at 10:00, Bob <bob@example.com> wrote:")
        data = ("\n".join(lines) + "\n").encode()
        expected = len(("\n".join(lines[:target]) + "\n").encode()) if target else 0
        assert _whole(data, [*DEFAULT_SEPARATORS, "/^zzz/"]) == expected


# --- `separators add` refuses the costly shapes it can recognise -------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        SLOW,
        "/a[ab]{20}c/",
        "/:[^\\n]{20,}/",
        "/a(?:[ab][ab]){12}c/",
        "/[^\\n]*x[^\\n]{30}y/",
    ],
)
def test_costly_patterns_are_refused(text: str) -> None:
    with pytest.raises(InvalidSeparator, match="costly"):
        parse_separator(text)


@pytest.mark.parametrize(
    "text",
    [
        "/^-{20,}$/",
        "/^_{32}$/",
        "/^[ \\t>]*Von:[^\\n]{0,80}$/",
        "/^On .{0,200} wrote:$/",
        "/[ab]*[ab]{20}c/",  # no fixed text between the loop and the count: the threads stay in step
        "/<[^<>\\n]+>[^<>\\n]{0,60}:$/",  # the counted class cannot read the `>` before it: one thread at a time
        "/ticket #[0-9]{1,9}/",
        "/x(?:[ab][ab]){12}y/",  # reading the next `x` ends every thread: one at a time
    ],
)
def test_ordinary_patterns_are_accepted(text: str) -> None:
    assert parse_separator(text).is_regex


def test_every_built_in_separator_passes_the_cost_check() -> None:
    """Deliveries skip the check for the built-in list (it costs 250 ms over all of it): it is done here."""
    for text in DEFAULT_SEPARATORS:
        separator = parse_separator(text)
        if separator.is_regex:
            size = getattr(compiled_regex(separator.pattern), "programsize", None)
            assert costly_reason(separator.pattern, size) is None, text


def test_a_costly_stored_separator_is_skipped_with_its_reason() -> None:
    """One stored before this check existed: delivery skips it (and says why) instead of crawling."""
    cut = strip_reply("new\n-----Original Message-----\nold\n", [*DEFAULT_SEPARATORS, SLOW])
    assert cut.text == "new"
    assert any(SLOW in note and "costly" in note for note in cut.skipped)


def test_refused_with_a_clear_error() -> None:
    with pytest.raises(InvalidSeparator) as caught:
        parse_separator(SLOW)
    message = str(caught.value)
    assert message.startswith(f"The regular expression '{SLOW}' is too costly")
    assert "[ab]{20}" in message


def test_separators_add_refuses_it_through_the_admin_command(run_admin: Any, sqlite_url: str) -> None:
    assert run_admin("--database-url", sqlite_url, "init").returncode == 0
    result = run_admin("--database-url", sqlite_url, "separators", "add", SLOW)
    assert result.returncode == 1, result
    [line] = result.stderr_text.splitlines()
    assert line.startswith(f"error: The regular expression '{SLOW}' is too costly to search in every mail: "), line
    assert "[ab]{20}" in line
    listed = run_admin("--database-url", sqlite_url, "separators", "list", "--json")
    assert SLOW not in [item["text"] for item in listed.json]
    tried = run_admin("--database-url", sqlite_url, "separators", "test", "--add", SLOW, stdin=b"Subject: x\n\nhi\n")
    assert tried.returncode == 1, tried
    assert "too costly" in tried.stderr_text


def test_a_reply_of_adversarial_tagline_lines_is_delivered_in_time(
    sqlite_url: str, run_admin: Any, run_deliver: Any, child_home: Path
) -> None:
    """The built-in taglines' hole through the real pipe: before, this reply ran past delivery_timeout (75)."""
    desk = Desk(sqlite_url, run_admin, run_deliver, config=child_home / "e2t.toml", settings={"delivery_timeout": 10})
    new = b"From: alice@example.com\nSubject: Printer jam\nMessage-ID: <t1@example.com>\n\nIt broke.\n"
    assert desk.deliver_ok(new)["action"] == "create"
    rnd = random.Random(3)
    body = _lines(lambda: "Sent from " + "".join(rnd.choice(("LG", "xx")) for _ in range(20)) + ",", 2_000_000)
    head = "From: alice@example.com\nSubject: Re: Printer jam [Ticket #1]\nMessage-ID: <t2@example.com>\n\n"
    started = time.monotonic()
    result = desk.deliver((head + body).encode())
    assert result.returncode == 0, result
    assert result.json["action"] == "update"
    assert time.monotonic() - started < 10  # the search alone took 20 s
