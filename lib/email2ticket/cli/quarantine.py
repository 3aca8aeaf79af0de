"""`email2ticket quarantine list|show|replay|delete`: the admin's side of poison-message handling."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .common import delivery_store, print_json, terminal_safe

if TYPE_CHECKING:
    import argparse

    from ..config.model import Config
    from ..store.delivery import DeliveryStore
    from ..store.quarantine import QuarantineStore


def register(parser: argparse.ArgumentParser) -> None:
    """The `quarantine` subcommand group."""
    sub = parser.add_subparsers(dest="sub", required=True)
    listing = sub.add_parser("list", help="quarantined messages, with their attempts and error")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)
    show = sub.add_parser("show", help="one quarantined message, or its raw bytes with --raw")
    show.add_argument("id", type=int)
    show.add_argument("--raw", action="store_true", help="write the message exactly as received to stdout")
    show.set_defaults(handler=cmd_show)
    replay = sub.add_parser("replay", help="deliver quarantined messages again, with today's code and rules")
    replay.add_argument("ids", type=int, nargs="*", metavar="ID")
    replay.add_argument("--all", action="store_true", help="every quarantined message")
    replay.set_defaults(handler=cmd_replay)
    delete = sub.add_parser("delete", help="drop quarantined messages (and their failed attempts)")
    delete.add_argument("ids", type=int, nargs="+", metavar="ID")
    delete.set_defaults(handler=cmd_delete)


def _store(config: Config) -> QuarantineStore:
    from ..store.quarantine import QuarantineStore

    return QuarantineStore(config.resolved_database_url(), lock_timeout=config.lock_timeout)


def cmd_list(args: argparse.Namespace, config: Config) -> int:
    items = _store(config).entries()
    if args.json:
        print_json([q.as_json() for q in items])
        return 0
    if not items:
        print("the quarantine is empty")
    for q in items:
        sender, subject = terminal_safe(q.sender or "-"), terminal_safe(q.subject or "")
        print(f"{q.id:<6} {q.received_at[:19]} {q.attempts} attempts  {sender}  {subject}")
        print(f"       error: {terminal_safe(q.error)}")
    return 0


def cmd_show(args: argparse.Namespace, config: Config) -> int:
    item, reasons, raw = _store(config).show(args.id)
    if args.raw:
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
        return 0
    for key, value in item.as_json().items():
        if key != "attempts":
            print(f"{key}: {terminal_safe(value) if value is not None else '-'}")
    print("reasons:")
    for reason in reasons:
        print(f"  {terminal_safe(reason)}")
    return 0


def cmd_replay(args: argparse.Namespace, config: Config) -> int:
    """Replay each message; one line per message, and a progress bar on a terminal when there are many."""
    ids = _store(config).ids() if args.all else list(args.ids)
    if not ids:
        print("nothing to replay" if args.all else "error: name message ids, or --all", file=sys.stderr)
        return 0 if args.all else 2
    bar = len(ids) > 1 and sys.stderr.isatty()
    failed = 0
    store = delivery_store(config)
    try:
        for done, row in enumerate(ids, start=1):
            failed += _replay(row, store, config)
            if bar:
                _progress(done, len(ids))
    finally:
        store.dispose()
    if bar:
        print(file=sys.stderr)
    return 1 if failed else 0


def _replay(row: int, store: DeliveryStore, config: Config) -> int:
    """Replay one message and print its line; 1 when it is still failing."""
    from ..delivery.redeliver import redeliver
    from ..errors import describe_error
    from ..exits import DeliveryError

    try:
        outcome, _skipped = redeliver(row, "replay", store, config)
    except DeliveryError as exc:
        print(f"message {row}: still failing, left in the quarantine: {terminal_safe(exc.reason)}", flush=True)
        return 1
    except Exception as exc:  # the bug is still there: say so, keep going
        print(f"message {row}: still failing, left in the quarantine: {terminal_safe(describe_error(exc))}", flush=True)
        return 1
    ticket = f", ticket #{outcome.ticket}" if outcome.ticket else ""
    print(f"message {row}: replayed as message {outcome.message_row} ({outcome.action}{ticket})", flush=True)
    return 0


def _progress(done: int, total: int, width: int = 30) -> None:
    filled = width * done // total
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} replayed")
    sys.stderr.flush()


def cmd_delete(args: argparse.Namespace, config: Config) -> int:
    store = _store(config)
    for row in args.ids:
        removed = store.delete(row)
        print(f"deleted message {row} from the quarantine ({removed} record(s) with its failed attempts)")
    return 0
