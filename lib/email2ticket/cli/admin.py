"""`email2ticket`: the admin command (schema, users, rule settings, separators, tickets, explain, audit).

Each subcommand is a small function from parsed arguments to printed output and an exit status.
Errors are one line on stderr and a non-zero status, never a traceback: 1 for a refused request
(unknown id, invalid value), 2 for a malformed command line, 75 when the database is unavailable.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..config.load import load_config
from ..config.model import Config
from ..exits import DeliveryError
from ..mail.envelope import envelope_from
from .common import ArgumentError, Parser, report_crash, report_failure

if TYPE_CHECKING:
    import argparse

    from ..store.admin import AdminStore

Handler = Callable[["argparse.Namespace", Config], int]


def build_parser() -> Parser:
    parser = Parser(prog="email2ticket", description="Administer the email2ticket help-desk gateway.")
    parser.add_argument("--config", metavar="FILE", help="configuration file")
    parser.add_argument("--database-url", metavar="URL", help="overrides database_url and $EMAIL2TICKET_DATABASE_URL")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    commands.add_parser("init", help="create or upgrade the database schema").set_defaults(handler=cmd_init)
    _user_commands(commands.add_parser("user", help="help-desk users and technicians"))
    _settings_commands(commands.add_parser("settings", help="rule settings stored in the database"))
    _separator_commands(commands.add_parser("separators", help="reply separators (built-in list plus your edits)"))
    _ticket_commands(commands.add_parser("ticket", help="one ticket"))
    tickets = commands.add_parser("tickets", help="all tickets").add_subparsers(dest="sub", required=True)
    listing = tickets.add_parser("list", help="list tickets")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_tickets_list)

    explain = commands.add_parser("explain", help="show in words how a message on stdin would be delivered")
    explain.add_argument("--sender", metavar="ADDR", help="envelope sender, as the MTA would pass it")
    explain.add_argument("--recipient", metavar="ADDR")
    explain.set_defaults(handler=cmd_explain)
    _message_commands(commands.add_parser("messages", help="the audit trail of delivered messages"))
    _operations_commands(commands)
    from . import serve

    serve.register(commands.add_parser("serve", help="run the resident delivery service (pipe socket, LMTP)"))
    return parser


def _operations_commands(commands: Any) -> None:
    """`quarantine` (poison messages) and `doctor` (installation checks), from their own modules."""
    from . import doctor, notifications, quarantine

    quarantine.register(commands.add_parser("quarantine", help="messages that failed repeatedly (poison messages)"))
    doctor.register(commands.add_parser("doctor", help="check configuration, database, pipe user and MTA wiring"))
    notifications.register(commands.add_parser("notifications", help="outgoing notifications: list, retry, bounces"))
    notifications.register_keys(commands.add_parser("keys", help="the HMAC keys of our Message-ID tokens"))


def _user_commands(parser: argparse.ArgumentParser) -> None:
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


def _settings_commands(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sub", required=True)
    show = sub.add_parser("show", help="every rule setting with its value")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_settings_show)
    set_ = sub.add_parser("set", help="change a rule setting (booleans: on/off/true/false)")
    set_.add_argument("key")
    set_.add_argument("value")
    set_.set_defaults(handler=cmd_settings_set)


def _separator_commands(parser: argparse.ArgumentParser) -> None:
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


def _ticket_commands(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sub", required=True)
    show = sub.add_parser("show", help="a ticket with its comments and attachments")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_ticket_show)
    assign = sub.add_parser("assign", help="assign a ticket to a technician")
    assign.add_argument("id", type=int)
    assign.add_argument("email")
    assign.set_defaults(handler=cmd_ticket_assign)
    close = sub.add_parser("close", help="close a ticket")
    close.add_argument("id", type=int)
    close.set_defaults(handler=cmd_ticket_close)


def _message_commands(parser: argparse.ArgumentParser) -> None:
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
    from .notifications import register_release

    register_release(sub)


def _timestamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- handlers -----------------------------------------------------------------------------------


def _store(config: Config) -> AdminStore:
    from ..store.admin import AdminStore

    return AdminStore(config.resolved_database_url(), lock_timeout=config.lock_timeout)


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False))


def cmd_init(args: argparse.Namespace, config: Config) -> int:
    """Create or upgrade the schema, and make the HMAC key of our Message-ID tokens if there is none."""
    from ..outbound.keys import create_keyring

    print(_store(config).init())
    path = config.notifications.key_path()
    existed = path.exists()
    try:
        keyring = create_keyring(path)
    except DeliveryError as exc:
        if config.notifications.enabled:
            raise
        # Without notifications the key only recognises replies to mail we never sent: not worth failing for.
        print(f"warning: no notification key made ({exc.reason}); needed once [notifications] is on", file=sys.stderr)
        return 0
    state = "in force" if existed else "created, readable only by this user"
    print(f"notification key {keyring.newest.kid} {state}: {path}")
    return 0


def cmd_user_add(args: argparse.Namespace, config: Config) -> int:
    user = _store(config).add_user(args.email, name=args.name, technician=args.technician, access=args.access)
    print(_user_line(user))
    return 0


def cmd_user_set(args: argparse.Namespace, config: Config) -> int:
    print(_user_line(_store(config).set_user(args.email, technician=args.technician, access=args.access)))
    return 0


def cmd_user_disable(args: argparse.Namespace, config: Config) -> int:
    print(_user_line(_store(config).disable_user(args.email)))
    return 0


def cmd_user_list(args: argparse.Namespace, config: Config) -> int:
    users = _store(config).list_users()
    if args.json:
        _print_json(users)
    for user in [] if args.json else users:
        print(_user_line(user))
    return 0


def _user_line(user: dict[str, Any]) -> str:
    role = f"technician ({user['access']} access)" if user["technician"] else "requester"
    name = f" ({user['name']})" if user["name"] else ""
    return f"{user['email']}{name}: {role}{', disabled' if user['disabled'] else ''}"


def cmd_settings_show(args: argparse.Namespace, config: Config) -> int:
    settings = _store(config).show_settings()
    if args.json:
        _print_json({item["name"]: item["value"] for item in settings})
        return 0
    for item in settings:
        changed = "" if item["value"] == item["default"] else f"   (default: {item['default']})"
        print(f"{item['name']} = {item['value']}{changed}\n    {item['description']}")
    return 0


def cmd_settings_set(args: argparse.Namespace, config: Config) -> int:
    item = _store(config).set_setting(args.key, args.value)
    print(f"{item['name']} = {item['value']}")
    return 0


def cmd_separators_list(args: argparse.Namespace, config: Config) -> int:
    separators = _store(config).list_separators()
    if args.json:
        _print_json(separators)
    for item in [] if args.json else separators:
        print(f"{item['origin']:8}  {item['text']}")
    return 0


def cmd_separators_edit(args: argparse.Namespace, config: Config) -> int:
    store = _store(config)
    actions = {"add": store.add_separator, "remove": store.remove_separator}
    print(store.reset_separators() if args.op == "reset" else actions[args.op](args.text))
    return 0


def cmd_separators_test(args: argparse.Namespace, config: Config) -> int:
    """The message on stdin with the reply cut marked: delivery's own extract_reply, with the stored separators."""
    from ..cli.deliver import read_message
    from ..mail.message import parse_message
    from ..reply.cut_report import as_json, render
    from ..reply.extract import InvalidSeparator, extract_reply, parse_separator
    from ..store.admin import AdminError

    for text in args.add:
        try:
            parse_separator(text)
        except InvalidSeparator as exc:
            raise AdminError(str(exc)) from exc
    separators = [item["text"] for item in _store(config).list_separators()]
    separators += [text for text in args.add if text not in separators]
    message = parse_message(read_message(sys.stdin.buffer, config.max_message_bytes))
    cut = extract_reply(message, separators)
    if args.json:
        _print_json(as_json(cut))
    else:
        print(render(message, cut))
    return 0


