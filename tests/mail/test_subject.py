"""Ticket references, reply/forward prefixes and new-ticket titles read from a (decoded) subject."""

from __future__ import annotations

import time

import pytest

from email2ticket.config.rule_settings import DEFAULT_FORWARD_PREFIXES, DEFAULT_REPLY_PREFIXES
from email2ticket.mail.subject import clean_subject, find_ticket_reference, has_reply_prefix, strip_prefixes


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Printer jam 42", 42),
        ("RE: Printer jam #42", 42),
        ("Re: Printer jam [Ticket #42]", 42),
        ("Printer jam (#42)", 42),
        ("42", 42),
        ("#42", 42),
        ("[#42]", 42),
        ("Ticket#42", 42),
        ("Ticket 42", 42),
        ("Ticket #42", 42),
        ("ticket 42", 42),
        ("TICKET#42", 42),
        ("<Ticket 42>", 42),
        ("(Ticket 42)", 42),
        ("[Ticket#42]", 42),
        ("Ticket 0042", 42),
        ("#123456789", 123456789),
        ("Printer jam [#42]  \n\t", 42),  # trailing whitespace of a folded header
        ("Printer jam\t#42", 42),
        ("Printer jam ##42", 42),  # "#" may precede the number
        ("Printer jam [42", 42),  # "[" may precede a bare number (the literal rule)
    ],
)
def test_reference_found(subject: str, expected: int) -> None:
    assert find_ticket_reference(subject) == expected


@pytest.mark.parametrize(
    "subject",
    [
        "jam-42",
        "Error E42",
        "Ticket 42 follow-up",
        "#42.",
        "1234567890",  # ten digits
        "#1234567890",
        "Printer jam 42]",  # closer without its opener
        "Printer jam [#42)",  # mismatched pair
        "Printer jam[#42]",  # the bracketed token does not stand on its own
        "#0",  # ids start at 1
        "Ticket #000",
        "[#0]",
        "Printer jam #٤٢",  # Arabic-Indic digits are not ticket numbers
        "Printer jam #４２",  # nor are full-width ones
        "",
        "   ",
        "No number here",
        "MyTicket#",
    ],
)
def test_reference_refused(subject: str) -> None:
    assert find_ticket_reference(subject) is None


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Room 101", None),
        ("Room #101", 101),
        ("Re: x [Ticket 7]", 7),
        ("Re: x Ticket7", 7),
        ("Re: x [7]", None),
        ("Printer jam 42", None),
        ("Printer jam (#42)", 42),
        ("Printer jam x#42", None),  # "#42" is glued to the word before it
    ],
)
def test_reference_without_bare_numbers(subject: str, expected: int | None) -> None:
    assert find_ticket_reference(subject, bare_numbers=False) == expected


def test_reference_long_subject_is_fast() -> None:
    """The search is anchored at the end: a 100 KB subject must not cost more than a short one."""
    hostile = "1 " * 50_000 + "[Ticket #" * 1000 + "x"
    started = time.perf_counter()
    assert find_ticket_reference(hostile) is None
    assert find_ticket_reference("a " * 50_000 + "#42") == 42
    assert find_ticket_reference("#" * 100_000 + "42" + " " * 100_000) == 42
    assert time.perf_counter() - started < 2.0  # milliseconds in practice; a backtracking regex takes minutes


@pytest.mark.parametrize(
    "subject",
    [
        "Re: Printer",
        "RE: Printer",
        "re:Printer",
        "  Re: leading whitespace",
        "AW: Drucker",
        "SV: Skrivare",
        "VS: Tulostin",
        "Antw: Printer",
        "RIF: Stampante",
        "R: Stampante",
        "Res: Impressora",
        "Odp: Drukarka",
        "YNT: Yazıcı",
        "回复：打印机",  # full-width colon
        "回复: 打印机",
        "答复：打印机",
        "Re：full-width colon",
        "Re[2]: counted",
        "RE(3): counted",
        "Re: RE: repeated",
        "Re: Fwd: mixed",
    ],
)
def test_reply_prefix(subject: str) -> None:
    assert has_reply_prefix(subject)


