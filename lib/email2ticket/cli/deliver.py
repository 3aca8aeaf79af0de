"""`email2ticket-deliver`: the MTA's pipe command. Reads one message on stdin, exits with a sysexits code.

This is the imperative shell around deliver.deliver(): arguments and environment in, configuration,
a bounded read of stdin, a time budget, then one line of JSON (only with --json) and the exit status.
Whatever happens, Python's own exit status 1 never reaches the MTA: expected failures carry their
code, anything else is logged with its traceback and deferred (75) so the mail stays queued.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, BinaryIO, TextIO

from ..config.load import load_config
from ..config.model import Config
from ..delivery.log import format_line, write_line
from ..exits import ConfigurationError, DataError, DeliveryError, ExitCode, TemporaryFailure, status_line
from ..mail.envelope import Envelope, envelope_from
from .common import ArgumentError, Parser, report_crash, report_failure

if TYPE_CHECKING:
    from ..delivery.core import MailIdentity, Outcome, Release
    from ..signals.tokens import Keyring
    from ..store.delivery import DeliveryStore


class DeliveryTimeout(TemporaryFailure):
    """The delivery ran past delivery_timeout; the transaction is rolled back and the MTA retries."""


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
    parser.add_argument("--recipient", metavar="ADDR", help="envelope recipient; else $RECIPIENT")
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
    """Abort the delivery past `seconds`: rolling back and deferring beats the MTA killing us."""

    def _expired(_signum: int, _frame: FrameType | None) -> None:
        raise DeliveryTimeout(f"delivery took longer than delivery_timeout ({seconds:g} s); rolled back")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run(argv: Sequence[str] | None, stdin: BinaryIO, environ: os._Environ[str] | dict[str, str]) -> int:
    """Everything between the command line and the exit status.

    Failures with a known exit code are reported here, once the configuration is known; only a
    malformed command line or configuration escapes as DeliveryError, to `main`.
    """
    try:
        args = build_parser().parse_args(argv)
    except ArgumentError as exc:
        raise ConfigurationError(f"malformed command line (check the MTA's pipe wiring): {exc}") from exc
    config = load_config(args.config, database_url=args.database_url, environ=environ)
    envelope = envelope_from(args.sender, args.recipient, args.queue_id, environ)
    started = time.monotonic()
    outcome: Outcome | None = None
    code, note = ExitCode.TEMPFAIL, ""
    try:
        outcome = _deliver(stdin, envelope, config, dry_run=args.dry_run)
        code, note = outcome.exit_code, outcome.decision.status_reason
        return report_outcome(outcome, want_json=args.json, out=sys.stdout, err=sys.stderr)
    except DeliveryError as exc:
        code, note = exc.exit_code, exc.reason
        return report_error(exc, want_json=args.json, out=sys.stdout, err=sys.stderr)
    finally:
        if not args.dry_run:
            log_delivery(config, envelope, outcome, int(code), note, time.monotonic() - started)


# The pieces below are shared with the resident service (service/worker.py), which runs the same delivery
# with a pooled store and its own time budget and sends this output back to the pipe client.


def report_outcome(outcome: Outcome, *, want_json: bool, out: TextIO, err: TextIO) -> int:
    """Print a delivery's result as the MTA reads it; return the exit status."""
    code = outcome.exit_code
    # The status line goes first: Postfix reads stdout and stderr as one stream, and only a
    # leading enhanced status code takes precedence over the exit status.
    if code != ExitCode.OK:
        print(status_line(code, outcome.decision.status_reason), file=err, flush=True)
    if want_json:
        print(json.dumps(outcome.as_json(), ensure_ascii=False, separators=(",", ":")), file=out, flush=True)
    return int(code)


def report_error(exc: DeliveryError, *, want_json: bool, out: TextIO, err: TextIO) -> int:
    """Print a failure with a known exit code (first stderr line: enhanced status code); return it."""
    report_failure(exc, err)
    if exc.__cause__ is not None and _is_counted(exc):  # a suspected poison message: the bug's traceback
        traceback.print_exception(exc.__cause__, file=err)
    if want_json:
        print(json.dumps(_failure_json(exc), ensure_ascii=False, separators=(",", ":")), file=out, flush=True)
    return int(exc.exit_code)


def log_delivery(
    config: Config, envelope: Envelope, outcome: Outcome | None, code: int, note: str, duration: float
) -> None:
    """The one log line per delivery (plus the quarantine record's line); `outcome` None: it failed."""
    action: str = outcome.decision.action if outcome else "error"
    write_line(
        format_line(
            queue_id=envelope.queue_id,
            message_id=outcome.message.message_id if outcome else None,
            action=action,
            ticket=outcome.ticket if outcome else None,
            exit_code=code,
            duration=duration,
            note=note,
        ),
        config.logging,
    )
    if outcome is not None and action == "quarantine":
        from ..delivery.quarantine import log_error, quarantine_log_line

        log_error(quarantine_log_line(outcome, envelope.queue_id), config.logging)


def deliver_message(
    raw: bytes,
    envelope: Envelope,
    store: DeliveryStore,
    config: Config,
    *,
    dry_run: bool,
    release: Release | None = None,
    max_attempts: int | bool | None = True,
) -> Outcome:
    """deliver.deliver() with what the configuration says: the one call the pipe, the service, the
    admin's release and quarantine replay make. `max_attempts` True: the configured one."""
    from ..delivery.core import deliver

    return deliver(
        raw,
        envelope,
        store,
        max_message_bytes=config.max_message_bytes,
        dry_run=dry_run,
        max_attempts=config.max_attempts if max_attempts is True else (max_attempts or None),
        dns=config.dns,
        identity=mail_identity(config),
        release=release,
    )


def mail_identity(config: Config) -> MailIdentity:
    """Who we are as a sender, from [notifications] and the key file: recognises our own mail coming back."""
    from ..delivery.core import MailIdentity
    from ..rules.decision import Outbound

    settings = config.notifications

    def load_keyring() -> Keyring | None:
        """Read only for a message that carries something shaped like our token (signals/classify.py)."""
        from ..outbound.keys import keyring_for

        return keyring_for(settings)

    own = {address for address in (settings.address(), settings.envelope_from()) if address}
    return MailIdentity(
        keyring=load_keyring,
        instance_id=settings.loop_id(),
        outbound=Outbound(enabled=settings.enabled, own_addresses=frozenset(a.lower() for a in own)),
    )


def _deliver(stdin: BinaryIO, envelope: Envelope, config: Config, *, dry_run: bool) -> Outcome:
    """Read, deliver and commit within delivery_timeout; then send the notifications, outside it:
    the delivery has committed, and nothing that happens while sending may change its exit status."""
    from ..store.delivery import DeliveryStore

    store = DeliveryStore(config.resolved_database_url(), lock_timeout=config.lock_timeout)
    try:
        with time_budget(config.delivery_timeout):
            raw = read_message(stdin, config.max_message_bytes)
            outcome = deliver_message(raw, envelope, store, config, dry_run=dry_run)
        if outcome.notifications or outcome.notifications_due:
            from ..outbound.send import after_delivery

            after_delivery(store, config, outcome)
        return outcome
    finally:
        store.dispose()


def _is_counted(exc: DeliveryError) -> bool:
    from ..delivery.quarantine import SuspectedPoison

    return isinstance(exc, SuspectedPoison)


def _failure_json(exc: DeliveryError) -> dict[str, object]:
    action = "reject" if exc.exit_code != ExitCode.TEMPFAIL else "defer"
    return {"action": action, "ticket": None, "reasons": [f"error: {exc.reason}"], "exit_code": int(exc.exit_code)}


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
