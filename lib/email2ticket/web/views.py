"""Rendering pages: one Jinja2 environment with autoescaping always on, and the helpers every page uses.

Mail is hostile content: subjects, addresses, file names and bodies reach the templates as plain strings and
are escaped by Jinja2 wherever they are written; no template marks mail-derived text as safe. One-shot
messages (after a POST, the page it redirects to says what happened) travel in the session.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

CSRF_FIELD = "csrf"

_environment: Environment | None = None


def environment() -> Environment:
    global _environment
    if _environment is None:
        env = Environment(
            loader=PackageLoader("email2ticket.web", "templates"),
            autoescape=True,  # every template, whatever its name
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["when"] = when
        env.globals["query"] = query
        _environment = env
    return _environment


def when(value: str | datetime | None) -> str:
    """An ISO time from the store as `YYYY-MM-DD HH:MM:SS` (always UTC)."""
    if value is None:
        return "-"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return text[:19].replace("T", " ")


def query(**params: Any) -> str:
    """`?a=1&b=2` of the parameters that have a value (for filter and page links)."""
    present = {k: v for k, v in params.items() if v not in (None, "")}
    return "?" + urlencode(present) if present else ""


def csrf_token(request: Request) -> str:
    """The session's CSRF secret, made when the session has none (the login form's session too)."""
    token = request.session.get(CSRF_FIELD)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_FIELD] = token
    return token


def flash(request: Request, text: str, kind: str = "ok") -> None:
    """A message for the next page this session sees."""
    messages = list(request.session.get("flash", []))[-2:]  # the cookie must stay well under 4 KB
    request.session["flash"] = [*messages, [kind, text[:300]]]


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    account = getattr(request.state, "account", None)
    base = {
        "request_path": request.url.path,
        "account": account.name if account is not None else None,
        "csrf": csrf_token(request),
        "flashes": request.session.pop("flash", []),
    }
    html = environment().get_template(template).render(**base, **context)
    return HTMLResponse(html, status_code=status_code)


def redirect(path: str) -> RedirectResponse:
    """See other: after a POST, the browser GETs `path` (always a path of ours, never a URL from the request)."""
    assert path.startswith("/") and not path.startswith("//"), path
    return RedirectResponse(path, status_code=303)


def error_page(request: Request, status_code: int, title: str, detail: str) -> HTMLResponse:
    return render(request, "error.html", status_code, title=title, detail=detail)
