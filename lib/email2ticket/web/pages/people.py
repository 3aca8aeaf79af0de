"""Users and technicians: `user list|add|set|disable` in a page.

The help-desk access level is the seed's (none, limited, normal, full); what each grants is decided by the
rules (rules/decision.py ACCESS_LEVELS), and every change goes through AdminStore as the command's does.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...rules.decision import ACCESS_LEVELS
from ...store.admin import AdminError
from ..guard import form_text, page
from ..state import web_state
from ..views import flash, redirect, render


async def users(request: Request) -> Response:
    listed = await run_in_threadpool(web_state(request).admin.list_users)
    return render(request, "users.html", users=listed, levels=ACCESS_LEVELS)


async def add_user(request: Request) -> Response:
    store = web_state(request).admin
    email, name = await form_text(request, "email"), (await form_text(request, "name")).strip()
    technician = await form_text(request, "role") == "technician"
    access = await form_text(request, "access")
    try:
        user = await run_in_threadpool(
            lambda: store.add_user(email, name=name or None, technician=technician, access=access or None)
        )
    except AdminError as exc:
        flash(request, str(exc), "error")
    else:
        flash(request, f"Saved {user['email']}.")
    return redirect("/users")


async def set_user(request: Request) -> Response:
    store = web_state(request).admin
    email_text, role, access_text = [await form_text(request, f) for f in ("email", "role", "access")]
    technician = {"technician": True, "requester": False}.get(role)
    try:
        user = await run_in_threadpool(
            lambda: store.set_user(email_text, technician=technician, access=access_text or None)
        )
    except AdminError as exc:
        flash(request, str(exc), "error")
    else:
        kind = f"technician with {user['access']} access" if user["technician"] else "requester"
        flash(request, f"{user['email']} is a {kind}.")
    return redirect("/users")


async def disable_user(request: Request) -> Response:
    store = web_state(request).admin
    email = await form_text(request, "email")
    try:
        user = await run_in_threadpool(store.disable_user, email)
    except AdminError as exc:
        flash(request, str(exc), "error")
    else:
        flash(request, f"{user['email']} is disabled: their mail counts as from an unknown sender.")
    return redirect("/users")


def routes() -> list[Route]:
    return [
        page("/users", users),
        page("/users/add", add_user, methods=("POST",)),
        page("/users/set", set_user, methods=("POST",)),
        page("/users/disable", disable_user, methods=("POST",)),
    ]
