"""`email2ticket explain`: how a message on standard input would be delivered, told in words."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from ..mail.envelope import envelope_from

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
    for rule in outcome.results:
        print(rule.explain_line())
    print(f"Decision: {outcome.summary()}")
    for notice in outcome.decision.notices:
        print(f"Notify: {notice.kind} to {notice.recipient}")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sender", metavar="ADDR", help="envelope sender, as the MTA would pass it")
    parser.add_argument("--recipient", metavar="ADDR")
    parser.set_defaults(handler=cmd_explain)
