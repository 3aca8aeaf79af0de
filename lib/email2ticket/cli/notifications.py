"""`email2ticket notifications ...`, `keys ...` and `messages release`: the admin's side of notifications
and loop protection.

Notifications that could not be sent wait in the database; `notifications retry` sends the due ones
(or named ones, whatever their state). A hard bounce blocks an address until `notifications unblock`.
The HMAC key that signs our Message-IDs is made by `init` and rotated by `keys rotate`.
Held and ignored mail is released with `messages release ID`: delivered as if it had just arrived,
skipping exactly the check that stopped it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .common import delivery_store, print_json, terminal_safe

if TYPE_CHECKING:
    import argparse

    from ..config.model import Config


def register(parser: argparse.ArgumentParser) -> None:
    """The `notifications` subcommand group."""
    sub = parser.add_subparsers(dest="sub", required=True)
    listing = sub.add_parser("list", help="recent notifications and how their sending went")
    listing.add_argument("--status", choices=("pending", "sent", "failed", "bounced"))
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)
    retry = sub.add_parser("retry", help="send the notifications due for a retry now, or the named ones")
    retry.add_argument("ids", type=int, nargs="*", metavar="ID")
    retry.add_argument("--limit", type=int, default=100, help="at most this many due notifications (default 100)")
    retry.set_defaults(handler=cmd_retry)
    blocked = sub.add_parser("blocked", help="addresses that hard-bounced and are no longer notified")
    blocked.add_argument("--json", action="store_true")
    blocked.set_defaults(handler=cmd_blocked)
    unblock = sub.add_parser("unblock", help="notify a hard-bounced address again")
    unblock.add_argument("address")
    unblock.set_defaults(handler=cmd_unblock)


def register_keys(parser: argparse.ArgumentParser) -> None:
    """The `keys` subcommand group: the HMAC keys of our Message-ID tokens."""
    sub = parser.add_subparsers(dest="sub", required=True)
    sub.add_parser("list", help="the keys in force (ids and dates, never the secrets)").set_defaults(handler=cmd_keys)
    rotate = sub.add_parser("rotate", help="make a new key for new tokens; previous_keys older ones still verify")
    rotate.set_defaults(handler=cmd_rotate)


def cmd_list(args: argparse.Namespace, config: Config) -> int:
    from ..store.outbox import list_notifications

    rows = list_notifications(delivery_store(config), status=args.status, limit=args.limit)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no notifications")
    for n in rows:
        error = f"  ({terminal_safe(n['last_error'])})" if n["last_error"] and n["status"] != "sent" else ""
        print(
            f"{n['id']:<6} {n['created_at'][:19]} {n['status']:8} {n['kind']:18} #{n['ticket_id']:<6} "
            f"{terminal_safe(n['recipient'])}  attempts {n['attempts']}{error}"
        )
    return 0


def cmd_retry(args: argparse.Namespace, config: Config) -> int:
    from ..outbound.send import send

    if not config.notifications.enabled:
        print("error: notifications are not configured ([notifications] from_address)", file=sys.stderr)
        return 1
    store = delivery_store(config)
    try:
        report = send(store, config, ids=tuple(args.ids), due=0 if args.ids else args.limit, force=bool(args.ids))
    finally:
        store.dispose()
    print(terminal_safe(report.describe(), multiline=True))
    return 1 if report.failed else 0


def cmd_blocked(args: argparse.Namespace, config: Config) -> int:
    from ..store.outbox import blocked_addresses

    rows = blocked_addresses(delivery_store(config))
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no address is blocked")
    for b in rows:  # the reason quotes the bounce, which anyone can write
        address, reason = terminal_safe(b["address"]), terminal_safe(b["reason"])
        print(f"{address:40} since {b['created_at'][:19]}  ticket #{b['ticket_id']}  {reason}")
    return 0


def cmd_unblock(args: argparse.Namespace, config: Config) -> int:
    from ..store.outbox import unblock

    address = args.address.strip().lower()
    if unblock(delivery_store(config), address):
        print(f"{address} will be notified again")
        return 0
    print(f"error: {address} is not blocked", file=sys.stderr)
    return 1


def cmd_keys(args: argparse.Namespace, config: Config) -> int:
    from ..outbound.keys import describe_keyring

    path = config.notifications.key_path()
    print(f"key file: {path}")
    for line in describe_keyring(path, config.notifications.previous_keys):
        print(line)
    return 0


def cmd_rotate(args: argparse.Namespace, config: Config) -> int:
    from ..outbound.keys import rotate_keyring

    path = config.notifications.key_path()
    keyring = rotate_keyring(path, config.notifications.previous_keys)
    print(f"new key {keyring.newest.kid} in {path}; {len(keyring.keys) - 1} previous key(s) still verify")
    return 0
