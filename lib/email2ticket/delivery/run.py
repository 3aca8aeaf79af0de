"""The one delivery layer's entrance: every way a message arrives ends in `deliver_message`.

The pipe command, the resident service (pipe socket and LMTP), `explain`, `messages release` and
`quarantine replay` all call the same three steps, in this order:

  deliver_message()  parse, decide, write and commit (or count the failure), inside the caller's time
                     budget; never raises for the message's sake: the result holds the outcome or why
                     it failed
  log_result()       the one log line (plus an error line for a quarantined message), after the budget
  notify()           the notifications the delivery queued, after the commit; never changes the result

and delivery/answer.py turns the result into what the MTA reads: the exit status, the first stderr line
with its enhanced status code, `--json`, an LMTP reply. Identity (who we are as a sender), the failure
counting and the audit write happen here and below, never in an entrance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from msgspec import Struct

from ..exits import DeadlineExceeded, DeliveryError, DeliveryTimeout, ExitCode
from ..mail.envelope import Envelope
from .outcome import MailIdentity, Outcome, Redelivery

if TYPE_CHECKING:
    from ..config.model import Config
    from ..signals.tokens import Keyring
    from ..store.delivery import DeliveryStore


class Result(Struct, frozen=True):
    """One delivery as the entrances see it: the outcome, or the failure that stands in its place."""

    envelope: Envelope
    outcome: Outcome | None = None
    error: DeliveryError | None = None  # a failure with a known exit code (and status code)
    crash: BaseException | None = None  # an unexpected error outside the counted delivery: 75, with traceback
    duration: float = 0.0
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        if self.outcome is not None:
            return int(self.outcome.exit_code)
        if self.error is not None:
            return int(self.error.exit_code)
        return int(ExitCode.TEMPFAIL)

    @property
    def note(self) -> str:
        """The one sentence that says why, for the log line and the MTA ("" for a plain success)."""
        if self.outcome is not None:
            return self.outcome.decision.status_reason
        if self.error is not None:
            return self.error.reason
        return crash_reason(self.crash)


def crash_reason(exc: BaseException | None) -> str:
    """How an unexpected error reads in the first stderr line: the mail stays queued, a human looks."""
    text = f"internal error: {type(exc).__name__}: {exc}" if exc is not None else "internal error"
    return text.splitlines()[0]


def deliver_message(
    source: bytes | Callable[[], bytes],
    envelope: Envelope,
    store: DeliveryStore,
    config: Config,
    *,
    dry_run: bool = False,
    redelivery: Redelivery | None = None,
) -> Result:
    """Deliver one message with what the configuration says; `source` is the raw message, or a function
    that reads it (the pipe reads standard input inside its time budget, and a failure to read is a
    failure of this delivery like any other).

    An unexpected error counts against the message (delivery/attempts.py) unless this is a dry run or an
    admin's redelivery, where the admin reads the error at once instead.
    """
    started = time.monotonic()
    count = not dry_run and redelivery is None
    try:
        from .attempts import count_failure, is_poison_suspect
        from .core import Options, deliver

        raw = source() if callable(source) else source
        options = Options(
            max_message_bytes=config.max_message_bytes,
            limits=config.limits,
            dry_run=dry_run,
            dns=config.dns,
            identity=mail_identity(config),
            redelivery=redelivery,
        )
        try:
            outcome = deliver(raw, envelope, store, options)
        except DeadlineExceeded:
            # Out of time while working on the message itself: the message, not the system, is the cost.
            timeout = DeliveryTimeout(
                f"delivery took longer than delivery_timeout ({config.delivery_timeout:g} s) while working on the "
                "message; rolled back"
            )
            if not count:
                raise timeout from None
            outcome = count_failure(raw, envelope, store, timeout, config.max_attempts, parse=False)
        except Exception as exc:
            if not count or not is_poison_suspect(exc):
                raise
            outcome = count_failure(raw, envelope, store, exc, config.max_attempts)
        return Result(envelope, outcome, duration=time.monotonic() - started, dry_run=dry_run)
    except DeliveryError as exc:
        return Result(envelope, error=exc, duration=time.monotonic() - started, dry_run=dry_run)
    except Exception as exc:
        return Result(envelope, crash=exc, duration=time.monotonic() - started, dry_run=dry_run)


def mail_identity(config: Config) -> MailIdentity:
    """Who we are as a sender, from [notifications] and the key file: recognises our own mail coming back."""
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


def log_result(result: Result, config: Config) -> None:
    """The one log line per delivery, plus the error line a quarantined message needs; nothing for a dry run."""
    from ..log import format_line, token, write_line

    if result.dry_run:
        return
    outcome = result.outcome
    action = outcome.action if outcome is not None else "error"
    line = format_line(
        queue_id=result.envelope.queue_id,
        message_id=outcome.message.message_id if outcome is not None else None,
        action=action,
        ticket=outcome.ticket if outcome is not None else None,
        exit_code=result.exit_code,
        duration=result.duration,
        note=result.note,
    )
    write_line(line, config.logging)
    if outcome is not None and outcome.quarantined:
        queue_id = result.envelope.queue_id
        write_line(
            f"quarantine queue_id={token(queue_id)} message_id={token(outcome.message.message_id)} "
            f"row={outcome.message_row}: {outcome.decision.status_reason}; see `email2ticket quarantine list`",
            config.logging,
            error=True,
        )


def has_notifications(result: Result) -> bool:
    """Does this result leave notifications to send (its own, or earlier ones due for a retry)?"""
    outcome = result.outcome
    return outcome is not None and not outcome.dry_run and bool(outcome.notifications or outcome.notifications_due)


def notify(result: Result, store: DeliveryStore, config: Config) -> None:
    """Send what the delivery queued, after its commit; a failure is recorded on the notification, never raised."""
    if not has_notifications(result):
        return
    from ..outbound.send import after_delivery

    outcome = result.outcome
    assert outcome is not None
    after_delivery(store, config, outcome.notifications, retries_due=bool(outcome.notifications_due))
