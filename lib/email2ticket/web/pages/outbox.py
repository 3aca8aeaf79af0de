"""Configure Email Settings, tab "Outgoing Notifications": what is queued, what failed, who is blocked, and how
mail leaves.

Retry is `notifications retry ID` (outbound/send.py `send(..., ids=..., force=True)`), Unblock is
`notifications unblock` (store/outbox.py). The transport configuration lives in the TOML file the MTA's pipe
reads, so it is shown read-only here, with a button that sends a test notification through it
(outbound/probe.py).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...errors import describe_error
from ...exits import DeliveryError
from ...outbound.probe import send_test_notification
from ...outbound.send import send
from ...outbound.transport import SendFailed
from ...store.outbox import blocked_addresses, list_notifications, unblock
from ..guard import form_text, page, row_param
from ..state import WebState, web_state
from ..views import flash, redirect, render

STATUSES = ("pending", "failed", "sent", "bounced")
LISTED = 200


def _read(state: WebState, status: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with state.delivery_store() as store:
        return list_notifications(store, status=status, limit=LISTED), blocked_addresses(store)


def _configuration(state: WebState) -> list[tuple[str, str]]:
    settings = state.config.notifications
    values = [(name, getattr(settings, name)) for name in settings.__struct_fields__]
    shown = [(name, "-" if value is None else str(value)) for name, value in values]
    return [("configuration file", state.config.source or "(none: built-in defaults)"), *shown]


async def notifications(request: Request) -> Response:
    state = web_state(request)
    status = request.query_params.get("status") or None
    if status not in (None, *STATUSES):
        status = None
    rows, blocked = await run_in_threadpool(_read, state, status)
    settings = state.config.notifications
    return render(
        request,
        "notifications.html",
        rows=rows,
        blocked=blocked,
        status=status or "",
        statuses=STATUSES,
        enabled=settings.enabled,
        configuration=_configuration(state),
        test_recipient=settings.address() or "",
    )


def _retry(state: WebState, row: int) -> str:
    with state.delivery_store() as store:
        return send(store, state.config, ids=(row,), force=True).describe()


async def retry(request: Request) -> Response:
    state, row = web_state(request), row_param(request)
    if not state.config.notifications.enabled:
        flash(request, "Notifications are not configured ([notifications] from_address).", "error")
        return redirect("/notifications")
    try:
        report = await run_in_threadpool(_retry, state, row)
    except DeliveryError as exc:
        flash(request, f"Notification {row} not sent: {exc.reason}", "error")
    else:
        flash(request, f"Notification {row}: {report}.", "error" if "1 failed" in report else "ok")
    return redirect("/notifications")


def _unblock(state: WebState, address: str) -> bool:
    with state.delivery_store() as store:
        return unblock(store, address)


async def unblock_address(request: Request) -> Response:
    address = (await form_text(request, "address")).strip().lower()
    if await run_in_threadpool(_unblock, web_state(request), address):
        flash(request, f"{address} will be notified again.")
    else:
        flash(request, f"{address} is not blocked.", "error")
    return redirect("/notifications")


async def test_notification(request: Request) -> Response:
    state = web_state(request)
    recipient = (await form_text(request, "recipient")).strip()
    if not state.config.notifications.enabled:
        flash(request, "Notifications are off ([notifications] from_address, method): nothing was sent.", "error")
        return redirect("/notifications")
    try:
        message_id = await run_in_threadpool(send_test_notification, state.config.notifications, recipient)
    except SendFailed as exc:
        flash(request, f"The test notification was not sent: {exc.reason}", "error")
    except (ValueError, DeliveryError) as exc:
        reason = exc.reason if isinstance(exc, DeliveryError) else str(exc)
        flash(request, f"The test notification was not sent: {reason}", "error")
    except Exception as exc:
        flash(request, f"The test notification was not sent: {describe_error(exc)}", "error")
    else:
        flash(request, f"A test notification to {recipient} was handed to the MTA as {message_id}.")
    return redirect("/notifications")


def routes() -> list[Route]:
    return [
        page("/notifications", notifications),
        page("/notifications/{row:int}/retry", retry, methods=("POST",)),
        page("/notifications/unblock", unblock_address, methods=("POST",)),
        page("/notifications/test", test_notification, methods=("POST",)),
    ]
