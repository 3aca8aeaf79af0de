"""`email2ticket web` (serve the web admin) and `email2ticket web-user ...` (its accounts).

The accounts are core: their table is made by `init` and these verbs need nothing beyond the core install, so
the first account can be made before the web extra is installed. `web` itself imports the web package only
when it runs, and says how to install the extra when it is missing.
"""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING

from .common import admin_store, print_json

if TYPE_CHECKING:
    import argparse

    from ..config.model import Config
    from ..store.accounts import AccountStore

WEB_EXTRA = "pip install 'email2ticket[web]'"
DEFAULT_LISTEN = "127.0.0.1:8025"


def register_web(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="ADDR",
        help=f"HOST:PORT or [IPv6]:PORT to listen on (default {DEFAULT_LISTEN}: this machine only)",
    )
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        help="the reverse proxy's address (or network): X-Forwarded-Proto and X-Forwarded-For are honoured "
        "only from it (repeatable; default: from nobody)",
    )
    parser.set_defaults(handler=cmd_web)


def register_users(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sub", required=True)
    for verb, text in (("add", "add a web admin account"), ("passwd", "change an account's password")):
        cmd = sub.add_parser(verb, help=text)
        cmd.add_argument("name")
        cmd.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of standard input instead of the terminal",
        )
        cmd.set_defaults(handler=cmd_user_password, verb=verb)
    remove = sub.add_parser("remove", help="remove an account (its open sessions end)")
    remove.add_argument("name")
    remove.set_defaults(handler=cmd_user_remove)
    listing = sub.add_parser("list", help="the web admin accounts")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_user_list)


def _accounts(config: Config) -> AccountStore:
    from ..store.accounts import AccountStore

    return AccountStore(admin_store(config))


def read_password(from_stdin: bool) -> str:
    """The new password: the first line of stdin without its line end, or typed twice on the terminal."""
    from ..store.admin import AdminError

    if from_stdin:
        line = sys.stdin.buffer.readline().decode("utf-8", "replace")
        return line.removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        raise AdminError("no terminal to read the password from: pass it on standard input with --password-stdin")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Repeat it: ") != first:
        raise AdminError("the two passwords differ; nothing changed")
    return first


def cmd_user_password(args: argparse.Namespace, config: Config) -> int:
    from ..store.accounts import check_name, check_password

    accounts = _accounts(config)
    if args.verb == "add":
        check_name(args.name)
    password = check_password(args.name, read_password(args.password_stdin))
    print(accounts.add(args.name, password) if args.verb == "add" else accounts.set_password(args.name, password))
    return 0


def cmd_user_remove(args: argparse.Namespace, config: Config) -> int:
    print(_accounts(config).remove(args.name))
    return 0


def cmd_user_list(args: argparse.Namespace, config: Config) -> int:
    accounts = _accounts(config).accounts()
    if args.json:
        print_json(accounts)
    elif not accounts:
        print("no web account yet: add one with `email2ticket web-user add NAME`")
    for a in [] if args.json else accounts:
        print(f"{a['name']:24} added {a['created_at'][:19]}  last sign-in {(a['last_login_at'] or '-')[:19]}")
    return 0


def cmd_web(args: argparse.Namespace, config: Config) -> int:
    """Serve the web admin until SIGTERM or Ctrl-C."""
    try:
        from ..web.server import serve
    except ModuleNotFoundError as exc:
        print(f"error: the web admin needs the web extra ({exc.name} is missing): {WEB_EXTRA}", file=sys.stderr)
        return 1
    return serve(
        config,
        listen=args.listen,
        trusted_proxies=tuple(args.trusted_proxy),
        config_file=args.config,
        database_url=args.database_url,
    )
