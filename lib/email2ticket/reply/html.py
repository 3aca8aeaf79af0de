"""Cutting an HTML reply where its quote container starts, before it is turned into text.

Mail clients wrap the quoted history of an HTML reply in an element of their own, which says where the
history starts more reliably than any text marker: the attribution line may be localised, re-wrapped or
missing, the container is not. The markers are data (QUOTE_MARKERS, one per client); the earliest
container in document order wins, as the earliest separator does in text. The text ends there (the
container and everything after it in document order go): the HTML is converted to text with inscriptis
as it is parsed (libxml2's HTML parser, which copes with the tag soup mail clients send), exactly as an
HTML-only body is converted for a new ticket (mail/mime/html_text.py), and the parse stops at the
container, so a reply with megabytes of quoted history costs what its new text costs. The root element
itself is never taken for a container: a marker on `<html>` is ignored (cutting there would keep nothing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from msgspec import Struct

from ..mail.mime.html_stream import convert

_NEW_OUTLOOK = "mail-editor-reference-message-container"  # Outlook for iOS and Android, the new Outlook


class QuoteMarker(Struct, frozen=True):
    """An element that starts a client's quoted history: its tag (any, if None) and an attribute value.

    For `class` the value is one of the element's class names; for `id` and `type` the whole value, in any
    case (Exchange prefixes the ids of a message it forwards with "x_", which is accepted too).
    """

    name: str
    tag: str | None
    attribute: str
    values: frozenset[str]

    def matches(self, tag: str, attributes: Mapping[str, str]) -> bool:
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


class HtmlQuote(Struct, frozen=True):
    """The text above an HTML reply's quote container, and which container it was."""

    kept_text: str
    marker: str


def _container(tag: str, attributes: Mapping[str, str]) -> str | None:
    """The name of the marker `tag` with `attributes` matches, None when it starts no quote container."""
    for marker in QUOTE_MARKERS:
        if marker.matches(tag, attributes):
            return marker.name
    return None


def cut_html_quote(html: str) -> HtmlQuote | None:
    """The text above the first quote container of `html`; None when it has none or cannot be parsed."""
    try:
        source = _XML_DECLARATION.sub("", html.strip().replace("\x00", ""), count=1)
        converted = convert(source, stop=_container) if source else None
        if converted is None or converted.stopped_by is None:
            return None
        return HtmlQuote(kept_text=converted.text, marker=converted.stopped_by)
    except Exception:  # never fail a delivery over HTML: the text separators still apply to the text body
        return None
