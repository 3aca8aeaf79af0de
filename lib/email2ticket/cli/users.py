"""`email2ticket user ...`: help-desk users, technicians and their access levels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import admin_store, print_json, terminal_safe

if TYPE_CHECKING:
    import argparse

    from ..config.model import Config


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sub", required=True)
    add = sub.add_parser("add", help="add a user, or update an existing one")
    add.add_argument("email")
    add.add_argument("--name")
    add.add_argument("--technician", action="store_true", help="a technician (default access: limited)")
    add.add_argument("--access", choices=("none", "limited", "normal", "full"))
    add.set_defaults(handler=cmd_user_add)
    set_ = sub.add_parser("set", help="change a user's role or access level")
    set_.add_argument("email")
    role = set_.add_mutually_exclusive_group()
    role.add_argument("--technician", dest="technician", action="store_const", const=True)
    role.add_argument("--requester", dest="technician", action="store_const", const=False)
    set_.add_argument("--access", choices=("none", "limited", "normal", "full"))
    set_.set_defaults(handler=cmd_user_set, technician=None)
    disable = sub.add_parser("disable", help="disable a user: their mail is treated as from an unknown sender")
    disable.add_argument("email")
    disable.set_defaults(handler=cmd_user_disable)
    listing = sub.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_user_list)


def cmd_user_add(args: argparse.Namespace, config: Config) -> int:
    user = admin_store(config).add_user(args.email, name=args.name, technician=args.technician, access=args.access)
    print(_user_line(user))
    return 0


def cmd_user_set(args: argparse.Namespace, config: Config) -> int:
    print(_user_line(admin_store(config).set_user(args.email, technician=args.technician, access=args.access)))
    return 0


def cmd_user_disable(args: argparse.Namespace, config: Config) -> int:
    print(_user_line(admin_store(config).disable_user(args.email)))
    return 0


def cmd_user_list(args: argparse.Namespace, config: Config) -> int:
    users = admin_store(config).list_users()
    if args.json:
        print_json(users)
    for user in [] if args.json else users:
        print(_user_line(user))
    return 0


def _user_line(user: dict[str, Any]) -> str:
    role = f"technician ({user['access']} access)" if user["technician"] else "requester"
    name = f" ({terminal_safe(user['name'])})" if user["name"] else ""
    return f"{terminal_safe(user['email'])}{name}: {role}{', disabled' if user['disabled'] else ''}"
