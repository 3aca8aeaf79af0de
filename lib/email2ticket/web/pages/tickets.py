"""Tickets: `tickets list` and `ticket show|assign|close` in a page, and the attachments as downloads.

Read-only apart from assign and close, the two changes the commands make. Every field is mail-derived text
and is escaped by the templates; attachments are only ever downloads (web/downloads.py).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...store.admin import AdminError
from ...store.browse import attachment, technicians, ticket_detail, ticket_page
from ..downloads import download
from ..guard import form_text, page, row_param
from ..state import web_state
from ..views import flash, redirect, render

STATUSES = ("open", "closed")


async def tickets(request: Request) -> Response:
    state = web_state(request)
    status = request.query_params.get("status") or None
    status = status if status in STATUSES else None
    try:
        number = max(1, min(int(request.query_params.get("page") or "1"), 1_000_000))
    except ValueError:
        number = 1
    found = await run_in_threadpool(ticket_page, state.admin, status, number, state.settings.page_size)
    return render(request, "tickets.html", page=found, status=status or "", statuses=STATUSES)


async def ticket(request: Request) -> Response:
    state, number = web_state(request), row_param(request, "ticket")
    try:
        shown = await run_in_threadpool(ticket_detail, state.admin, number)
    except AdminError as exc:
        raise HTTPException(404, str(exc)) from None
    staff = await run_in_threadpool(technicians, state.admin)
    return render(request, "ticket.html", ticket=shown, technicians=staff)


async def download_attachment(request: Request) -> Response:
    state = web_state(request)
    number, item = row_param(request, "ticket"), row_param(request, "attachment")
    try:
        filename, _content_type, data = await run_in_threadpool(attachment, state.admin, number, item)
    except AdminError as exc:
        raise HTTPException(404, str(exc)) from None
    return download(data, filename, f"attachment-{item}")


async def assign(request: Request) -> Response:
    state, number = web_state(request), row_param(request, "ticket")
    email = await form_text(request, "technician")
    try:
        shown = await run_in_threadpool(state.admin.assign_ticket, number, email)
    except AdminError as exc:
        flash(request, str(exc), "error")
    else:
        flash(request, f"Ticket #{number} assigned to {shown['technician']}.")
    return redirect(f"/tickets/{number}")


async def close(request: Request) -> Response:
    state, number = web_state(request), row_param(request, "ticket")
    try:
        await run_in_threadpool(state.admin.close_ticket, number)
    except AdminError as exc:
        flash(request, str(exc), "error")
    else:
        flash(request, f"Ticket #{number} closed.")
    return redirect(f"/tickets/{number}")


def routes() -> list[Route]:
    return [
        page("/tickets", tickets),
        page("/tickets/{ticket:int}", ticket),
        page("/tickets/{ticket:int}/attachments/{attachment:int}", download_attachment),
        page("/tickets/{ticket:int}/assign", assign, methods=("POST",)),
        page("/tickets/{ticket:int}/close", close, methods=("POST",)),
    ]
