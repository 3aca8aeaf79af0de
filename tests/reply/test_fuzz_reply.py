"""Fuzzing reply extraction: any body, text or HTML, is cut without raising, within a budget, and only ever at a line.

extract_reply runs on every reply with the built-in separators (and the admin's). Bodies here are made of what
replies are made of, mixed and mangled: new text, quoted lines, attribution lines and header blocks of every
client and language, taglines, rule lines, quoted-printable and HTML leftovers, CRLF, NUL, lone surrogates,
very long lines; HTML bodies with the quote containers of each client, unclosed and deeply nested. Beyond "never
raises, always in time": the comment is the top of the body (a cut drops the bottom, never rewrites the top),
a cut leaves text, the deadline changes nothing when it is not reached, and the chunked search finds the same
cut as chunks of any size.

Fixed examples (derandomize=True); FUZZ_EXAMPLES raises their number, FUZZ_SHRINK=1 shrinks a failure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from email2ticket.mail.message import parse_message
from email2ticket.reply import search
from email2ticket.reply.extract import DEFAULT_SEPARATORS, ReplyCut, extract_reply, strip_reply

BUDGET = 2.0  # seconds per example, on a busy two-core machine
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=tuple(Phase) if os.environ.get("FUZZ_SHRINK") else (Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
SEPARATORS = list(DEFAULT_SEPARATORS)


def timed(call: Callable[[], Any]) -> Any:
    started = time.monotonic()
    result = call()
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET, f"took {elapsed:.2f} s (budget {BUDGET} s)"
    return result


LINES = [
    "Thanks, that fixed it.",
    "",
    "  ",
    ">",
    "> quoted text",
    ">> older quote",
    "On Mon, 5 Jan 2026 at 10:00, Bob <bob@example.com> wrote:",
    "On Mon, 5 Jan 2026 at 10:00, Bob Example",
    "<bob@example.com> wrote:",
    "Am 05.01.2026 um 10:00 schrieb Bob <bob@example.com>:",
    "Le lun. 5 janv. 2026 à 10:00, Bob a écrit :",
    "2026/01/05 10:00、山田のメール:",
    "-----Original Message-----",
    "----- Original Message -----",
    "-----Ursprüngliche Nachricht-----",
    "________________________________",
    "From: Bob <bob@example.com>",
    "From: Bob",
    "Sent: Monday, 5 January 2026 10:00",
    "To: Help Desk",
    "Subject: Re: printer",
    "Von: Bob",
    "Gesendet: Montag",
    "Sent from my iPhone",
    "Sent from my Samsung Galaxy smartphone.",
    "Sent from LGLGxxLG,",
    "Get Outlook for Android<https://aka.ms/ghei36>",
    "iPhoneから送信",
    "##- Please type your reply above this line -##",
    "Begin forwarded message:",
    "=C3=BC=\n",
    "wr=\note:",
    "Von:&nbsp;Bob<br>Gesendet: Montag<br>",
    "&lt;bob@example.com&gt; wrote:",
    "<div>",
    "\x00",
    "\r",
    "\ud800",
    "\U0001f600",
    "\u200eFrom:\u200e Bob",
]
line = st.one_of(st.sampled_from(LINES), st.text(max_size=60), st.integers(0, 20_000).map(lambda n: "z" * n))
bodies = st.builds(
    lambda lines, newline: newline.join(lines),
    st.lists(line, max_size=40),
    st.sampled_from(["\n", "\r\n"]),
)


def assert_top_of(body: str, cut: ReplyCut) -> None:
    """What strip_reply keeps is the body's top, as sent (LF line ends), and a cut always leaves text."""
    text = body.replace("\r\n", "\n")
    if cut.separator is None:
        assert cut.text == text
        return
    assert text.startswith(cut.text), (cut.text[:200], text[:200])
    assert cut.text.strip(), "a cut must leave text"
    # At a line start, or inside a line where the decoded view of an HTML-in-text body starts one (`...<br>Von:`).
    assert cut.line is not None and cut.line >= 1


