"""The overview: what came in over the last week (a chart), what waits for an admin, and the doctor's checks.

The counts link to the pages that act on them; the checks are `email2ticket doctor`'s own (ops/doctor.py
run_checks), cached for a few minutes because one of them starts a process.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...store.browse import hourly_counts, watch_counts
from ..chart import hourly_chart
from ..guard import page
from ..state import web_state
from ..views import flash, redirect, render

DAYS = 7


async def overview(request: Request) -> Response:
    state = web_state(request)
    now = datetime.now(UTC)
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=DAYS * 24 - 1)
    counts = await run_in_threadpool(hourly_counts, state.admin, since)
    watched = await run_in_threadpool(watch_counts, state.admin)
    checks = await run_in_threadpool(state.doctor)
    chart = hourly_chart(counts, now, DAYS * 24)
    return render(request, "overview.html", chart=chart, counts=watched, checks=checks, days=DAYS)


async def rerun_doctor(request: Request) -> Response:
    state = web_state(request)
    checks = await run_in_threadpool(state.doctor, fresh=True)
    failed = sum(1 for c in checks if not c.ok)
    flash(request, f"Checks run again: {failed} failed." if failed else "Checks run again: all passed.")
    return redirect("/")


def routes() -> list[Route]:
    return [page("/", overview), page("/doctor", rerun_doctor, methods=("POST",))]