def cmd_ticket_show(args: argparse.Namespace, config: Config) -> int:
    ticket = _store(config).show_ticket(args.id)
    if args.json:
        _print_json(ticket)
        return 0
    print(f"Ticket #{ticket['id']}: {ticket['subject']}  [{ticket['status']}]")
    print(f"Requester: {ticket['requester']}   Technician: {ticket['technician'] or '-'}")
    print(f"Opened: {ticket['created_at']}   Message-ID: {ticket['message_id'] or '-'}\n")
    if ticket.get("unverified_sender"):
        print("Opened by an UNVERIFIED sender: the From: address claimed a privilege it could not prove.\n")
    print(ticket["description"])
    _print_attachments(ticket["attachments"])
    for comment in ticket["comments"]:
        verified = "verified" if comment.get("verified") else "sender not verified"
        print(f"\n--- comment by {comment['author']} ({verified}) at {comment['created_at']}\n{comment['body']}")
        _print_attachments(comment["attachments"])
    return 0


def _print_attachments(attachments: list[dict[str, Any]]) -> None:
    for a in attachments:
        print(f"  [attachment] {a['filename'] or '(no name)'}  {a['content_type']}  {a['size']} bytes")


def cmd_ticket_assign(args: argparse.Namespace, config: Config) -> int:
    ticket = _store(config).assign_ticket(args.id, args.email)
    print(f"ticket #{ticket['id']} assigned to {ticket['technician']}")
    return 0


