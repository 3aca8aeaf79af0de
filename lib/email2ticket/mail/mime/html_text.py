"""HTML bodies as text, for mail that has no text/plain part: inscriptis' text, made as the HTML is parsed.

The conversion itself (no document tree, bounded work, stopping at an element) is html_stream.py; it,
inscriptis and lxml are imported only when such a message arrives: most mail never needs them, and this
module is on the delivery's start-up path.
"""

import re

from ...errors import describe_error
from .notes import Notes

_SCRIPT_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_BLOCK_TAG = re.compile(r"<(?:br|/p|/div|/tr|/li|/h[1-6])\b[^>]*>", re.IGNORECASE)
_INSCRIPTIS_XML_DECLARATION = r"^<\?xml [^>]+?\?>"  # inscriptis.get_text's own (compiled when used)


def html_to_text(html: str, notes: Notes) -> str:
    """The text of an HTML body: inscriptis' `get_text(html)`, converted as the HTML is parsed."""
    if not html.strip():
        return ""
    try:
        from .html_stream import convert  # lazily: ~30 ms of imports most mails never need

        source = html.replace("\x00", "").strip()
        if source.startswith("<?xml "):  # as get_text prepares the source
            source = re.sub(_INSCRIPTIS_XML_DECLARATION, "", source, count=1)
        if not source:
            return ""
        # a document without an element is where get_text retries with the source as preformatted text
        converted = convert(source) or convert("<pre>" + source + "</pre>")
        return converted.text if converted is not None else ""
    except Exception as exc:
        notes.add(f"HTML body could not be converted by inscriptis: {describe_error(exc)}")
        return _strip_tags(html)


def _strip_tags(html: str) -> str:
    """Crude HTML-to-text, only for when inscriptis fails."""
    import html as html_module  # lazy: only needed on this rare path

    text = _BLOCK_TAG.sub("\n", _SCRIPT_STYLE.sub("", html))
    return html_module.unescape(_TAG.sub("", text))
