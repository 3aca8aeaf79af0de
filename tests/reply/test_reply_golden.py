"""Golden replies: one real reply per mail client family, and the comment delivery must keep of it.

The fixtures and their provenance are in tests/fixtures/replies/README.md. Each runs through the same path as
a delivered reply: `parse_message` on the message (a bare body is put in a minimal message first), then
`extract_reply` with the built-in separators.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from email2ticket.mail.message import ParsedMessage, parse_message
from email2ticket.reply.extract import DEFAULT_SEPARATORS, extract_reply

REPLIES = Path(__file__).resolve().parents[1] / "fixtures" / "replies"
KINDS = {".eml": None, ".txt": "plain", ".html": "html"}
FIXTURES = sorted(
    path for path in REPLIES.iterdir() if path.suffix in KINDS and not path.name.endswith(".expected.txt")
)


def delivered(path: Path) -> ParsedMessage:
    """The message as delivery would parse it."""
    subtype = KINDS[path.suffix]
    if subtype is None:
        return parse_message(path.read_bytes())
    head = f"Subject: RE: printer [Ticket #1]\nContent-Type: text/{subtype}; charset=utf-8\n\n".encode()
    return parse_message(head + path.read_bytes())


def test_every_fixture_has_an_expected_comment() -> None:
    assert len(FIXTURES) >= 50
    missing = [path.name for path in FIXTURES if not path.with_suffix(".expected.txt").is_file()]
    assert missing == []


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: path.name)
def test_golden_reply(path: Path) -> None:
    expected = path.with_suffix(".expected.txt").read_text(encoding="utf-8").removesuffix("\n")
    cut = extract_reply(delivered(path), DEFAULT_SEPARATORS)
    assert cut.text == expected
    assert cut.skipped == ()


@pytest.mark.parametrize("path", [path for path in FIXTURES if path.name.startswith("prose_")], ids=lambda p: p.name)
def test_prose_is_never_cut(path: Path) -> None:
    message = delivered(path)
    cut = extract_reply(message, DEFAULT_SEPARATORS)
    assert (cut.separator, cut.quote_line) == (None, None)
    assert cut.text == message.text.strip()
