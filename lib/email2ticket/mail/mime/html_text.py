"""HTML bodies as text, for mail that has no text/plain part.

inscriptis is imported only when such a message arrives: most mail never needs it.
"""

import re

from ...errors import describe_error
from .notes import Notes

_SCRIPT_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_BLOCK_TAG = re.compile(r"<(?:br|/p|/div|/tr|/li|/h[1-6])\b[^>]*>", re.IGNORECASE)


def html_to_text(html: str, notes: Notes) -> str:
    if not html.strip():
        return ""
    try:
        from inscriptis import get_text  # lazy: ~30 ms of imports most mails never need

        return str(get_text(html.replace("\x00", "")))
    except Exception as exc:
        notes.add(f"HTML body could not be converted by inscriptis: {describe_error(exc)}")
        return _strip_tags(html)


def _strip_tags(html: str) -> str:
    """Crude HTML-to-text, only for when inscriptis fails."""
    import html as html_module  # lazy: only needed on this rare path

    text = _BLOCK_TAG.sub("\n", _SCRIPT_STYLE.sub("", html))
    return html_module.unescape(_TAG.sub("", text))
