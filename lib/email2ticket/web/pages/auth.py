"""Signing in and out.

The login form is the one public page. Its POST needs the CSRF token of the anonymous session the form was
served in (login CSRF), is throttled per account name and per client before any password is checked
(web/throttle.py), and on success starts a fresh session: new CSRF secret, the account's id and session version,
the time of sign-in. Wrong name and wrong password get the same answer.
"""

from __future__ import annotations

import math
import secrets
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..guard import LOGIN, form_text, page, signed_in
from ..state import web_state
from ..views import CSRF_FIELD, flash, redirect, render


def client_address(request: Request) -> str:
    """The client's address: the proxy's X-Forwarded-For only when that proxy is trusted (web/app.py)."""
    return request.client.host if request.client else "unknown"


async def login_form(request: Request) -> Response:
    if await signed_in(request) is not None:
        return redirect("/")
    return render(request, "login.html", name="", error=None)


async def login(request: Request) -> Response:
    state = web_state(request)
    name, password = (await form_text(request, "name")).strip(), await form_text(request, "password")
    client = client_address(request)
    wait = state.throttle.wait(name, client)
    if wait > 0:
        minutes = max(1, math.ceil(wait / 60))
        response = render(
            request,
            "login.html",
            429,
            name=name,
            error=f"Too many failed sign-ins: try again in {minutes} minute{'s' if minutes > 1 else ''}.",
        )
        response.headers["retry-after"] = str(math.ceil(wait))
        return response
    account = await run_in_threadpool(state.accounts.authenticate, name, password)
    if account is None:
        state.throttle.failed(name, client)
        return render(request, "login.html", 403, name=name, error="Wrong account name or password.")
    state.throttle.succeeded(name)
    request.session.clear()
    request.session.update(
        {"account": account.id, "version": account.session_version, "since": int(time.time())},
    )
    request.session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return redirect("/")


async def logout(request: Request) -> Response:
    request.session.clear()
    request.session[CSRF_FIELD] = secrets.token_urlsafe(32)
    flash(request, "Signed out.")
    return redirect(LOGIN)


def routes() -> list[Route]:
    return [
        page(LOGIN, login_form, public=True),
        page(LOGIN, login, methods=("POST",), public=True),
        page("/logout", logout, methods=("POST",)),
    ]
