"""HTML bodies as text without a document tree (mail/mime/html_stream.py, html_text.py): the same text
inscriptis makes from the tree, the same cut at a reply's quote container, bounded work after the element
budget, and a deadline that gets through.

The references below are what the code did before it streamed: inscriptis.get_text over the lxml tree, and
the tree cut at the first quote container (reply/html.py). The streamed conversion must give exactly their
text, on the corpus's HTML bodies and on random tag soup (fixed examples, as in the other fuzz suites).
"""

from __future__ import annotations

import email
import email.policy
import os
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inscriptis import Inscriptis, get_text
from lxml.html import HtmlElement, document_fromstring

from email2ticket.exits import DeadlineExceeded
from email2ticket.mail.mime.html_stream import convert
from email2ticket.mail.mime.html_text import html_to_text
from email2ticket.mail.mime.notes import Notes
from email2ticket.reply.html import QUOTE_MARKERS, cut_html_quote
from support.corpus import MISSING_REASON, corpus_available, corpus_messages

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bad"


def reference_text(html: str) -> str:
    """html_to_text as it was: inscriptis over the whole tree."""
    return str(get_text(html.replace("\x00", ""))) if html.strip() else ""


def reference_cut(html: str) -> tuple[str, str] | None:
    """cut_html_quote as it was: the whole tree, cut at the first container below the root, then inscriptis."""
    import re

    source = re.sub(r"^<\?xml[^>]*\?>", "", html.strip().replace("\x00", ""), count=1, flags=re.IGNORECASE)
    try:
        root = document_fromstring(source) if source else None
    except Exception:
        return None
    if root is None:
        return None
    found = next(((element, name) for element in root.iterdescendants() if (name := _marker(element))), None)
    if found is None:
        return None
    element, name = found
    current: HtmlElement = element
    while (parent := current.getparent()) is not None:
        for sibling in list(current.itersiblings()):
            parent.remove(sibling)
        current.tail = None
        current = parent
    element.getparent().remove(element)
    return str(Inscriptis(root).get_text()), name


def _marker(element: HtmlElement) -> str | None:
    if not isinstance(element.tag, str) or not element.attrib:
        return None
    return next((m.name for m in QUOTE_MARKERS if m.matches(element.tag.lower(), element.attrib)), None)


def streamed_cut(html: str) -> tuple[str, str] | None:
    quote = cut_html_quote(html)
    return None if quote is None else (quote.kept_text, quote.marker)


def corpus_html() -> list[tuple[str, str]]:
    """Every text/html part of the corpus's complete messages, decoded, with where it came from."""
    found = []
    for path in corpus_messages():
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
        for number, part in enumerate(message.walk()):
            if part.get_content_type() != "text/html":
                continue
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                continue
            try:
                html = payload.decode(part.get_content_charset() or "utf-8", "replace")
            except LookupError:
                html = payload.decode("utf-8", "replace")
            found.append((f"{path.name}#{number}", html))
    return found


# --- the same text as inscriptis over the tree ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not corpus_available(), reason=MISSING_REASON)
def test_corpus_html_converts_and_cuts_exactly_as_over_the_tree() -> None:
    bodies = corpus_html()
    assert len(bodies) > 100  # the corpus has thousands: a filter that finds none would prove nothing
    for name, html in bodies:
        assert html_to_text(html, Notes()) == reference_text(html), name
        assert streamed_cut(html) == reference_cut(html), name


@pytest.mark.parametrize("fixture", ["html_only.eml", "inline_image.eml"])
def test_fixture_html_converts_exactly_as_over_the_tree(fixture: str) -> None:
    message = email.message_from_bytes((FIXTURES / fixture).read_bytes(), policy=email.policy.default)
    html = next(part.get_content() for part in message.walk() if part.get_content_type() == "text/html")
    assert html_to_text(html, Notes()) == reference_text(html)
    assert html_to_text(html, Notes()).strip()


@pytest.mark.parametrize(
    "html",
    [
        "<p>a<b>b</b>c<!-- comment -->d<?pi x?>e</p>tail",  # a comment's tail, a processing instruction's
        "<html><body><p>first</p></body></html><html><body><p>second document</p></body></html>",
        "<!-- only a comment -->",  # no element: get_text retries the source as preformatted text
        "</p>  \n </div>",
        '<?xml version="1.0" encoding="UTF-8"?>\n<html><body><p>declared</p></body></html>',
        "<table><tr><td>a</td><td nowrap>b</td></tr><tr><td colspan=2>c</td></tr></table>",
        "<ul><li>one<li>two</ul><ol><li>x</ol><pre>  kept\n   as is </pre> collapsed   here",
        "hello <o:p>Outlook</o:p> world &amp; &bogus; &#x1F600;",
        "<p>" + "&amp;x " * 500 + "</p>",
    ],
)
def test_edge_cases_convert_exactly_as_over_the_tree(html: str) -> None:
    assert html_to_text(html, Notes()) == reference_text(html)


