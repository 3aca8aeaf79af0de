"""signals/lazy_patterns.py: patterns compiled on first use, and the subject gates that spare most mail compiling them.

A gate may only ever say "maybe" where the pattern matches: every subject below, and every variant of it (case,
brackets, the four non-ASCII letters re.IGNORECASE folds to ASCII, every truncation), is checked both ways.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from email2ticket.signals import bounce, classify
from email2ticket.signals.lazy_patterns import LazyPattern, literal_heads, may_start

OUT_OF_OFFICE = [
    "Out of Office: Printer on floor 3 jams",
    "Out of the office",
    "Automatic reply: [Ticket #42] Printer",
    "Auto: Printer on floor 3 jams",
    "Autoreply",
    "On holiday!",
    "I am out of the office until 14 March",
    "I'm currently out of the office",
    "Jane Doe is out of the office.",
    "Max Muster ist außer Haus.",
    "Erika Muster ist nicht im Büro",
    "Ich bin nicht im Büro",
    "Je suis absente",
    "Estoy fuera de la oficina",
    "Réponse automatique : Imprimante",
    "Absente : retour le 3 mars",
    "Respuesta automática: Impresora",
    "Ausência",
    "Frånvaro",
    "Fraværende",
    "Házon kívül",
    "Otomatik yanıt: Yazıcı",
    "Αυτόματη απάντηση",
    "Автоматический ответ: Принтер",
    "【自動返信】プリンター",
    "(Out of office)",
    "[ Abwesenheitsnotiz ]",
    "不在",
    "자동 회신: 프린터",
]
BOUNCES = [
    "Undeliverable: Printer",
    "Undelivered Mail Returned to Sender",
    "Returned mail: see transcript for details",
    "Mail delivery failed: returning message to sender",
    "failure notice",
    "Delivery Status Notification (Failure)",
    "Delivery has been delayed",
    "Non-delivery report",
    "Delayed Mail (still being retried)",
    "Warning: could not send message for past 4 hours",
    "Message not delivered",
    "Mail could not be delivered",
    "Unzustellbar: Drucker",
    "Benachrichtung zum Übermittlungsstatus (Fehler)",
    "Non remis : Imprimante",
    "Échec de la remise",
    "No se puede entregar: Impresora",
    "Non recapitabile",
    "Onbestelbaar: printer",
    "Não entregue",
    "Kan ikke leveres",
    "Olevererbart",
    "Nie można dostarczyć",
    "Nedoručitelné",
    "Недоставляемое сообщение",
    "Не удается доставить",
    "配信不能",
    "退信",
    "無法傳遞",
]
ORDINARY = [
    "Printer problem number 7 on floor two",
    "RE: Printer problem 1 [Ticket #1]",
    "Re: Automatic reply: Printer",
    "AW: Abwesenheitsnotiz: Drucker",
    "Fwd: Undeliverable: my last mail",
    "Out of office not working in Outlook",
    "I am out of paper",
    "",
]


def _variants(subject: str) -> Iterator[str]:
    for text in (subject, subject.upper(), subject.lower(), subject.swapcase(), f"[{subject}]", f"( {subject}"):
        yield text
        yield text.replace("i", "\u0131").replace("I", "\u0130").replace("s", "\u017f").replace("k", "\u212a")
        for end in range(len(text)):
            yield text[:end]


def _collapsed(subject: str) -> str:
    return " ".join(subject.split())


def test_literal_heads_reads_the_start_of_each_alternative() -> None:
    heads = literal_heads([r"out of (?:the )?office", r"(?:vacation|holiday) reply|on leave", "réponse", "退信"])
    assert heads == frozenset({"out", "vac", "hol", "on "})  # the non-ASCII starts cannot match an ASCII subject
    assert literal_heads([r"non-?deliver"]) == frozenset({"non"})
    assert literal_heads([r"ab?c"]) is None  # the literal start is only "a"


@pytest.mark.parametrize(
    "alternatives",
    [
        [r"[^:]{1,80}? is out of the office"],  # a class first
        [r"(?:out|away)? of office"],  # an optional first group
        [r"(?i:out) of office"],  # an inline flag
        [r"ab"],  # shorter than the head
        ["\u0131tem"],  # ı: re.IGNORECASE matches it to "i"
        ["(?:out|away of office"],  # unbalanced: not read
    ],
)
def test_literal_heads_gives_up_on_starts_it_cannot_read(alternatives: list[str]) -> None:
    heads = literal_heads(alternatives)
    assert heads is None
    assert may_start("anything", heads)


def test_may_start_compares_an_ascii_start_only() -> None:
    heads = frozenset({"out"})
    assert may_start("OUT of office", heads)
    assert not may_start("RE: out of office", heads)
    assert not may_start("ou", heads)
    assert may_start("Ｏut of office", heads)  # a full-width letter: the pattern decides


def test_the_gates_are_in_force() -> None:
    assert bounce._BOUNCE_SUBJECT_HEADS is not None
    assert classify._PHRASE_HEADS is not None and classify._SENTENCE_HEADS is not None
    for subject in ("Printer problem number 7 on floor two", "RE: Printer problem 1 [Ticket #1]"):
        assert not classify._may_be_out_of_office(subject)
        assert not may_start(subject, bounce._BOUNCE_SUBJECT_HEADS)


def test_the_gates_never_refuse_a_subject_the_patterns_match() -> None:
    matched = {"out-of-office": 0, "bounce": 0}
    for subject in OUT_OF_OFFICE + BOUNCES + ORDINARY:
        for variant in map(_collapsed, _variants(subject)):
            if classify.OUT_OF_OFFICE_SUBJECT.match(variant):
                matched["out-of-office"] += 1
                assert classify._may_be_out_of_office(variant), variant
            if bounce.BOUNCE_SUBJECT.match(variant):
                matched["bounce"] += 1
                assert may_start(variant, bounce._BOUNCE_SUBJECT_HEADS), variant
    assert matched["out-of-office"] > 4 * len(OUT_OF_OFFICE)
    assert matched["bounce"] > 4 * len(BOUNCES)


def test_every_sample_is_recognised_as_before() -> None:
    assert all(classify._may_be_out_of_office(_collapsed(s)) for s in OUT_OF_OFFICE)
    assert all(classify.OUT_OF_OFFICE_SUBJECT.match(_collapsed(s)) for s in OUT_OF_OFFICE)
    assert all(bounce._bounce_subject(s) for s in BOUNCES)
    assert not any(bounce._bounce_subject(s) for s in ORDINARY)


def test_a_lazy_pattern_compiles_on_first_use() -> None:
    pattern = LazyPattern(r"(a)(b)?", re.I)
    assert pattern._compiled is None
    assert pattern.flags == re.I and pattern.pattern == "(a)(b)?"
    match = pattern.match("AB")
    assert match is not None and match.group(2) == "B"
    assert pattern.compiled is pattern._compiled
    assert pattern.search("xa") is not None
    assert pattern.findall("a ab") == [("a", ""), ("a", "b")]
    assert pattern.split("xaby", maxsplit=1) == ["x", "a", "b", "y"]
