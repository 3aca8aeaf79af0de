"""`email2ticket settings ...` and `separators ...`: the rule settings and reply separators an admin edits."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .common import admin_store, print_json, terminal_safe

if TYPE_CHECKING:
    import argparse

    from ..config.model import Config


def register_settings(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sub", required=True)
    show = sub.add_parser("show", help="every rule setting with its value")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_settings_show)
    set_ = sub.add_parser("set", help="change a rule setting (booleans: on/off/true/false)")
    set_.add_argument("key")
    set_.add_argument("value")
    set_.set_defaults(handler=cmd_settings_set)


def register_separators(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sub", required=True)
    listing = sub.add_parser("list", help="the separators in force")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_separators_list)
    for name, text in (("add", "add a separator: plain text, or /regex/"), ("remove", "remove a separator")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("text")
        cmd.set_defaults(handler=cmd_separators_edit, op=name)
    sub.add_parser("reset", help="drop your edits, back to the built-in list").set_defaults(
        handler=cmd_separators_edit, op="reset", text=None
    )
    test = sub.add_parser("test", help="show where the separators in force cut a message on stdin")
    test.add_argument("--add", action="append", default=[], metavar="TEXT", help="also try this separator (not saved)")
    test.add_argument("--json", action="store_true")
    test.set_defaults(handler=cmd_separators_test)


def cmd_settings_show(args: argparse.Namespace, config: Config) -> int:
    settings = admin_store(config).show_settings()
    if args.json:
        print_json({item["name"]: item["value"] for item in settings})
        return 0
    for item in settings:
        changed = "" if item["value"] == item["default"] else f"   (default: {item['default']})"
        print(f"{item['name']} = {terminal_safe(item['value'])}{terminal_safe(changed)}\n    {item['description']}")
    return 0


def cmd_settings_set(args: argparse.Namespace, config: Config) -> int:
    item = admin_store(config).set_setting(args.key, args.value)
    print(f"{item['name']} = {terminal_safe(item['value'])}")
    return 0


def cmd_separators_list(args: argparse.Namespace, config: Config) -> int:
    separators = admin_store(config).list_separators()
    if args.json:
        print_json(separators)
    for item in [] if args.json else separators:
        print(f"{item['origin']:8}  {terminal_safe(item['text'])}")
    return 0


def cmd_separators_edit(args: argparse.Namespace, config: Config) -> int:
    store = admin_store(config)
    actions = {"add": store.add_separator, "remove": store.remove_separator}
    print(terminal_safe(store.reset_separators() if args.op == "reset" else actions[args.op](args.text)))
    return 0


def cmd_separators_test(args: argparse.Namespace, config: Config) -> int:
    """The message on stdin with the reply cut marked: delivery's own extract_reply, with the stored separators."""
    from ..cli.deliver import read_message
    from ..mail.message import parse_message
    from ..reply.cut_report import as_json, render, try_separators
    from ..reply.extract import InvalidSeparator
    from ..store.admin import AdminError

    separators = [item["text"] for item in admin_store(config).list_separators()]
    message = parse_message(read_message(sys.stdin.buffer, config.max_message_bytes))
    try:
        cut = try_separators(message, separators, args.add)
    except InvalidSeparator as exc:
        raise AdminError(str(exc)) from exc
    if args.json:
        print_json(as_json(cut))
    else:
        print(terminal_safe(render(message, cut), multiline=True))  # the message's own lines, escapes shown
    return 0
