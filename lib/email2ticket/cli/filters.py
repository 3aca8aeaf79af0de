"""`email2ticket filters ...`: the admin's postmaster filters, and trying them on a message (rules/filters.py)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from .common import admin_store, print_json, terminal_safe

if TYPE_CHECKING:
    import argparse

    from ..config.model import Config


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sub", required=True)
    add = sub.add_parser("add", help="add a filter at the end of the list")
    add.add_argument("name")
    add.add_argument(
        "--if", dest="conditions", action="append", default=[], metavar="CONDITION",
        help='"FIELD OP [VALUE]", e.g. "Subject contains URGENT", "List-Id exists" (repeatable, all must hold)',
    )  # fmt: skip
    add.add_argument(
        "--then", dest="actions", action="append", default=[], metavar="ACTION",
        help="queue=NAME, priority=low|normal|high|urgent, tag=WORD, assign=EMAIL, status=open|closed, hold, ignore",
    )  # fmt: skip
    add.set_defaults(handler=cmd_filters_add)
    listing = sub.add_parser("list", help="the filters, in the order they are checked")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_filters_list)
    remove = sub.add_parser("remove", help="remove a filter")
    remove.add_argument("name")
    remove.set_defaults(handler=cmd_filters_remove)
    move = sub.add_parser("move", help="check a filter at POSITION (1: first)")
    move.add_argument("name")
    move.add_argument("position", type=int)
    move.set_defaults(handler=cmd_filters_move)
    test = sub.add_parser("test", help="which filters match the message on stdin, and what they would do")
    test.add_argument("--recipient", metavar="ADDR", help="envelope recipient; else $ORIGINAL_RECIPIENT, $RECIPIENT")
    test.add_argument("--sender", metavar="ADDR", help="envelope sender; else $SENDER")
    test.add_argument("--json", action="store_true")
    test.set_defaults(handler=cmd_filters_test)


def cmd_filters_add(args: argparse.Namespace, config: Config) -> int:
    from ..store.routing_admin import add_filter, describe_filter

    item = add_filter(admin_store(config), args.name, args.conditions, args.actions)
    print(f"added filter {terminal_safe(describe_filter(item))}")
    return 0


def cmd_filters_list(args: argparse.Namespace, config: Config) -> int:
    from ..store.routing_admin import describe_filter, list_filters

    filters = list_filters(admin_store(config))
    if args.json:
        print_json(filters)
    for item in [] if args.json else filters:
        print(terminal_safe(describe_filter(item)))
    return 0


def cmd_filters_remove(args: argparse.Namespace, config: Config) -> int:
    from ..store.routing_admin import remove_filter

    print(terminal_safe(remove_filter(admin_store(config), args.name)))
    return 0


def cmd_filters_move(args: argparse.Namespace, config: Config) -> int:
    from ..store.routing_admin import move_filter

    print(terminal_safe(move_filter(admin_store(config), args.name, args.position)))
    return 0


def cmd_filters_test(args: argparse.Namespace, config: Config) -> int:
    """The filters in force on the message on stdin, by the function delivery uses; nothing is written."""
    from ..mail.envelope import envelope_from
    from ..store.routing_admin import try_filters
    from .deliver import read_message

    envelope = envelope_from(args.sender, args.recipient, None, os.environ)
    raw = read_message(sys.stdin.buffer, config.max_message_bytes)
    report = try_filters(admin_store(config), raw, envelope)
    if args.json:
        print_json(report)
        return 0
    for name in report["unusable"]:
        print(f"not usable: {terminal_safe(name)}")
    if not report["matched"]:
        print(f"no filter matches ({len(report['checked'])} checked)")
    for hit in report["matched"]:
        print(f"filter {terminal_safe(hit['name'])}: {terminal_safe(hit['explain'])}")
    return 0
