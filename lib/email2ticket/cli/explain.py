"""`email2ticket explain`: how a message on standard input would be delivered, told in words."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from ..mail.envelope import envelope_from
from .common import terminal_safe

if TYPE_CHECKING:
    import argparse

    from ..config.model import Config


def cmd_explain(args: argparse.Namespace, config: Config) -> int:
    """The same delivery as `email2ticket-deliver --dry-run`, told in words."""
    from ..delivery.run import deliver_message
    from ..store.delivery import DeliveryStore
    from .deliver import read_message

    envelope = envelope_from(args.sender, args.recipient, None, os.environ)
    raw = read_message(sys.stdin.buffer, config.max_message_bytes)
    store = DeliveryStore(config.resolved_database_url(), lock_timeout=config.lock_timeout)
    try:
        result = deliver_message(raw, envelope, store, config, dry_run=True)
    finally:
        store.dispose()
    if result.error is not None:
        raise result.error
    if result.crash is not None:
        raise result.crash
    outcome = result.outcome
    assert outcome is not None
    for rule in outcome.results:  # a reason may quote the mail (an address, a header): one line each, escapes shown
        print(terminal_safe(rule.explain_line()))
    print(f"Decision: {terminal_safe(outcome.summary())}")
    for notice in outcome.decision.notices:
        print(f"Notify: {notice.kind} to {terminal_safe(notice.recipient)}")
    return 0


def cmd_explain_rules(args: argparse.Namespace, config: Config) -> int:
    """`explain --rules`: every rule in the order the chain checks them, from the rule objects themselves.

    Reads no message and opens no database: it is the chain's table (rules/chain.py), told in words."""
    from ..rules.chain import RULES

    for rule in RULES:
        print(f"{rule.name}: {rule.description}")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sender", metavar="ADDR", help="envelope sender, as the MTA would pass it")
    parser.add_argument("--recipient", metavar="ADDR")
    parser.set_defaults(handler=cmd_explain)
    # --rules swaps the handler, so cmd_explain never sees it (and never reads stdin or opens the store).
    parser.add_argument(
        "--rules",
        dest="handler",
        action="store_const",
        const=cmd_explain_rules,
        help="list every rule in the order they are checked, then exit (no message, no database)",
    )
