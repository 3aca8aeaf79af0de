"""Cutting an HTML reply where its quote container starts, before it is turned into text.

Mail clients wrap the quoted history of an HTML reply in an element of their own, which says where the
history starts more reliably than any text marker: the attribution line may be localised, re-wrapped or
missing, the container is not. The markers are data (QUOTE_MARKERS, one per client); the earliest
container in document order wins, as the earliest separator does in text. The tree is cut there (the
container and everything after it in document order go) and the rest converted to text with inscriptis,
exactly as an HTML-only body is converted for a new ticket. lxml parses the HTML (libxml2's HTML parser,
which copes with the tag soup mail clients send); both are imported only for HTML replies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxml.html import HtmlElement

_NEW_OUTLOOK = "mail-editor-reference-message-container"  # Outlook for iOS and Android, the new Outlook


@dataclass(frozen=True)
class QuoteMarker:
    """An element that starts a client's quoted history: its tag (any, if None) and an attribute value.

    For `class` the value is one of the element's class names; for `id` and `type` the whole value, in any
    case (Exchange prefixes the ids of a message it forwards with "x_", which is accepted too).
    """

    name: str
    tag: str | None
    attribute: str
    values: frozenset[str]

    def matches(self, tag: str, attributes: dict[str, str]) -> bool:
        if self.tag is not None and tag != self.tag:
            return False
        value = attributes.get(self.attribute)
        if value is None:
            return False
        if self.attribute == "class":
            return not self.values.isdisjoint(value.lower().split())
        value = value.strip().lower()
        return value in self.values or value.removeprefix("x_") in self.values


def _marker(name: str, tag: str | None, attribute: str, *values: str) -> QuoteMarker:
    return QuoteMarker(name, tag, attribute, frozenset(value.lower() for value in values))


QUOTE_MARKERS: tuple[QuoteMarker, ...] = (
    _marker("Gmail quote (div.gmail_quote)", "div", "class", "gmail_quote", "gmail_quote_container"),
    _marker("Gmail quote (blockquote.gmail_quote)", "blockquote", "class", "gmail_quote"),
    _marker("Outlook quote (#appendonsend)", None, "id", "appendonsend"),
    _marker("Outlook quote (div#divRplyFwdMsg)", None, "id", "divRplyFwdMsg"),
    _marker("Outlook mobile quote (#mail-editor-reference-message-container)", None, "id", _NEW_OUTLOOK),
    _marker("Outlook for Mac quote (#OLK_SRC_BODY_SECTION)", None, "id", "OLK_SRC_BODY_SECTION"),
    _marker("Outlook quote (div.OutlookMessageHeader)", "div", "class", "OutlookMessageHeader"),
    _marker("Hotmail quote (hr#stopSpelling)", "hr", "id", "stopSpelling"),
    _marker("Thunderbird quote (div.moz-cite-prefix)", "div", "class", "moz-cite-prefix"),
    _marker("Thunderbird/Apple Mail quote (blockquote type=cite)", "blockquote", "type", "cite"),
    _marker("Yahoo quote (div.yahoo_quoted)", "div", "class", "yahoo_quoted"),
    _marker("Proton Mail quote (.protonmail_quote)", None, "class", "protonmail_quote"),
    _marker("Zimbra quote (hr#zwchr)", "hr", "id", "zwchr"),
    _marker("Zoho quote (.zmail_extra)", None, "class", "zmail_extra"),
)
_XML_DECLARATION = re.compile(r"^<\?xml[^>]*\?>", re.IGNORECASE)


@dataclass(frozen=True)
class HtmlQuote:
    """The text above an HTML reply's quote container, and which container it was."""

    kept_text: str
    marker: str


def _parse(html: str) -> HtmlElement | None:
    """The document tree as inscriptis builds it, None for an empty or unparsable body."""
    from lxml.etree import ParserError
    from lxml.html import document_fromstring

    source = _XML_DECLARATION.sub("", html.strip().replace("\x00", ""), count=1)
    if not source:
        return None
    try:
        return document_fromstring(source)
    except (ParserError, ValueError):
        return None


def _first_container(root: HtmlElement) -> tuple[HtmlElement, str] | None:
    """The earliest quote container in document order, and the name of its marker.

    A walk that stops at the first container: the new text is at the top, so a reply with megabytes of
    quoted history is decided after a few elements.
    """
    for element in root.iter():
        tag = element.tag
        if not isinstance(tag, str) or not element.attrib:  # comments, processing instructions
            continue
        attributes = element.attrib
        for marker in QUOTE_MARKERS:
            if marker.matches(tag.lower(), attributes):
                return element, marker.name
    return None


def _cut_from(element: HtmlElement) -> None:
    """Remove `element` and everything after it in document order (its tail, its later siblings, theirs)."""
    current = element
    parent = current.getparent()
    while parent is not None:
        for sibling in list(current.itersiblings()):
            parent.remove(sibling)
        current.tail = None
        current, parent = parent, parent.getparent()
    element_parent = element.getparent()
    if element_parent is not None:
        element_parent.remove(element)


def cut_html_quote(html: str) -> HtmlQuote | None:
    """The text above the first quote container of `html`; None when it has none or cannot be parsed."""
    try:
        root = _parse(html)
        found = _first_container(root) if root is not None else None
        if root is None or found is None:
            return None
        element, marker = found
        _cut_from(element)
        from inscriptis import Inscriptis  # lazily: only HTML replies need it

        return HtmlQuote(kept_text=str(Inscriptis(root).get_text()), marker=marker)
    except Exception:  # never fail a delivery over HTML: the text separators still apply to the text body
        return None
