"""Sessions in a signed, expiring cookie, and the security headers every response carries.

The session (the account's id and session version, the CSRF secret, the sign-in time, one-shot messages) is a
small JSON object signed with itsdangerous under a key the web admin keeps in the database (store/accounts.py):
nothing is stored server-side, and nothing in the cookie can be changed without the key. The cookie is HttpOnly
(no script reads it, so the CSRF secret can live in it) and SameSite=Strict (no other site's page sends it),
Secure when the request came over TLS; it is re-signed on each response, so `idle` seconds without a request end
it. The absolute limit and the account checks are the guard's (web/guard.py).
"""

from __future__ import annotations

import hashlib
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "e2t_session"
SALT = "email2ticket.web.session"

# No script at all, styles only from our own files, nothing may frame us, forms post only to us.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


def serializer(key: bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(key, salt=SALT, signer_kwargs={"digest_method": hashlib.sha256})


def cookie_header(value: str, *, max_age: int, secure: bool) -> str:
    flags = "; Secure" if secure else ""
    return f"{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{flags}"


class SessionMiddleware:
    """Puts the verified session into scope["session"] (Starlette's request.session) and writes it back."""

    def __init__(self, app: ASGIApp, *, key: bytes, idle: int) -> None:
        self.app, self.signer, self.idle = app, serializer(key), idle

    def load(self, raw: str | None) -> dict[str, Any]:
        if not raw:
            return {}
        try:
            data = self.signer.loads(raw, max_age=self.idle)
        except BadSignature:  # forged, from an older key, or expired (SignatureExpired is a BadSignature)
            return {}
        return data if isinstance(data, dict) else {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = HTTPConnection(scope).cookies.get(COOKIE)
        scope["session"] = self.load(raw)
        secure = scope.get("scheme") == "https"

        async def send_with_session(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                session = scope["session"]
                if session:
                    value = self.signer.dumps(session)
                    headers.append("set-cookie", cookie_header(str(value), max_age=self.idle, secure=secure))
                elif raw:
                    headers.append("set-cookie", cookie_header("", max_age=0, secure=secure))
            await send(message)

        await self.app(scope, receive, send_with_session)


class SecurityHeadersMiddleware:
    """The headers of SECURITY_HEADERS on every response; no caching but for static files; HSTS over TLS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                headers["cache-control"] = "private, max-age=3600" if static else "no-store"
                if scope.get("scheme") == "https":
                    headers["strict-transport-security"] = "max-age=31536000"
            await send(message)

        await self.app(scope, receive, send_with_headers)