@FUZZ
@given(bodies)
def test_any_body_is_cut_only_below_its_new_text(body: str) -> None:
    cut = timed(lambda: strip_reply(body, SEPARATORS))
    assert_top_of(body, cut)
    assert cut.skipped == ()  # the built-in list is always usable
    assert strip_reply(body, SEPARATORS, deadline=time.monotonic() + 60) == cut  # a deadline not reached: no change


@contextmanager
def small_chunks(size: int) -> Iterator[None]:
    saved = search.CHUNK, search.FIRST_CHUNK, search.MIN_CHUNK
    search.CHUNK = search.FIRST_CHUNK = search.MIN_CHUNK = size
    try:
        yield
    finally:
        search.CHUNK, search.FIRST_CHUNK, search.MIN_CHUNK = saved


@FUZZ
@given(bodies, st.integers(256, 8192))
def test_chunks_of_any_size_find_the_same_cut(body: str, size: int) -> None:
    whole = strip_reply(body, SEPARATORS)
    with small_chunks(size):
        assert timed(lambda: strip_reply(body, SEPARATORS)) == whole


# --- whole messages: text, HTML, both --------------------------------------------------------------------------

HTML_PIECES = [
    "<p>Thanks, that fixed it.</p>",
    "<div>new text</div>",
    "<br>",
    '<div class="gmail_quote">',
    '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, Bob wrote:<br></div>',
    '<blockquote type="cite">',
    '<blockquote class="gmail_quote" style="margin:0">',
    '<div id="appendonsend"></div>',
    '<div id="divRplyFwdMsg">',
    '<hr id="stopSpelling">',
    '<div class="moz-cite-prefix">On 05.01.2026 Bob wrote:<br></div>',
    '<div class="yahoo_quoted">',
    '<div class="protonmail_quote">',
    "</div>",
    "</blockquote>",
    "<table><tr><td>",
    "<!-- comment -->",
    "<![CDATA[ x ]]>",
    "<script>alert(1)</script>",
    "<style>p{}</style>",
    "&nbsp;&amp;&#0;&#x110000;&bogus;",
    "<",
    ">",
    "\x00",
    "<div>" * 300,
    "<p>Sent from my iPhone</p>",
]
html_bodies = st.lists(st.one_of(st.sampled_from(HTML_PIECES), st.text(max_size=30)), max_size=40).map("".join)


@st.composite
def replies(draw: st.DrawFn) -> bytes:
    """A reply as bytes: text/plain, text/html, or both as multipart/alternative."""
    head = "From: alice@example.com\r\nSubject: Re: printer [Ticket #1]\r\nMIME-Version: 1.0\r\n"
    text = draw(bodies).encode("utf-8", "surrogatepass")
    html = draw(html_bodies).encode("utf-8", "surrogatepass")
    kind = draw(st.sampled_from(["text", "html", "both"]))
    if kind == "text":
        return head.encode() + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text
    if kind == "html":
        return head.encode() + b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html
    return head.encode() + (
        b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + b"\r\n"
        b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html + b"\r\n--b--\r\n"
    )


@FUZZ
@given(replies())
def test_any_reply_message_is_extracted_without_raising(raw: bytes) -> None:
    message = parse_message(raw)
    cut = timed(lambda: extract_reply(message, SEPARATORS))
    assert isinstance(cut.text, str)
    assert cut.separator is None or cut.text.strip()
    assert extract_reply(message, SEPARATORS, deadline=time.monotonic() + 60) == cut


# --- the admin's own separators ---------------------------------------------------------------------------------

admin_separators = st.lists(
    st.one_of(
        st.text(max_size=30),  # plain text, valid or not (empty, multi-line): skipped with a reason when invalid
        st.builds(lambda body: f"/{body}/", st.text(st.sampled_from("^$.*+?()[]{}|\\-:ab0 \n<>@"), max_size=20)),
        st.sampled_from(["/^-{5,}$/", "/(?i)^von:/", "/^[ab]*$/", "/x{1000}/", "/(a|b|c)+d/", "/\\pL+:$/"]),
    ),
    max_size=5,
)


@FUZZ
@given(bodies, admin_separators)
def test_any_admin_separators_are_used_or_skipped_never_raised(body: str, added: list[str]) -> None:
    cut = timed(lambda: strip_reply(body, [*SEPARATORS, *added]))
    assert_top_of(body, cut)
