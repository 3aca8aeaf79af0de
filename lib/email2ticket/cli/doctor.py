"""`email2ticket doctor`: print each installation check with OK/FAIL and a fix; exit 1 when any failed.

It reads the configuration itself, so a broken configuration file is reported as a failed check
instead of stopping the command.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .common import print_json, terminal_safe

if TYPE_CHECKING:
    import argparse


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", metavar="NAME", help="the MTA's pipe user, whose access is checked (default: you)")
    parser.add_argument("--postfix-config", metavar="DIR", help="also check master.cf and main.cf in DIR")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(reads_own_config=True, handler=None)


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..ops.doctor import run_checks

    checks = run_checks(
        args.config,
        database_url=args.database_url,
        environ=os.environ,
        cwd=os.getcwd(),
        user=args.user,
        postfix_dir=args.postfix_config,
    )
    if args.json:
        print_json([c.as_json() for c in checks])
    else:
        for check in checks:  # a detail may quote a value from the mail or the database: escapes shown
            print(terminal_safe("\n".join(check.lines()), multiline=True))
    return 0 if all(c.ok for c in checks) else 1