TAGS = [
    "p",
    "div",
    "b",
    "span",
    "table",
    "tr",
    "td",
    "th",
    "ul",
    "ol",
    "li",
    "br",
    "pre",
    "a",
    "img",
    "blockquote",
    "body",
    "head",
    "title",
    "script",
    "style",
    "o:p",
    "hr",
    "font",
]
ATTRIBUTES = [
    'class="gmail_quote"',
    'class="ydp1 yahoo_quoted"',
    "type=cite",
    'id="appendonsend"',
    "id=x_divRplyFwdMsg",
    'style="display:none"',
    'style="white-space:pre"',
    'href="http://example.org/"',
    "nowrap",
    "colspan=2",
    'style="padding-left:4em"',
]
TEXTS = ["hello", " ", "  \n ", "&amp;", "&nbsp;", "&lt;x&gt;", "wörld", "\t", "On Mon, Bob wrote:", "\u00a0", "x\r\ny"]
OTHER = ["<!-- c -->", "<?pi x?>", "<!DOCTYPE html>", "<![CDATA[x]]>", "<", ">", "<!--", "</", "<p/>", "&", "\x00"]


@st.composite
def tag_soup(draw: st.DrawFn) -> str:
    """Mail-client HTML as a fuzzer writes it: start and end tags with quote markers, text, comments, debris."""
    start = st.builds(
        lambda tag, attributes: f"<{' '.join([tag, *attributes])}>",
        st.sampled_from(TAGS),
        st.lists(st.sampled_from(ATTRIBUTES), max_size=2),
    )
    end = st.sampled_from(TAGS).map(lambda tag: f"</{tag}>")
    token = st.one_of(start, end, st.sampled_from(TEXTS), st.sampled_from(OTHER), st.text(max_size=3))
    return "".join(draw(st.lists(token, max_size=60)))


SOUP = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@SOUP
@given(tag_soup())
def test_tag_soup_converts_and_cuts_exactly_as_over_the_tree(html: str) -> None:
    assert html_to_text(html, Notes()) == reference_text(html)
    assert streamed_cut(html) == reference_cut(html)


def test_where_the_pieces_fed_to_the_parser_end_does_not_matter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The source is fed to the parser in pieces (so that a stop ends the parse); a tag, an entity or a
    comment split between two pieces reads as if it were whole."""
    from email2ticket.mail.mime import html_stream

    documents = [
        (FIXTURES / "html_only.eml").read_text(errors="replace"),
        '<div class="a">x &amp; y <!-- a comment --> z</div><table><tr><td nowrap>cell</td></tr></table>' * 20,
    ]
    whole = [html_to_text(html, Notes()) for html in documents]
    cuts = [streamed_cut(html) for html in documents]
    for size in (1, 7, 100):
        monkeypatch.setattr(html_stream, "_FEED_CHUNK", size)
        assert [html_to_text(html, Notes()) for html in documents] == whole
        assert [streamed_cut(html) for html in documents] == cuts


# --- stopping at an element ------------------------------------------------------------------------------------


def test_the_parse_ends_at_the_stop_element() -> None:
    asked: list[str] = []

    def stop(tag: str, attributes: Mapping[str, str]) -> str | None:
        asked.append(attributes.get("id", ""))
        return "quote" if attributes.get("id") == "q" else None

    html = '<div id="a">new</div><div id="q">quoted</div><div id="after">more quoted</div>'
    converted = convert(html, stop=stop)
    assert converted is not None
    assert (converted.text, converted.stopped_by) == (reference_text('<div id="a">new</div>'), "quote")
    assert asked == ["a", "q"]  # nothing after the container was parsed


def test_a_marker_on_the_root_element_cuts_nothing() -> None:
    html = '<html class="gmail_quote"><body><p>new</p><div class="gmail_quote">old</div></body></html>'
    assert streamed_cut(html) == (reference_text("<p>new</p>"), "Gmail quote (div.gmail_quote)")


def test_a_deadline_raised_inside_the_parse_gets_through() -> None:
    """The delivery's deadline (a BaseException raised in the converting thread, here by the `stop` callback)
    is not swallowed by lxml, which stores what a parser target raises and raises it again after the parse."""

    def expire(tag: str, attributes: Mapping[str, str]) -> str | None:
        raise DeadlineExceeded

    with pytest.raises(DeadlineExceeded):
        convert('<p class="x">text</p>', stop=expire)


# --- bounded work: the element budget ---------------------------------------------------------------------------


def test_after_the_budget_the_rest_is_plain_lines() -> None:
    paragraphs = "".join(f"<p>paragraph {n} <b>bold</b></p>" for n in range(10))
    hidden = "<style>p { color: red }</style><script>alert(1)</script>"
    html = f"<html><body>{paragraphs}{hidden}<table><tr><td>a</td><td>b</td></tr></table>end</body></html>"
    full = convert(html)
    assert full is not None and full.text == reference_text(html)  # under the budget: inscriptis' layout
    bounded = convert(html, budget=7)  # html, body, p, b, p, b, p: the eighth element (a <b>) is plain
    assert bounded is not None
    laid_out = "paragraph 0 bold\n\nparagraph 1 bold\n\nparagraph 2"
    plain = "\n".join(["bold", *[f"paragraph {n} bold" for n in range(3, 10)], "a b", "end"])
    assert bounded.text == f"{laid_out}\n{plain}"  # hidden elements stay hidden, blocks break lines


def test_a_budget_spent_before_the_quote_container_still_cuts_there() -> None:
    def stop(tag: str, attributes: Mapping[str, str]) -> str | None:
        return "quote" if attributes.get("class") == "quote" else None

    html = "<body>" + "<p>new</p>" * 5 + '<div class="quote"><p>old</p></div><p>older</p></body>'
    converted = convert(html, stop=stop, budget=3)
    assert converted is not None
    assert converted.stopped_by == "quote"
    assert "old" not in converted.text and converted.text.count("new") == 5
