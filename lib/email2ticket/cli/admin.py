"""`email2ticket`: the admin command (schema, users, rule settings, separators, tickets, explain, audit).

Each subcommand is a small function from parsed arguments to printed output and an exit status.
Errors are one line on stderr and a non-zero status, never a traceback: 1 for a refused request
(unknown id, invalid value), 2 for a malformed command line, 75 when the database is unavailable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..config.load import load_config
from ..config.model import Config
from ..exits import DeliveryError
from .common import ArgumentError, Parser, admin_store, report_crash, report_failure, terminal_safe

if TYPE_CHECKING:
    import argparse


Handler = Callable[["argparse.Namespace", Config], int]


def build_parser() -> Parser:
    parser = Parser(prog="email2ticket", description="Administer the email2ticket help-desk gateway.")
    parser.add_argument("--config", metavar="FILE", help="configuration file")
    parser.add_argument("--database-url", metavar="URL", help="overrides database_url and $EMAIL2TICKET_DATABASE_URL")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    from . import (
        doctor,
        explain,
        filters,
        messages,
        metrics,
        notifications,
        policy,
        quarantine,
        queues,
        serve,
        tickets,
        users,
        web,
    )

    commands.add_parser("init", help="create or upgrade the database schema").set_defaults(handler=cmd_init)
    users.register(commands.add_parser("user", help="help-desk users and technicians"))
    policy.register_settings(commands.add_parser("settings", help="rule settings stored in the database"))
    separators = commands.add_parser("separators", help="reply separators (built-in list plus your edits)")
    policy.register_separators(separators)
    tickets.register_ticket(commands.add_parser("ticket", help="one ticket"))
    tickets.register_tickets(commands.add_parser("tickets", help="all tickets"))
    queues.register(commands.add_parser("queue", help="queues: where new tickets land, by recipient address"))
    filters.register(commands.add_parser("filters", help="postmaster filters: route, tag, prioritise, hold mail"))
    explain.register(commands.add_parser("explain", help="show in words how a message on stdin would be delivered"))
    messages.register(commands.add_parser("messages", help="the audit trail of delivered messages"))
    quarantine.register(commands.add_parser("quarantine", help="messages that failed repeatedly (poison messages)"))
    doctor.register(commands.add_parser("doctor", help="check configuration, database, pipe user and MTA wiring"))
    notifications.register(commands.add_parser("notifications", help="outgoing notifications: list, retry, bounces"))
    notifications.register_keys(commands.add_parser("keys", help="the HMAC keys of our Message-ID tokens"))
    serve.register(commands.add_parser("serve", help="run the resident delivery service (pipe socket, LMTP)"))
    metrics.register(commands.add_parser("metrics", help="write Prometheus metrics for node-exporter's textfile"))
    web.register_web(commands.add_parser("web", help="serve the web admin (needs the web extra)"))
    web.register_users(commands.add_parser("web-user", help="the web admin's accounts"))
    return parser


def cmd_init(args: argparse.Namespace, config: Config) -> int:
    """Create or upgrade the schema, and make the HMAC key of our Message-ID tokens if there is none."""
    from ..outbound.keys import create_keyring

    print(admin_store(config).init())
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
        print(f"error: {terminal_safe(exc)}", file=sys.stderr)
        return 2
    except AdminError as exc:
        print(f"error: {terminal_safe(exc)}", file=sys.stderr)
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