def cmd_ticket_close(args: argparse.Namespace, config: Config) -> int:
    ticket = _store(config).close_ticket(args.id)
    print(f"ticket #{ticket['id']} closed")
    return 0


def cmd_tickets_list(args: argparse.Namespace, config: Config) -> int:
    tickets = _store(config).list_tickets()
    if args.json:
        _print_json(tickets)
    for t in [] if args.json else tickets:
        print(f"#{t['id']:<6} {t['status']:7} {t['requester']:30} {t['technician'] or '-':24} {t['subject']}")
    return 0


def cmd_messages_list(args: argparse.Namespace, config: Config) -> int:
    messages = _store(config).list_messages(action=args.action, since=args.since)
    if args.json:
        _print_json(messages)
    for m in [] if args.json else messages:
        ticket = f"#{m['ticket']}" if m["ticket"] else "-"
        print(
            f"{m['id']:<6} {m['received_at'][:19]} {m['action']:9} {ticket:7} exit {m['exit_code']:<3} "
            f"{m['sender'] or '-'}  {m['subject'] or ''}"
        )
    return 0


def cmd_messages_show(args: argparse.Namespace, config: Config) -> int:
    record, raw = _store(config).show_message(args.id)
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


def cmd_explain(args: argparse.Namespace, config: Config) -> int:
    """The same delivery as `email2ticket-deliver --dry-run`, told in words."""
    from ..cli.deliver import deliver_message, read_message
    from ..store.delivery import DeliveryStore

    envelope = envelope_from(args.sender, args.recipient, None, os.environ)
    raw = read_message(sys.stdin.buffer, config.max_message_bytes)
    store = DeliveryStore(config.resolved_database_url(), lock_timeout=config.lock_timeout)
    outcome = deliver_message(raw, envelope, store, config, dry_run=True)
    for result in outcome.decision.results:
        print(result.explain_line())
    print(f"Decision: {outcome.decision.summary()}")
    for notice in outcome.decision.notices:
        print(f"Notify: {notice.kind} to {notice.recipient}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from ..store.admin import AdminError

    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "reads_own_config", False):  # doctor reports a broken configuration as a check
            from .doctor import cmd_doctor

            return cmd_doctor(args)
        config = load_config(args.config, database_url=args.database_url)
        handler: Handler = args.handler
        return handler(args, config)
    except ArgumentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except DeliveryError as exc:
        return int(report_failure(exc))
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:
        return 0
    except Exception as exc:
        return int(report_crash(exc))


if __name__ == "__main__":
    sys.exit(main())
