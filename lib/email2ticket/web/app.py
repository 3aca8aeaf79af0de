"""The web admin as one ASGI application: the pages' routes, the session, the security headers, the proxy.

From the outside in: the trusted proxy's X-Forwarded-Proto/-For are applied (uvicorn's ProxyHeadersMiddleware,
only when `--trusted-proxy` names the proxy: from anyone else they are ignored, so no client can claim TLS or
another address); every response, error pages included, gets the security headers; the session cookie is read
and written; request bodies are capped (256 KiB, the separator test's upload excepted); the route's guard
(web/guard.py) demands a session and the CSRF token. Database trouble is a 503 page naming the reason, two
admins writing the same row at once a 409 page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ..exits import DeliveryError
from ..store.admin import AdminError
from .pages import auth, conversion, deliveries, outbox, overview, people, separators, tickets
from .sessions import SecurityHeadersMiddleware, SessionMiddleware
from .state import WebSettings, WebState
from .views import error_page

STATIC = Path(__file__).with_name("static")
MAX_BODY = 256 * 1024
TITLES = {403: "Forbidden", 404: "Not found", 405: "Method not allowed", 413: "Too large"}


def routes(settings: WebSettings) -> list[BaseRoute]:
    return [
        *auth.routes(),
        *overview.routes(),
        *conversion.routes(),
        *separators.routes(settings.config.max_message_bytes),
        *people.routes(),
        *deliveries.routes(),
        *outbox.routes(),
        *tickets.routes(),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = TITLES.get(exc.status_code, "Error")
    detail = exc.detail if exc.status_code == 404 and exc.detail != "Not Found" else ""
    response = error_page(request, exc.status_code, title, detail or f"{exc.status_code} {title}.")
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DeliveryError)
    return error_page(request, 503, "Database unavailable", exc.reason)


async def refused(request: Request, exc: Exception) -> Response:
    return error_page(request, 400, "Refused", str(exc))


async def conflict(request: Request, exc: Exception) -> Response:
    """Two admins wrote the same row at the same moment (the same new user, separator or setting)."""
    detail = "Someone else changed the same thing at the same moment: reload the page to see it, then try again."
    return error_page(request, 409, "Conflict", detail)


class WebAdmin:
    """The application `email2ticket web` serves; `state` is what its requests share."""

    def __init__(self, settings: WebSettings) -> None:
        self.state = WebState.create(settings)
        key = self.state.accounts.session_key()  # made on first start; also checks the schema (or makes SQLite's)
        self.starlette = Starlette(
            routes=routes(settings),
            middleware=[Middleware(SessionMiddleware, key=key, idle=settings.session_idle)],
            exception_handlers={
                HTTPException: http_error,
                DeliveryError: unavailable,
                AdminError: refused,
                IntegrityError: conflict,
            },
            max_body_size=MAX_BODY,
        )
        self.starlette.state.web = self.state
        app: ASGIApp = SecurityHeadersMiddleware(self.starlette)
        if settings.trusted_proxies:
            from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

            proxied: Any = ProxyHeadersMiddleware(app, trusted_hosts=list(settings.trusted_proxies))  # type: ignore[arg-type]
            app = proxied
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
