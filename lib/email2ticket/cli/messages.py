"""`email2ticket messages ...`: the audit trail of delivered messages, and releasing held mail."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from .common import admin_store, delivery_store, json_text, print_json, terminal_safe

if TYPE_CHECKING:
    from ..config.model import Config


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sub", required=True)
    listing = sub.add_parser("list", help="delivered messages with their decision")
    listing.add_argument("--action", help="only this action (create, update, note, duplicate, hold, ignore, ...)")
    listing.add_argument(
        "--since",
        type=_since,
        help="received at or after this ISO date or time (2026-11-26, 2026-11-26T08:00, UTC unless a zone is "
        "given, as in 2026-11-26T08:00+01:00), or within this age before now (90s, 30m, 1h, 2d, 1w)",
    )
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_messages_list)
    show = sub.add_parser("show", help="one message's record, or its raw bytes with --raw")
    show.add_argument("id", type=int)
    show.add_argument("--raw", action="store_true", help="write the message exactly as received to stdout")
    show.set_defaults(handler=cmd_messages_show)
    _register_release(sub)


AGE = re.compile(r"([0-9]+)([smhdw])")
AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
SINCE_FORMATS = "an ISO date or time (2026-11-26, 2026-11-26T08:00) or an age (30m, 1h, 2d)"


def parse_since(text: str, now: datetime) -> datetime:
    """--since as a moment: an ISO date or time (naive means UTC, as the store keeps it) or an age before `now`.

    An admin asking "what arrived in the last hour" should not have to write today's date; `now` is a
    parameter so that the arithmetic is tested without a clock. ValueError carries the sentence to show.
    """
    age = AGE.fullmatch(text)
    try:
        if age:
            return now - timedelta(**{AGE_UNITS[age[2]]: int(age[1])})
        moment = datetime.fromisoformat(text)
        # In UTC: SQLite keeps times as UTC text and compares text, so another zone would be off by its offset.
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # OverflowError: an age or a zone beyond the year 1 or 9999
        raise ValueError(f"expected {SINCE_FORMATS}: {text!r}") from None


def _since(text: str) -> datetime:
    # ArgumentTypeError, not ValueError: argparse would print this function's name instead of the sentence.
    try:
        return parse_since(text, datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_messages_list(args: argparse.Namespace, config: Config) -> int:
    messages = admin_store(config).list_messages(action=args.action, since=args.since)
    if args.json:
        print_json(messages)
    for m in [] if args.json else messages:
        ticket = f"#{m['ticket']}" if m["ticket"] else "-"
        print(
            f"{m['id']:<6} {m['received_at'][:19]} {m['action']:9} {ticket:7} exit {m['exit_code']:<3} "
            f"{terminal_safe(m['sender'] or '-')}  {terminal_safe(m['subject'] or '')}"
        )
    return 0


def cmd_messages_show(args: argparse.Namespace, config: Config) -> int:
    record, raw = admin_store(config).show_message(args.id)
    if args.raw:
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
        if record.get("raw_exact") is False:  # a duplicate's body, taken from a first copy that differs from it
            print(
                f"warning: message {args.id} is a duplicate whose body was not stored again; this is the body of "
                f"message {record['raw_body_from']}, whose line endings differ from the copy received",
                file=sys.stderr,
            )
        return 0
    for key, value in record.items():
        if key not in ("reasons", "auth_verdict"):
            print(f"{key}: {terminal_safe(value) if value is not None else '-'}")
    print("reasons:")
    for reason in record["reasons"]:
        print(f"  {terminal_safe(reason)}")
    verdict = record.get("auth_verdict")
    print(f"sender verification: {json_text(verdict, indent=2) if verdict else '-'}")
    return 0


def _register_release(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    release = sub.add_parser("release", help="deliver held or ignored messages as if they had just arrived")
    release.add_argument("ids", type=int, nargs="+", metavar="ID")
    release.add_argument("--json", action="store_true")
    release.set_defaults(handler=cmd_release)


def cmd_release(args: argparse.Namespace, config: Config) -> int:
    """Deliver each held or ignored message again, past the check that stopped it."""
    from ..exits import DeliveryError
    from ..store.admin import AdminError

    failed = 0
    for row in args.ids:
        try:
            line = _release(row, config)
        except (AdminError, DeliveryError) as exc:
            failed += 1
            line = f"message {row}: not released: {exc.reason if isinstance(exc, DeliveryError) else exc}"
        print(terminal_safe(line))
    return 1 if failed else 0


def _release(row: int, config: Config) -> str:
    from ..delivery.redeliver import redeliver

    store = delivery_store(config)
    try:
        outcome, rule = redeliver(row, "release", store, config)
    finally:
        store.dispose()
    ticket = f", ticket #{outcome.ticket}" if outcome.ticket else ""
    return f"message {row}: released past {rule}, delivered as message {outcome.message_row} " + (
        f"({outcome.action}{ticket})"
    )
