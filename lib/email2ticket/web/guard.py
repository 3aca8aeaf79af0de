"""Who may reach a page: every route is made by `page()`, which demands a valid session (all but the login
page) and, for every POST, the CSRF token of that session in the form.

Putting both checks in the one function that builds every route means no page can forget them; a test walks
the application's routes and checks that each one refuses a visitor without a session.

A session is valid while its signature holds (web/sessions.py, which also ends it after the idle time), it is
younger than the absolute limit, and its account still exists with the session version it was signed for (a
new password or a removed account ends it at once).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Sequence

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..store.accounts import Account
from .state import web_state
from .views import CSRF_FIELD, error_page, redirect

Endpoint = Callable[[Request], Awaitable[Response]]
LOGIN = "/login"
MAX_ROW = 2**31 - 1  # PostgreSQL's integer
FORM_LIMITS = {"max_files": 1, "max_fields": 200, "max_part_size": 256 * 1024}


async def signed_in(request: Request) -> Account | None:
    """The account of this request's session, or None (and the session cleared) when it is not valid."""
    session = request.session
    account_id, version, since = session.get("account"), session.get("version"), session.get("since")
    if not isinstance(account_id, int) or not isinstance(version, int) or not isinstance(since, int | float):
        return None
    state = web_state(request)
    if time.time() - since > state.settings.session_max:
        session.clear()
        return None
    account = await run_in_threadpool(state.accounts.current, account_id, version)
    if account is None:
        session.clear()
    return account


async def csrf_ok(request: Request) -> bool:
    """The form carries this session's CSRF token (compared in constant time)."""
    expected = request.session.get(CSRF_FIELD)
    if not isinstance(expected, str) or not expected:
        return False
    form = await request.form(**FORM_LIMITS)
    sent = form.get(CSRF_FIELD)
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), expected.encode())


def csrf_refused(request: Request) -> Response:
    return error_page(
        request,
        403,
        "Form refused",
        "The form was not sent by a page of this session (it may have expired): reload the page and try again.",
    )


def page(
    path: str,
    endpoint: Endpoint,
    *,
    methods: Sequence[str] = ("GET",),
    public: bool = False,
    max_body_size: int | None = None,
) -> Route:
    """A route whose endpoint runs only for a signed-in session, and for a POST only with its CSRF token."""

    async def guarded(request: Request) -> Response:
        request.state.account = None
        if not public:
            account = await signed_in(request)
            if account is None:
                return redirect(LOGIN)
            request.state.account = account
        if request.method == "POST" and not await csrf_ok(request):
            return csrf_refused(request)
        return await endpoint(request)

    guarded.__name__ = endpoint.__name__
    return Route(path, guarded, methods=list(methods), name=endpoint.__name__, max_body_size=max_body_size)


async def form_text(request: Request, name: str, default: str = "") -> str:
    """One text field of the (already parsed) form; an upload or a missing field gives `default`."""
    value = (await request.form(**FORM_LIMITS)).get(name)
    return value if isinstance(value, str) else default


def row_param(request: Request, name: str = "row") -> int:
    """A numeric path parameter as a row id: 404 beyond what a database integer holds."""
    from starlette.exceptions import HTTPException

    value = request.path_params[name]
    if not isinstance(value, int) or not 0 < value <= MAX_ROW:
        raise HTTPException(404)
    return value
