"""Configure Email Settings, tab "Reply Separators": the list in force, the admin's edits, and a live test.

The list is the built-in one plus the admin's edits (AdminStore.list_separators, marked built-in or added);
add, remove and reset are `separators add|remove|reset`. The live test is `separators test`: a pasted reply or
an uploaded .eml, cut by reply.cut_report.try_separators (delivery's own extract_reply) with the separators in
force plus an unsaved candidate, and laid out by the same report the command prints.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...mail.message import ParsedMessage, parse_message
from ...reply.cut_report import CUT_MARK, summary, try_separators
from ...reply.cut_report import render as render_cut
from ...reply.extract import InvalidSeparator
from ...store.admin import AdminError
from ..guard import FORM_LIMITS, form_text, page
from ..state import web_state
from ..views import flash, redirect, render

UPLOAD_SLACK = 1024 * 1024  # the form around an uploaded message


async def separators_page(request: Request, status_code: int = 200, **result: Any) -> Response:
    listed = await run_in_threadpool(web_state(request).admin.list_separators)
    context: dict[str, Any] = {"separators": listed, "test": None, "reply": "", "candidate": "", "error": None}
    context.update(result)
    return render(request, "separators.html", status_code, **context)


async def show(request: Request) -> Response:
    return await separators_page(request)


async def edit(request: Request) -> Response:
    store = web_state(request).admin
    op = request.path_params["op"]
    if op not in ("add", "remove", "reset"):
        raise HTTPException(404)
    text = await form_text(request, "text")
    try:
        if op == "add":
            message = await run_in_threadpool(store.add_separator, text.strip())
        elif op == "remove":
            message = await run_in_threadpool(store.remove_separator, text)
        else:
            message = await run_in_threadpool(store.reset_separators)
    except AdminError as exc:
        flash(request, str(exc), "error")
        return redirect("/separators")
    flash(request, message[0].upper() + message[1:] + ".")
    return redirect("/separators")


async def _message(request: Request, limit: int) -> ParsedMessage | str:
    """The message to test: the uploaded .eml when there is one, else the pasted text as a plain body."""
    form = await request.form(**FORM_LIMITS)
    upload = form.get("eml")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(limit + 1)
        if len(raw) > limit:
            return f"the uploaded message is larger than max_message_bytes ({limit} bytes)"
        if not raw:
            return "the uploaded file is empty"
        return await run_in_threadpool(parse_message, raw)
    pasted = await form_text(request, "reply")
    if not pasted.strip():
        return "paste a reply or choose a .eml file to test"
    return ParsedMessage(body=pasted.replace("\r\n", "\n"))


async def test(request: Request) -> Response:
    state = web_state(request)
    candidate = (await form_text(request, "candidate")).strip()
    reply = await form_text(request, "reply")
    message = await _message(request, state.config.max_message_bytes)
    if isinstance(message, str):
        return await separators_page(request, 400, reply=reply, candidate=candidate, error=message)
    in_force = [item["text"] for item in await run_in_threadpool(state.admin.list_separators)]
    candidates = [candidate] if candidate else []
    try:
        cut = await run_in_threadpool(try_separators, message, in_force, candidates)
    except InvalidSeparator as exc:
        return await separators_page(request, 400, reply=reply, candidate=candidate, error=str(exc))
    lines = [(line.startswith(CUT_MARK), line) for line in render_cut(message, cut).split("\n")]
    report = lines[2 : next(i for i, (_, line) in enumerate(lines) if line == "--- the comment as stored ---") - 1]
    result = {
        "summary": summary(cut),
        "lines": report,
        "comment": cut.text,
        "separator": cut.separator or cut.quote_separator,
        "by_candidate": bool(candidate)
        and (cut.separator or cut.quote_separator) == candidate
        and candidate not in in_force,
    }
    return await separators_page(request, reply=reply, candidate=candidate, test=result)


def routes(max_message_bytes: int) -> list[Route]:
    return [
        page("/separators", show),
        page("/separators/test", test, methods=("POST",), max_body_size=max_message_bytes + UPLOAD_SLACK),
        page("/separators/{op:str}", edit, methods=("POST",)),
    ]
