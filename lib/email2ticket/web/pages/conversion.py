"""Configure Email Settings, tab "Email to Ticket Conversion": every rule setting, as `settings set` sets it.

Each field shows the setting's value, its one-line help (config/rule_settings.py DESCRIPTIONS) and, after a
refused save, the error beside it. Values are validated by the function `settings set` uses (stored_form, which
AdminStore.set_setting calls); nothing is saved while any field is invalid.

Many admins at once: the form carries the value each field showed. Only the fields this admin changed are
written, so two admins saving different fields both keep their change; a field someone else changed since the
form was shown is not overwritten, and the page says so (AdminStore.set_setting with `expected`).
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...config.rule_settings import CHOICES, RuleSettings, SettingError, setting_names, stored_form
from ...store.admin import AdminStore, SettingConflict
from ..guard import FORM_LIMITS, page
from ..state import web_state
from ..views import flash, redirect, render

# The seed product's wording for its checkbox; every other label is the setting's name in words.
LABELS = {
    "restrict_replies": "Restrict Replies to Technicians and the Requester of the Ticket",
    "unknown_senders": "Mail from unknown senders",
    "reopen_on_reply": "Reopen a closed ticket on reply",
    "bare_number_references": "A bare trailing number refers to a ticket",
    "dkim_alignment": "DKIM alignment",
    "trusted_authserv_ids": "Trusted authserv-ids",
    "max_new_tickets_per_sender_per_hour": "New tickets per sender per hour",
    "max_autoreplies_per_day": "Acknowledgements per address per day",
    "max_autoreplies_per_hour": "Acknowledgements per hour in total",
}
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Replies and new tickets",
        (
            "restrict_replies",
            "unknown_senders",
            "reopen_on_reply",
            "bare_number_references",
            "reply_prefixes",
            "forward_prefixes",
        ),
    ),
    ("Sender verification", ("sender_verification", "dkim_alignment", "trusted_authserv_ids", "trusted_hosts")),
    ("Loop protection", ("spam_headers", "allowed_senders", "own_addresses", "max_new_tickets_per_sender_per_hour")),
    (
        "Acknowledgements and notifications",
        (
            "acknowledge_new_tickets",
            "acknowledge_unverified",
            "notify_technician_of_updates",
            "notify_requester_of_technician_comments",
            "max_autoreplies_per_day",
            "max_autoreplies_per_hour",
        ),
    ),
)


class Field(Struct, frozen=True):
    name: str
    label: str
    help: str
    kind: str  # checkbox, select, number, text
    value: str
    default: str
    choices: tuple[str, ...] = ()
    error: str | None = None


def _kind(name: str) -> str:
    default = getattr(RuleSettings(), name)
    if isinstance(default, bool):
        return "checkbox"
    if isinstance(default, int):
        return "number"
    return "select" if name in CHOICES else "text"


Sections = list[tuple[str, list[Field]]]


def fields(shown: list[dict[str, Any]], values: dict[str, str], errors: dict[str, str]) -> Sections:
    """The form's sections; `values` override what is stored (an admin's refused input is shown back)."""
    by_name = {item["name"]: item for item in shown}
    grouped = [(title, [n for n in names if n in by_name]) for title, names in GROUPS]
    placed = {n for _, names in grouped for n in names}
    others = [n for n in setting_names() if n not in placed]
    if others:
        grouped.append(("Other settings", others))
    return [
        (
            title,
            [
                Field(
                    name,
                    LABELS.get(name, name.replace("_", " ").capitalize()),
                    by_name[name]["description"],
                    _kind(name),
                    values.get(name, by_name[name]["value"]),
                    by_name[name]["default"],
                    CHOICES.get(name, ()),
                    errors.get(name),
                )
                for name in names
            ],
        )
        for title, names in grouped
    ]


async def settings_form(request: Request) -> Response:
    shown = await run_in_threadpool(web_state(request).admin.show_settings)
    values = {item["name"]: item["value"] for item in shown}
    return render(request, "settings.html", sections=fields(shown, {}, {}), shown=values)


def _save(store: AdminStore, changes: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Write each changed field, refusing to overwrite one someone else changed meanwhile; returns conflicts."""
    conflicts: dict[str, str] = {}
    for name, (value, expected) in changes.items():
        for attempt in range(2):
            try:
                store.set_setting(name, value, expected=expected)
                break
            except SettingConflict as exc:
                conflicts[name] = str(exc)
                break
            except IntegrityError:  # two first saves of the same setting at once: the second re-reads
                if attempt:
                    raise
    return conflicts


async def save_settings(request: Request) -> Response:
    state = web_state(request)
    form = await request.form(**FORM_LIMITS)
    submitted: dict[str, str] = {}  # what the admin sent
    originals: dict[str, str] = {}  # what their form showed
    changes: dict[str, tuple[str, str]] = {}
    errors: dict[str, str] = {}
    for name in setting_names():
        values = [v for v in form.getlist(name) if isinstance(v, str)]
        original = form.get(f"shown-{name}")
        if not values or not isinstance(original, str):
            continue  # not on the form this admin saw
        submitted[name], originals[name] = values[-1], original  # a checkbox sends "off", then "on" if checked
        if values[-1].strip() == original.strip():
            continue
        try:
            stored_form(name, values[-1])  # exactly what `settings set` checks, before anything is written
        except SettingError as exc:
            errors[name] = str(exc)
        changes[name] = (values[-1], original)
    if errors:
        shown = await run_in_threadpool(state.admin.show_settings)
        problem = "Nothing was saved: correct the fields marked below."
        return _refused(request, shown, submitted, errors, originals, problem)
    conflicts = await run_in_threadpool(_save, state.admin, changes)
    if not conflicts:
        flash(request, f"Saved {len(changes)} setting(s)." if changes else "Nothing changed.")
        return redirect("/settings")
    # The others were saved. The conflicting fields show this admin's value beside the error, over what is
    # stored now, so that saving again is a decision taken knowing the other admin's value.
    shown = await run_in_threadpool(state.admin.show_settings)
    current = {item["name"]: item["value"] for item in shown}
    mine = {name: submitted[name] for name in conflicts}
    problem = "Some fields were changed by someone else meanwhile and were not saved; the other changes were."
    return _refused(request, shown, mine, conflicts, current, problem)


def _refused(
    request: Request,
    shown: list[dict[str, Any]],
    values: dict[str, str],
    errors: dict[str, str],
    originals: dict[str, str],
    problem: str,
) -> Response:
    stored = {item["name"]: item["value"] for item in shown}
    return render(
        request,
        "settings.html",
        400,
        sections=fields(shown, values, errors),
        shown={name: originals.get(name, value) for name, value in stored.items()},
        problem=problem,
    )


def routes() -> list[Route]:
    return [page("/settings", settings_form), page("/settings", save_settings, methods=("POST",))]
