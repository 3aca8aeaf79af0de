"""Deliveries: the audit trail (`messages list|show|release`) and the quarantine (`quarantine list|replay|delete`).

Each record shows its decision exactly as stored: the "<rule>: <sentence>" reasons `explain` prints, the
envelope, the sender verification verdict, the ticket it touched, and the message as text (an HTML-only mail as
its text conversion: never as HTML). The raw bytes are a download. Release and replay are the commands' own
operation, delivery/redeliver.py `redeliver`, through the one delivery layer.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...delivery.redeliver import Kind, redeliver
from ...errors import describe_error
from ...exits import DeliveryError
from ...mail.message import parse_message
from ...store.admin import AdminError
from ...store.browse import MessageFilter, message_actions, message_page
from ...store.quarantine import QuarantineStore
from ..downloads import download
from ..guard import page, row_param
from ..state import WebState, web_state
from ..views import flash, redirect, render

TEXT_SHOWN = 200_000  # characters of a message's text shown on its page; the raw download has all of it


def _day(text: str | None, field: str, problems: list[str]) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.append(f"{field}: expected a date as YYYY-MM-DD, not {text[:40]!r}")
        return None


def _number(text: str | None) -> int:
    try:
        return max(1, min(int(text or "1"), 1_000_000))
    except ValueError:
        return 1


async def messages(request: Request) -> Response:
    state = web_state(request)
    params = request.query_params
    problems: list[str] = []
    since, until = _day(params.get("since"), "from", problems), _day(params.get("until"), "to", problems)
    where = MessageFilter(
        action=params.get("action") or None,
        since=datetime.combine(since, time(), UTC) if since else None,
        until=datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,  # the whole last day
        sender=(params.get("sender") or "").strip()[:320] or None,
    )
    number, size = _number(params.get("page")), state.settings.page_size
    found = await run_in_threadpool(message_page, state.admin, where, number, size)
    actions = await run_in_threadpool(message_actions, state.admin)
    filters = {k: params.get(k, "") for k in ("action", "since", "until", "sender")}
    return render(request, "messages.html", page=found, actions=actions, filters=filters, problems=problems)


def _record(state: WebState, row: int) -> tuple[dict[str, Any], bytes]:
    try:
        return state.admin.show_message(row)
    except AdminError as exc:
        raise HTTPException(404, str(exc)) from None


def _as_text(raw: bytes) -> dict[str, Any]:
    """What the page shows of the message itself: its headers and its text (HTML converted, never rendered)."""
    parsed = parse_message(raw)
    text = parsed.text
    if len(text) > TEXT_SHOWN:
        text = text[:TEXT_SHOWN] + "\n[... cut here: download the raw message for the rest]"
    attachments = [(a.filename or "(no name)", a.content_type, len(a.data)) for a in parsed.attachments]
    return {
        "headers": parsed.headers,
        "text": text,
        "html_converted": parsed.html_converted,
        "attachments": attachments,
    }


async def message(request: Request) -> Response:
    state = web_state(request)
    record, raw = await run_in_threadpool(_record, state, row_param(request))
    shown = await run_in_threadpool(_as_text, raw)
    verdict = json.dumps(record["auth_verdict"], ensure_ascii=False, indent=2) if record["auth_verdict"] else None
    return render(request, "message.html", record=record, shown=shown, verdict=verdict)


async def raw_message(request: Request) -> Response:
    row = row_param(request)
    _, raw = await run_in_threadpool(_record, web_state(request), row)
    return download(raw, f"message-{row}.eml", f"message-{row}.eml", media_type="message/rfc822")


def _redeliver(state: WebState, row: int, kind: Kind) -> tuple[str, int | None]:
    """The command's line for a release or replay, and the new record's row."""
    with state.delivery_store() as store:
        outcome, rule = redeliver(row, kind, store, state.config)
    ticket = f", ticket #{outcome.ticket}" if outcome.ticket else ""
    done = f"released past {rule}, delivered" if kind == "release" else "replayed"
    return f"Message {row}: {done} as message {outcome.message_row} ({outcome.action}{ticket}).", outcome.message_row


async def _redeliver_page(request: Request, kind: Kind, back: str) -> Response:
    state, row = web_state(request), row_param(request)
    try:
        line, new_row = await run_in_threadpool(_redeliver, state, row, kind)
    except AdminError as exc:
        flash(request, str(exc), "error")
        return redirect(back)
    except Exception as exc:  # the bug that quarantined it is still there: say so, keep it where it is
        reason = exc.reason if isinstance(exc, DeliveryError) else describe_error(exc)
        flash(request, f"Message {row}: still failing, left where it was: {reason}", "error")
        return redirect(back)
    flash(request, line)
    return redirect(f"/messages/{new_row}" if new_row else back)


async def release(request: Request) -> Response:
    return await _redeliver_page(request, "release", f"/messages/{row_param(request)}")


async def quarantine(request: Request) -> Response:
    state = web_state(request)
    store = QuarantineStore(state.config.resolved_database_url(), lock_timeout=state.config.lock_timeout)
    entries = await run_in_threadpool(store.entries)
    return render(request, "quarantine.html", entries=entries)


async def replay(request: Request) -> Response:
    return await _redeliver_page(request, "replay", "/quarantine")


async def delete(request: Request) -> Response:
    state, row = web_state(request), row_param(request)
    store = QuarantineStore(state.config.resolved_database_url(), lock_timeout=state.config.lock_timeout)
    try:
        removed = await run_in_threadpool(store.delete, row)
    except AdminError as exc:
        flash(request, str(exc), "error")
    else:
        flash(request, f"Deleted message {row} from the quarantine ({removed} record(s) with its failed attempts).")
    return redirect("/quarantine")


def routes() -> list[Route]:
    return [
        page("/messages", messages),
        page("/messages/{row:int}", message),
        page("/messages/{row:int}/raw", raw_message),
        page("/messages/{row:int}/release", release, methods=("POST",)),
        page("/quarantine", quarantine),
        page("/quarantine/{row:int}/replay", replay, methods=("POST",)),
        page("/quarantine/{row:int}/delete", delete, methods=("POST",)),
    ]
