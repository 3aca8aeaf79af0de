"""`email2ticket messages ...`: the audit trail of delivered messages, and releasing held mail."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .common import admin_store, delivery_store, print_json

if TYPE_CHECKING:
    import argparse

    from ..config.model import Config


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sub", required=True)
    listing = sub.add_parser("list", help="delivered messages with their decision")
    listing.add_argument("--action", help="only this action (create, update, note, duplicate, hold, ignore, ...)")
    listing.add_argument("--since", type=_timestamp, help="ISO date or time, e.g. 2026-11-26 or 2026-11-26T08:00")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_messages_list)
    show = sub.add_parser("show", help="one message's record, or its raw bytes with --raw")
    show.add_argument("id", type=int)
    show.add_argument("--raw", action="store_true", help="write the message exactly as received to stdout")
    show.set_defaults(handler=cmd_messages_show)
    _register_release(sub)


def _timestamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_messages_list(args: argparse.Namespace, config: Config) -> int:
    messages = admin_store(config).list_messages(action=args.action, since=args.since)
    if args.json:
        print_json(messages)
    for m in [] if args.json else messages:
        ticket = f"#{m['ticket']}" if m["ticket"] else "-"
        print(
            f"{m['id']:<6} {m['received_at'][:19]} {m['action']:9} {ticket:7} exit {m['exit_code']:<3} "
            f"{m['sender'] or '-'}  {m['subject'] or ''}"
        )
    return 0


def cmd_messages_show(args: argparse.Namespace, config: Config) -> int:
    record, raw = admin_store(config).show_message(args.id)
    if args.raw:
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
        return 0
    for key, value in record.items():
        if key not in ("reasons", "auth_verdict"):
            print(f"{key}: {value if value is not None else '-'}")
    print("reasons:")
    for reason in record["reasons"]:
        print(f"  {reason}")
    verdict = record.get("auth_verdict")
    print(f"sender verification: {json.dumps(verdict, ensure_ascii=False, indent=2) if verdict else '-'}")
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
        print(line)
    return 1 if failed else 0


def _release(row: int, config: Config) -> str:
    from ..cli.deliver import deliver_message
    from ..delivery.core import Release
    from ..mail.envelope import Envelope
    from ..outbound.send import after_delivery
    from ..store.admin import AdminStore

    message, rule = AdminStore(config.resolved_database_url(), lock_timeout=config.lock_timeout).held_message(row)
    envelope = Envelope(message.envelope_sender, message.envelope_recipient, message.queue_id)
    store = delivery_store(config)
    try:
        outcome = deliver_message(
            message.raw, envelope, store, config, dry_run=False, release=Release(row, rule), max_attempts=None
        )
        after_delivery(store, config, outcome)
    finally:
        store.dispose()
    ticket = f", ticket #{outcome.ticket}" if outcome.ticket else ""
    return f"message {row}: released past {rule}, delivered as message {outcome.message_row} " + (
        f"({outcome.decision.action}{ticket})"
    )
