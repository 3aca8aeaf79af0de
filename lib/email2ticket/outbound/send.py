"""Sending notifications: after a delivery commits, and again later for those that failed.

The rules decide who is notified (rules/notify.py) and the delivery writes those notifications as
`pending` in its own transaction, so a crash can delay a notification but never lose it. This module
is the shell that sends them: claim the rows (store/outbox.py), render each (outbound/render.py, the admin's
templates and the newest HMAC key), hand it to the local MTA (outbound/transport.py), record the result.

A notification failure never fails or defers the delivery: the mail is already committed, and its
exit status must say so. Everything here is caught, recorded on the notification and logged; the row
is retried after the next delivery that finds it due, by the resident service's timer (service/sender.py), or by
`email2ticket notifications retry`.

Nor may sending hold up the next mail: what one delivery sends (its own notifications, then a few that
wait for a retry) shares one budget, `notifications.timeout`, however the relay behaves (each SMTP session
or sendmail run gets what is left: outbound/transport.py). What the budget does not reach stays queued
under its lease and is tried again later; retries are only taken on while the relay takes our mail.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from msgspec import Struct

from ..errors import describe_error
from ..log import write_line
from ..store.notices import LEASE

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..config.model import Config
    from ..signals.tokens import Keyring
    from ..store.delivery import DeliveryStore
    from ..store.notices import OutboxItem
    from .render import Templates

    Sent = tuple[OutboxItem, str | None, str | None]  # (item, the Message-ID it went out with, why it failed)

# Notifications waiting for a retry that one delivery sends on its way out (the rest wait for the next).
RETRY_PER_DELIVERY = 3


class SendReport(Struct, frozen=True):
    """What one round of sending did, for the log and `notifications retry`."""

    sent: tuple[int, ...] = ()
    failed: tuple[tuple[int, str], ...] = ()  # (notification id, reason)
    untried: tuple[int, ...] = ()  # out of time before their turn: still queued, tried again later

    def describe(self) -> str:
        failed = "; ".join(f"#{nid}: {reason}" for nid, reason in self.failed)
        untried = f", {len(self.untried)} not tried in time" if self.untried else ""
        return f"{len(self.sent)} sent, {len(self.failed)} failed{untried}" + (f" ({failed})" if failed else "")


def after_delivery(
    store: DeliveryStore, config: Config, items: tuple[OutboxItem, ...], *, retries_due: bool
) -> SendReport | None:
    """Send what a delivery queued (`items`), plus a few notifications due for a retry when the delivery
    saw any (`retries_due`). Never raises: the delivery committed, and its exit status must not change."""
    if not config.notifications.enabled:
        return None
    due = RETRY_PER_DELIVERY if retries_due else 0
    if not items and not due:
        return None
    try:
        return send(store, config, items=items, due=due, budget=config.notifications.timeout)
    except Exception as exc:
        _log(config, f"notifications after delivery: {describe_error(exc)}; they stay queued for a retry")
        return None


def send(
    store: DeliveryStore,
    config: Config,
    *,
    items: tuple[OutboxItem, ...] = (),
    ids: tuple[int, ...] = (),
    due: int = 0,
    force: bool = False,
    budget: float | None = None,
) -> SendReport:
    """Send `items` (a delivery's own, already leased to it), then claim and send the rows `ids` and up to
    `due` that wait for a retry (only if every one of `items` went out); each failure is recorded on its
    row, not raised. With a `budget` (seconds) all of it ends within that time; without, each notification
    gets `notifications.timeout` of its own (an admin's `notifications retry`, who is watching)."""
    from ..exits import DeliveryError
    from ..store.outbox import claim, finish, note_unsent
    from .keys import keyring_for
    from .render import load_templates

    # A broken key file or template is the admin's to fix, not the notifications' fault: raised before
    # anything is claimed, so nothing counts an attempt, and all of it goes out once fixed. The reason is
    # written on the delivery's own notifications, which stay `pending`.
    try:
        keyring = keyring_for(config.notifications)
        templates = load_templates(config.notifications.templates)
    except DeliveryError as exc:
        note_unsent(store, [item.id for item in items], exc.reason)
        raise
    deadline = None if budget is None else time.monotonic() + budget
    results, untried = _send_all(config, items, keyring, templates, deadline)
    if (ids or due) and not untried and all(error is None for _, _, error in results):
        claimed = claim(store, ids=ids, due=due, lease=LEASE, force=force)
        more, untried = _send_all(config, claimed, keyring, templates, deadline)
        results += more
    if not results and not untried:
        return SendReport()
    if results:
        finish(store, results)
    for item, _, error in results:
        if error is not None:
            _log(config, f"notification {item.id} ({item.fields.kind} to {item.fields.recipient}) not sent: {error}")
    return SendReport(
        tuple(item.id for item, _, error in results if error is None),
        tuple((item.id, error) for item, _, error in results if error is not None),
        tuple(item.id for item in untried),
    )


def _send_all(
    config: Config,
    items: Sequence[OutboxItem],
    keyring: Keyring | None,
    templates: Templates,
    deadline: float | None,
) -> tuple[list[Sent], list[OutboxItem]]:
    """Send each item by `deadline` (None: each within `timeout` of its start); those whose turn comes after
    it are returned untried. Their lease keeps them from being sent twice meanwhile (store/notices.py)."""
    results: list[Sent] = []
    for index, item in enumerate(items):
        if deadline is not None and time.monotonic() >= deadline:
            return results, list(items[index:])
        results.append((item, *_send_one(config, item, keyring, templates, deadline)))
    return results, []


def _send_one(
    config: Config, item: OutboxItem, keyring: Keyring | None, templates: Templates, deadline: float | None
) -> tuple[str | None, str | None]:
    """Render and send one notification: (the Message-ID it went out with, None) or (None, why it failed)."""
    from .render import render
    from .transport import SendFailed
    from .transport import send as transmit

    try:
        if keyring is None:
            raise SendFailed("no notification key file ([notifications] key_file): run `email2ticket init`")
        mail = render(item.fields, templates=templates, config=config.notifications, keyring=keyring)
        transmit(mail, config.notifications, deadline=deadline)
    except SendFailed as exc:
        return None, exc.reason
    except Exception as exc:  # a recipient we cannot write to, a bug: recorded, the delivery stands
        return None, describe_error(exc)
    return mail.message_id, None


def _log(config: Config, line: str) -> None:
    write_line(f"email2ticket: {line}", config.logging, error=True)
