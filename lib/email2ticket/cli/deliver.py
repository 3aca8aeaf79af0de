"""`email2ticket-deliver`: the MTA's pipe command. Reads one message on stdin, exits with a sysexits code.

An entrance of the one delivery layer (delivery/run.py): arguments and environment in, configuration,
a bounded read of stdin within a time budget, then the delivery layer's answer (delivery/answer.py):
its stderr and stdout lines and its exit status.
Whatever happens, Python's own exit status 1 never reaches the MTA: expected failures carry their
code, anything else is logged with its traceback and deferred (75) so the mail stays queued.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import BinaryIO

from ..config.load import load_config
from ..exits import ConfigurationError, DataError, DeadlineExceeded, DeliveryError, DeliveryTimeout
from ..mail.envelope import envelope_from
from .common import ArgumentError, Parser, report_crash, report_failure


def build_parser() -> Parser:
    parser = Parser(
        prog="email2ticket-deliver",
        description="Deliver one message from standard input into the help desk (for the MTA's pipe).",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="configuration file (default: $EMAIL2TICKET_CONFIG, else /etc/email2ticket/config.toml if present)",
    )
    parser.add_argument("--database-url", metavar="URL", help="overrides database_url and $EMAIL2TICKET_DATABASE_URL")
    parser.add_argument("--sender", metavar="ADDR", help="envelope sender (Postfix: ${sender}); else $SENDER")
    parser.add_argument(
        "--recipient", metavar="ADDR", help="envelope recipient; else $ORIGINAL_RECIPIENT, else $RECIPIENT"
    )
    parser.add_argument("--queue-id", metavar="ID", help="the MTA's queue id, for the log (Postfix: ${queue_id})")
    parser.add_argument("--dry-run", action="store_true", help="decide and print, but write nothing")
    parser.add_argument("--json", action="store_true", help="print one line of JSON with the decision on stdout")
    parser.add_argument(
        "--socket",
        metavar="PATH",
        help="hand the message to `email2ticket serve` on this socket ('' = never); else $EMAIL2TICKET_SOCKET,"
        " else [service] socket",
    )
    parser.add_argument(
        "--fallback",
        choices=("standalone", "tempfail"),
        help="when that service is unreachable: deliver in this process, or exit 75 (default: [service] fallback)",
    )
    return parser


def read_message(stream: BinaryIO, limit: int) -> bytes:
    """Read at most limit+1 bytes: enough to know a message is too large without holding all of it."""
    if stream.isatty():
        raise DataError("no message on standard input (it is a terminal)")
    return stream.read(limit + 1)


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Abort the delivery past `seconds`: rolling back and deferring beats the MTA killing us.

    SIGALRM interrupts the main thread: work on the message itself gets exits.DeadlineExceeded (which
    nothing may swallow, and which counts against the message), a wait on the database a DeliveryTimeout.
    Should a C call hold the thread past the alarm, the watchdog exits 75 shortly after (delivery/deadline.py).
    """
    from ..delivery.deadline import Watchdog, working_on_message

    watchdog = Watchdog(seconds)

    def _expired(_signum: int, _frame: FrameType | None) -> None:
        watchdog.extend()  # Python runs: what follows (rolling back, counting the attempt) may finish
        if working_on_message():
            raise DeadlineExceeded
        raise DeliveryTimeout(f"delivery took longer than delivery_timeout ({seconds:g} s); rolled back")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        with watchdog:
            yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run(argv: Sequence[str] | None, stdin: BinaryIO, environ: os._Environ[str] | dict[str, str]) -> int:
    """Everything between the command line and the exit status.

    Failures with a known exit code are answered by the delivery layer, once the configuration is
    known; only a malformed command line or configuration escapes as DeliveryError, to `main`.
    """
    from ..delivery.answer import answer
    from ..delivery.run import Result, deliver_message, has_notifications, log_result, notify
    from ..store.delivery import DeliveryStore

    try:
        args = build_parser().parse_args(argv)
    except ArgumentError as exc:
        raise ConfigurationError(f"malformed command line (check the MTA's pipe wiring): {exc}") from exc
    config = load_config(args.config, database_url=args.database_url, environ=environ)
    envelope = envelope_from(args.sender, args.recipient, args.queue_id, environ)
    store = DeliveryStore(config.resolved_database_url(), lock_timeout=config.lock_timeout)
    try:
        try:
            with time_budget(config.delivery_timeout):
                result = deliver_message(
                    lambda: read_message(stdin, config.max_message_bytes), envelope, store, config, dry_run=args.dry_run
                )
        except DeliveryTimeout as exc:  # the budget ran out around the delivery (its imports, its return)
            result = Result(envelope, error=exc, dry_run=args.dry_run)
        # Committed: the notifications go out now, outside the budget; nothing they do changes the answer.
        if has_notifications(result):
            notify(result, store, config)
    finally:
        store.dispose()
    reply = answer(result, want_json=args.json)
    sys.stderr.write(reply.stderr)
    sys.stderr.flush()
    sys.stdout.write(reply.stdout)
    sys.stdout.flush()
    log_result(result, config)
    return reply.exit_code


def main(argv: Sequence[str] | None = None, *, stdin: BinaryIO | None = None) -> int:
    """Entry point: the only place failures become exit statuses.

    `stdin` is the message when the thin client (service/client.py) already read part of standard input.
    """
    try:
        return run(argv, stdin or sys.stdin.buffer, os.environ)
    except DeliveryError as exc:
        return int(report_failure(exc))
    except SystemExit as exc:  # --help
        return int(exc.code or 0) if isinstance(exc.code, int) else 0
    except BaseException as exc:
        return int(report_crash(exc))


if __name__ == "__main__":
    sys.exit(main())
