"""The data of one delivery: who we are as a sender, what a redelivery skips, and what came out.

Plain frozen records shared by the delivery layer's modules and read by every entrance: the pipe
prints an Outcome, the service sends it back, LMTP answers with it, `explain` tells it in words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

from ..exits import ExitCode
from ..rules.decision import AuditAction, Decision, Outbound, RuleResult

if TYPE_CHECKING:
    from ..mail.message import ParsedMessage
    from ..signals.tokens import KeyringSource
    from ..store.notices import OutboxItem


class MailIdentity(Struct, frozen=True):
    """Who we are as a sender of mail: how our own notifications and tokens are recognised.

    Built from [notifications] and the key file (delivery/run.py `mail_identity`); the default - no
    keyring, no loop id, notifications off - still classifies every other signal.
    """

    keyring: KeyringSource = None  # the keyring, or a function that loads it when a token must be checked
    instance_id: str | None = None
    outbound: Outbound = field(default_factory=Outbound)


class Redelivery(Struct, frozen=True):
    """A stored message delivered again by an admin: `messages release` or `quarantine replay`.

    `skip` is the stopping rule the release skips (the one that held or ignored the message); a replay
    skips none. `state` is what the stored record becomes, in the same transaction as the delivery.
    """

    message_row: int
    skip: str | None
    state: AuditAction  # "released" or "replayed"


class Outcome(Struct, frozen=True):
    """The result of one delivery, as printed by --json, logged and answered to the MTA.

    `decision` is the rules' record; a message the delivery layer quarantined after repeated failures
    has none of its own (no rule decided it), only `quarantine`, the sentence saying so.
    """

    decision: Decision
    message: ParsedMessage
    dry_run: bool = False
    message_row: int | None = None  # the audit record, when one was written
    notifications: tuple[OutboxItem, ...] = ()  # written as pending, to send after the commit
    notifications_due: int = 0  # earlier notifications waiting for a retry, as seen by this delivery
    quarantined: bool = False  # stored in the quarantine after max_attempts failures (delivery/attempts.py)

    @property
    def action(self) -> AuditAction:
        return "quarantine" if self.quarantined else self.decision.action

    @property
    def exit_code(self) -> ExitCode:
        return self.decision.exit_code

    @property
    def results(self) -> tuple[RuleResult, ...]:
        return self.decision.results

    @property
    def ticket(self) -> int | None:
        if self.dry_run and self.decision.action == "create":
            return None  # with --dry-run no ticket is opened, so there is no number to report
        return self.decision.ticket

    def summary(self) -> str:
        """The `Decision:` line of `explain`."""
        if self.quarantined:
            return f"quarantine (exit {int(self.exit_code)}): {self.decision.status_reason}"
        return self.decision.summary()

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "ticket": self.ticket,
            "reasons": self.decision.reasons,
            "exit_code": int(self.exit_code),
            "notify": [{"kind": n.kind, "recipient": n.recipient} for n in self.decision.notices],
        }
