"""Fuzzing the subject functions: any text, however long or strange, is read without raising and within a budget.

find_ticket_reference, has_reply_prefix, strip_prefixes and clean_subject run on every delivered mail's decoded
subject, which the sender chooses: megabytes of prefixes, digits in every script, brackets that never close,
control characters, lone surrogates. Beyond "never raises, always in time", the properties a delivery relies on:
a reference is a ticket number (1 to 999999999) that the subject really ends with; appending a reference always
wins; a reply prefix is seen whatever follows it; a new ticket's title is never empty and is one clean line.

Fixed examples (derandomize=True); FUZZ_EXAMPLES raises their number, FUZZ_SHRINK=1 shrinks a failure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from email2ticket.config.rule_settings import DEFAULT_FORWARD_PREFIXES, DEFAULT_REPLY_PREFIXES
from email2ticket.mail.subject import clean_subject, find_ticket_reference, has_reply_prefix, strip_prefixes

BUDGET = 2.0  # seconds per example, on a busy two-core machine
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150")) * 2  # each example is cheap
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=tuple(Phase) if os.environ.get("FUZZ_SHRINK") else (Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def timed(call: Callable[[], Any]) -> Any:
    started = time.monotonic()
    result = call()
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET, f"took {elapsed:.2f} s (budget {BUDGET} s)"
    return result


# Pieces subjects are made of: prefixes in many languages, references and near-references, digits of other
# scripts, brackets, whitespace of every kind, and characters no subject should have.
PIECES = [
    *DEFAULT_REPLY_PREFIXES,
    *DEFAULT_FORWARD_PREFIXES,
    ":",
    "：",
    "[2]",
    "(3)",
    " ",
    "\t",
    "\n",
    "\u00a0",
    "\u3000",
    "#",
    "Ticket",
    "ticket#",
    "[Ticket #42]",
    "(#7)",
    "<123456789>",
    "#0",
    "1234567890",
    "42",
    "٤٢",
    "４２",
    "[",
    "]",
    "(",
    ")",
    "<",
    ">",
    "jam-42",
    "E42",
    "\x00",
    "\x1b[2J",
    "\ud800",
    "\U0001f600",
]
subjects = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=5)), max_size=60).map("".join),
    st.builds(
        lambda piece, n, tail: piece * n + tail, st.sampled_from(PIECES), st.integers(0, 20_000), st.text(max_size=20)
    ),
)
prefix_lists = st.one_of(
    st.just(DEFAULT_REPLY_PREFIXES),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=12).map(tuple),
)


@FUZZ
@given(subjects, st.booleans())
def test_a_reference_is_a_ticket_number_the_subject_ends_with(subject: str, bare_numbers: bool) -> None:
    number = timed(lambda: find_ticket_reference(subject, bare_numbers=bare_numbers))
    if number is not None:
        assert isinstance(number, int) and 1 <= number <= 999_999_999
        assert str(number) in subject.rstrip()[-24:]  # its digits ("#0042" is 42) are among the last characters
        assert find_ticket_reference(subject, bare_numbers=True) == number  # bare numbers only ever add


@FUZZ
@given(subjects, st.booleans(), st.integers(1, 999_999_999))
def test_an_appended_reference_always_wins(subject: str, bare_numbers: bool, number: int) -> None:
    for text in (f"{subject} [Ticket #{number}]", f"{subject} #{number}", f"{subject} (Ticket {number})  "):
        assert timed(lambda text=text: find_ticket_reference(text, bare_numbers=bare_numbers)) == number


@FUZZ
@given(subjects, prefix_lists)
def test_prefixes_never_raise_and_a_reply_prefix_is_seen(subject: str, prefixes: tuple[str, ...]) -> None:
    timed(lambda: has_reply_prefix(subject, prefixes))
    stripped = timed(lambda: strip_prefixes(subject, prefixes))
    assert isinstance(stripped, str) and len(stripped) <= len(subject)
    assert subject.endswith(stripped)
    assert has_reply_prefix("Re: " + subject) and has_reply_prefix("AW: RE: " + subject)


@FUZZ
@given(subjects, prefix_lists, st.booleans())
def test_a_new_ticket_title_is_one_clean_line(subject: str, prefixes: tuple[str, ...], bare_numbers: bool) -> None:
    title = timed(lambda: clean_subject(subject, reply_prefixes=prefixes, bare_numbers=bare_numbers))
    assert isinstance(title, str) and title
    assert title == " ".join(title.split())  # one line: no newline, no run of spaces, nothing around it
    default = timed(lambda: clean_subject(subject, bare_numbers=bare_numbers))
    assert default and "\n" not in default
