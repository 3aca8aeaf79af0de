"""`email2ticket queue ...`: the queues new tickets land in, chosen by the address the mail was sent to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .common import admin_store, print_json, terminal_safe

if TYPE_CHECKING:
    import argparse

    from ..config.model import Config


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sub", required=True)
    add = sub.add_parser("add", help="add a queue, or addresses to one: mail to them opens its tickets there")
    add.add_argument("name")
    add.add_argument("--address", action="append", default=[], metavar="ADDR", help="repeatable")
    add.set_defaults(handler=cmd_queue_add)
    listing = sub.add_parser("list", help="the queues with their addresses")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_queue_list)
    remove = sub.add_parser("remove", help="remove a queue: its tickets move to the default queue")
    remove.add_argument("name")
    remove.set_defaults(handler=cmd_queue_remove)
    default = sub.add_parser("set-default", help="where mail to no queue's address lands")
    default.add_argument("name")
    default.set_defaults(handler=cmd_queue_set_default)


def cmd_queue_add(args: argparse.Namespace, config: Config) -> int:
    from ..store.routing_admin import add_queue

    queue = add_queue(admin_store(config), args.name, args.address)
    addresses = ", ".join(queue["addresses"]) or "no address"
    print(f"queue {terminal_safe(queue['name'])}: {terminal_safe(addresses)}")
    return 0


def cmd_queue_list(args: argparse.Namespace, config: Config) -> int:
    from ..store.routing_admin import list_queues

    queues = list_queues(admin_store(config))
    if args.json:
        print_json(queues)
        return 0
    for queue in queues:
        default = " (default)" if queue["default"] else ""
        addresses = ", ".join(queue["addresses"]) or "-"
        print(f"{terminal_safe(queue['name'])}{default}  {queue['tickets']} ticket(s)  {terminal_safe(addresses)}")
    return 0


def cmd_queue_remove(args: argparse.Namespace, config: Config) -> int:
    from ..store.routing_admin import remove_queue

    print(terminal_safe(remove_queue(admin_store(config), args.name)))
    return 0


def cmd_queue_set_default(args: argparse.Namespace, config: Config) -> int:
    from ..store.routing_admin import set_default_queue

    print(terminal_safe(set_default_queue(admin_store(config), args.name)))
    return 0
