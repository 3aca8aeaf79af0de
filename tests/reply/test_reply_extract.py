"""extract_reply, the comment a delivered reply becomes: HTML quote containers, the text/HTML choice, tidying,
lazy imports, and `email2ticket separators test`, which shows an admin the same cut."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from email2ticket.mail.message import ParsedMessage, parse_message
from email2ticket.reply.extract import DEFAULT_SEPARATORS, extract_reply
from email2ticket.reply.html import QUOTE_MARKERS, QuoteMarker, cut_html_quote
from email2ticket.reply.taglines import tidy_comment
from support.run import Runner

LIB_DIR = Path(__file__).resolve().parents[2] / "lib"


def html_reply(html: str) -> ParsedMessage:
    head = "Subject: RE: printer [Ticket #1]\nContent-Type: text/html; charset=utf-8\n\n"
    return parse_message((head + html).encode())


def alternative_reply(plain: str, html: str) -> ParsedMessage:
    raw = (
        "Subject: RE: printer [Ticket #1]\nMIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="b"\n\n'
        f"--b\nContent-Type: text/plain; charset=utf-8\n\n{plain}\n"
        f"--b\nContent-Type: text/html; charset=utf-8\n\n{html}\n--b--\n"
    )
    return parse_message(raw.encode())


def container(marker: QuoteMarker) -> str:
    """An element this marker recognises, holding an attribution and a quote."""
    tag = marker.tag or "div"
    value = sorted(marker.values)[0]
    inner = "" if tag == "hr" else "<div>On Mon, 5 Jan 2026 Bob wrote:</div><blockquote>old text</blockquote>"
    closing = "old text after the rule" if tag == "hr" else f"</{tag}>"
    return f'<{tag} {marker.attribute}="{value}">{inner}{closing}'


# --- HTML quote containers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("marker", QUOTE_MARKERS, ids=lambda marker: marker.name)
def test_html_reply_is_cut_at_each_clients_quote_container(marker: QuoteMarker) -> None:
    html = f"<html><body><div>Answer</div><div>Bob</div>{container(marker)}<p>more old text</p></body></html>"
    cut = extract_reply(html_reply(html), DEFAULT_SEPARATORS)
    assert cut.text.split() == ["Answer", "Bob"]
    assert (cut.separator, cut.from_html) == (marker.name, True)


def test_the_earliest_container_wins() -> None:
    html = (
        '<div>New</div><div class="moz-cite-prefix">Bob wrote:</div><blockquote type="cite">old'
        '<div class="gmail_quote">older</div></blockquote>'
    )
    quote = cut_html_quote(html)
    assert quote is not None
    assert (quote.kept_text.strip(), quote.marker) == ("New", "Thunderbird quote (div.moz-cite-prefix)")


def test_exchange_prefixed_ids_and_class_lists_are_recognised() -> None:
    assert cut_html_quote('<p>New</p><div id="x_divRplyFwdMsg">old</div>') is not None
    assert cut_html_quote('<p>New</p><div class="ydp1 yahoo_quoted extra">old</div>') is not None


def test_text_separators_still_apply_above_the_container() -> None:
    html = "<div>New</div><div>-----Original Message-----</div><div>old</div><div class=gmail_quote>older</div>"
    cut = extract_reply(html_reply(html), DEFAULT_SEPARATORS)
    assert (cut.text, cut.separator, cut.from_html) == ("New", "-----Original Message-----", True)


def test_a_container_at_the_top_leaves_the_decision_to_the_text() -> None:
    html = '<blockquote type="cite">old question</blockquote><div>my answer below</div>'
    cut = extract_reply(html_reply(html), DEFAULT_SEPARATORS)
    assert cut.separator is None
    assert "my answer below" in cut.text


@pytest.mark.parametrize("html", ["", "   ", "<html></html>", "\x00<div", "<?xml version='1.0' encoding='utf-8'?>"])
def test_empty_or_broken_html_is_no_container(html: str) -> None:
    assert cut_html_quote(html) is None


# --- which body is cut --------------------------------------------------------------------------------------


def test_a_text_plain_body_is_cut_with_the_separators() -> None:
    message = alternative_reply(
        "Answer\n\nOn Mon, 5 Jan 2026 at 10:00, Bob <bob@example.com> wrote:\n> old",
        '<div>Answer, HTML version</div><div class="gmail_quote">old</div>',
    )
    cut = extract_reply(message, DEFAULT_SEPARATORS)
    assert (cut.text, cut.from_html, cut.line) == ("Answer", False, 3)


def test_without_a_separator_in_the_text_the_html_structure_decides() -> None:
    message = alternative_reply(
        "Answer\n\nBob kirjoitti eilen\n\nold text without any marker",
        '<div>Answer</div><div class="gmail_quote"><div>Bob kirjoitti eilen</div>old text</div>',
    )
    cut = extract_reply(message, DEFAULT_SEPARATORS)
    assert (cut.text, cut.separator, cut.from_html) == ("Answer", "Gmail quote (div.gmail_quote)", True)


def test_the_parsed_message_keeps_the_html_body() -> None:
    message = alternative_reply("plain", "<p>html</p>")
    assert (message.text.strip(), message.html, message.html_converted) == ("plain", "<p>html</p>", False)
    only_html = html_reply("<p>html</p>")
    assert (only_html.html, only_html.html_converted) == ("<p>html</p>", True)
    plain = parse_message(b"Subject: x\n\nplain\n")
    assert plain.html is None


# --- tidying ------------------------------------------------------------------------------------------------


def test_dangling_attribution_above_an_html_quote_is_removed() -> None:
    html = '<div>Answer</div><div>Le lundi, Bob a écrit :</div><blockquote type="cite">old</blockquote>'
    assert extract_reply(html_reply(html), DEFAULT_SEPARATORS).text == "Answer"


@pytest.mark.parametrize(
    ("text", "cut", "expected"),
    [
        ("\n\n  Answer  \n\n", False, "  Answer"),
        ("Answer\n\nBob wrote:", False, "Answer\n\nBob wrote:"),  # not cut: the last line is the author's
        ("Answer\n\nBob wrote:", True, "Answer"),
        ("Answer\n\nAm 5.1.2026 schrieb Bob:", True, "Answer"),
        ("Answer\n\nThe steps are:", True, "Answer\n\nThe steps are:"),  # no attribution in it
        ("Bob wrote:", True, "Bob wrote:"),  # never tidied to nothing
    ],
)
def test_tidy_comment(text: str, cut: bool, expected: str) -> None:
    assert tidy_comment(text, cut) == expected


# --- imports stay off the per-message path ------------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "imported"), [("text/plain", False), ("text/html", True)])
def test_html_libraries_are_imported_only_for_html_replies(content_type: str, imported: bool) -> None:
    raw = f"Subject: RE: x [Ticket #1]\nContent-Type: {content_type}\n\nAnswer\n\n-----Original Message-----\nold\n"
    code = (
        "import sys; from email2ticket.mail.message import parse_message; "
        "from email2ticket.reply.extract import extract_reply, DEFAULT_SEPARATORS; "
        f"extract_reply(parse_message({raw.encode()!r}), DEFAULT_SEPARATORS); "
        "print('lxml' in sys.modules, 'inscriptis' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(LIB_DIR)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == [str(imported), str(imported)]


# --- email2ticket separators test ---------------------------------------------------------------------------

REPLY = (
    b"From: Ann <ann@example.com>\nSubject: RE: Printer [Ticket #1]\n\nIt works now.\n\nThanks, Ann\n\n"
    b"-----Original Message-----\nFrom: Help <help@example.com>\nSent: Monday\n\nDid you restart it?\n"
)


def test_separators_test_marks_the_cut_and_the_separator(run_admin: Runner, sqlite_url: str) -> None:
    result = run_admin("--database-url", sqlite_url, "separators", "test", stdin=REPLY)
    assert result.returncode == 0, result
    lines = result.stdout_text.splitlines()
    assert lines[0] == "Cut at line 5, where the separator -----Original Message----- matched."
    mark = next(number for number, line in enumerate(lines) if line.startswith("✂✂✂ cut here"))
    assert lines[mark - 1].strip() == "4"  # the blank line above the separator
    assert lines[mark + 1].split(None, 1) == ["5", "-----Original Message-----"]
    assert result.stdout_text.endswith("--- the comment as stored ---\nIt works now.\n\nThanks, Ann\n")


def test_separators_test_uses_the_stored_list(run_admin: Runner, sqlite_url: str) -> None:
    assert run_admin("--database-url", sqlite_url, "separators", "remove", "-----Original Message-----").returncode == 0
    shown = json.loads(run_admin("--database-url", sqlite_url, "separators", "test", "--json", stdin=REPLY).stdout)
    assert shown["separator"] != "-----Original Message-----"  # the From:/Sent: block below it cuts instead
    assert shown["line"] == 6
    assert shown["comment"] == "It works now.\n\nThanks, Ann\n\n-----Original Message-----"


def test_separators_test_tries_a_separator_before_it_is_added(run_admin: Runner, sqlite_url: str) -> None:
    args = ("--database-url", sqlite_url, "separators", "test", "--json", "--add", "Thanks, Ann")
    shown = json.loads(run_admin(*args, stdin=REPLY).stdout)
    assert (shown["separator"], shown["line"], shown["comment"]) == ("Thanks, Ann", 3, "It works now.")
    listed = run_admin("--database-url", sqlite_url, "separators", "list").stdout_text
    assert "Thanks, Ann" not in listed  # tried, not saved


def test_separators_test_refuses_an_invalid_candidate(run_admin: Runner, sqlite_url: str) -> None:
    result = run_admin("--database-url", sqlite_url, "separators", "test", "--add", "/(a)\\1/", stdin=REPLY)
    assert result.returncode == 1
    assert result.stderr_first_line.startswith("error: The regular expression '/(a)\\1/' is not valid RE2 syntax")


def test_separators_test_says_when_nothing_is_cut(run_admin: Runner, sqlite_url: str) -> None:
    result = run_admin("--database-url", sqlite_url, "separators", "test", stdin=b"Subject: x\n\nJust text.\n")
    assert result.stdout_text.splitlines()[0] == "No separator matched: the whole body is kept."


def test_only_a_tagline_above_the_html_quote_keeps_the_whole_body() -> None:
    html = '<div>Sent from my iPhone</div><div class="gmail_quote">On Mon, 5 Jan 2026 Bob wrote:<br>old</div>'
    message = html_reply(html)
    cut = extract_reply(message, DEFAULT_SEPARATORS)
    assert cut.separator is None
    assert cut.text == textwrap.dedent(message.text).strip()