@pytest.mark.parametrize(
    "subject",
    [
        "Regarding the printer",
        "Rx: prescription",  # "R:" is a prefix, "Rx:" is not
        "Re : space before the colon",
        "Fwd: Re: a forward first",
        "Printer Re: not at the start",
        "Re",
        "",
        "Re[x]: not a counter",
        "RE2: not a counter either",
    ],
)
def test_not_reply_prefix(subject: str) -> None:
    assert not has_reply_prefix(subject)


def test_reply_prefix_custom_list() -> None:
    assert has_reply_prefix("Svar: x", ["Svar"])
    assert not has_reply_prefix("Re: x", ["Svar"])
    assert not has_reply_prefix("Re: x", [])
    assert has_reply_prefix("Svar: x", ["Svar:"])  # a colon typed into the configuration is tolerated
    assert not has_reply_prefix("Re: x", [":", " "])


_ALL_PREFIXES = (*DEFAULT_REPLY_PREFIXES, *DEFAULT_FORWARD_PREFIXES)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: AW: Fwd: Printer", "Printer"),
        ("Re:AW:Fwd:Printer", "Printer"),
        ("RE: RE: RE: Printer", "Printer"),
        ("Re[2]: FW(3): Printer", "Printer"),
        ("  Re:\n\tFwd: folded", "folded"),
        ("回复：转发：打印机", "打印机"),
        ("WG: TR: RV: Doorst: VB: PD: ENC: I: x", "x"),
        ("Printer Re: not a prefix", "Printer Re: not a prefix"),
        ("  no prefix", "  no prefix"),
        ("Re: ", ""),
        ("Rx: y", "Rx: y"),
    ],
)
def test_strip_prefixes(subject: str, expected: str) -> None:
    assert strip_prefixes(subject, _ALL_PREFIXES) == expected


def test_strip_prefixes_only_the_given_ones() -> None:
    assert strip_prefixes("Re: Fwd: x", DEFAULT_REPLY_PREFIXES) == "Fwd: x"
    assert strip_prefixes("Re: x", []) == "Re: x"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Printer jam [Ticket #42]", "Printer jam"),
        ("RE: AW: Fwd: Printer jam #42", "Printer jam"),
        ("Printer jam 42", "Printer jam"),
        ("Printer jam (#42)", "Printer jam"),
        ("Printer\r\n\tjam   on   floor 3 <Ticket 42>", "Printer jam on floor 3"),
        ("Re: Printer jam 42]", "Printer jam 42]"),  # not a reference, so kept
        ("Printer jam #0", "Printer jam #0"),
        ("Error E42", "Error E42"),
        ("回复：打印机 #7", "打印机"),
        ("Re: #42", "Re: #42"),  # nothing would be left: keep the original
        ("  Re:  \n #42  ", "Re: #42"),
        ("Re:", "Re:"),
        ("", "(no subject)"),
        ("  \t\n", "(no subject)"),
        ("42", "42"),
    ],
)
def test_clean_subject(subject: str, expected: str) -> None:
    assert clean_subject(subject) == expected


def test_clean_subject_without_bare_numbers() -> None:
    assert clean_subject("Re: Room 101", bare_numbers=False) == "Room 101"
    assert clean_subject("Re: Room #101", bare_numbers=False) == "Room"
    assert clean_subject("Re: Room 101") == "Room"


def test_clean_subject_custom_prefixes() -> None:
    assert clean_subject("Svar: Fwd: x", reply_prefixes=["Svar"], forward_prefixes=[]) == "Fwd: x"
    assert clean_subject("Svar: Fwd: x", reply_prefixes=["Svar"]) == "x"


def test_clean_subject_agrees_with_find_ticket_reference() -> None:
    """A number glued to a prefix is not a reference for either function."""
    assert find_ticket_reference("Re:42") is None
    assert clean_subject("Re:42") == "42"
