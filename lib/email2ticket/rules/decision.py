"""The data rules decide on and the record they return: plain, frozen records.

The facts the store looked up (`Facts`), the message on its way (`Context`), one rule's verdict
(`RuleResult`) and the whole decision (`Decision`). They live apart from the rule chain (rules/chain.py)
so the rule modules (rules/ticket.py, rules/auth.py, rules/loop.py, rules/notify.py), the chain and the
store share them without importing each other. What a rule is lives in rules/base.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from msgspec import Struct, field

from ..config.rule_settings import RuleSettings
from ..exits import ExitCode
from ..mail.envelope import Envelope
from ..mail.message import ParsedMessage
from .routing_facts import Filtered, Placement, Route, Routing

if TYPE_CHECKING:
    from ..auth.verdict import Verdict
    from ..signals.classify import Classification

# What a decision can say. "note" is an internal note on a ticket (automatic mail, a bounce); "hold" and
# "ignore" keep the message raw without touching a ticket (rules/loop.py); "defer" is a DNS temperror
# that decided the outcome (exit 75): it never reaches the database.
Action = Literal["create", "update", "note", "duplicate", "reject", "ignore", "hold", "defer"]
# What the audit trail records (messages.action): every decided action, and the states the delivery layer
# writes itself: "defer" for a failed attempt and "quarantine" for the last one (delivery/attempts.py),
# "replayed" for a quarantined message the admin delivered again, "released" for a held or ignored one.
AuditAction = Literal[
    "create", "update", "note", "duplicate", "reject", "ignore", "hold", "defer", "quarantine", "replayed", "released"
]
PRIVILEGED_ACCESS = frozenset({"normal", "full"})
ACCESS_LEVELS = ("none", "limited", "normal", "full")


# --- the facts rules run on ---------------------------------------------------------------------


class UserFacts(Struct, frozen=True):
    """A row of the user table as the rules need it."""

    email: str
    is_technician: bool = False
    access: str = "none"
    disabled: bool = False


class TicketFacts(Struct, frozen=True):
    """The ticket a subject refers to, as the rules need it."""

    id: int
    status: str
    requester: str
    technician: str | None = None
    subject: str = ""


class EarlierDelivery(Struct, frozen=True):
    """A message already delivered under the same idempotency key."""

    message_row: int
    action: str
    ticket: int | None


# "thread": In-Reply-To/References name the Message-ID of a message stored on the ticket (rules/ticket.py).
# "plus-address": the recipient is a plus-address such as helpdesk+7@ (rules/routing.py).
ReferenceSource = Literal["subject", "token", "bounce", "thread", "plus-address"]


class Facts(Struct, frozen=True):
    """Everything the store looked up for one message, inside the delivery's transaction."""

    settings: RuleSettings = field(default_factory=RuleSettings)
    separators: tuple[str, ...] = ()
    sender_user: UserFacts | None = None
    reference: int | None = None  # the ticket number the subject ends with (see mail/subject.py)
    ticket: TicketFacts | None = None  # that ticket, when it exists
    earlier: EarlierDelivery | None = None
    message_id_reused: bool = False  # another message with this Message-ID but a different body
    # Where the reference came from: the subject, our token in In-Reply-To/References, a bounce report.
    reference_source: ReferenceSource | None = None
    # The counts the loop protections limit (rules/loop.py, rules/notify.py).
    sender_new_tickets_last_hour: int = 0
    acknowledgements_to_sender_last_day: int = 0
    acknowledgements_last_hour: int = 0
    bounced: frozenset[str] = frozenset()  # of the sender, requester and technician: who hard-bounced
    notifications_due: int = 0  # earlier notifications waiting for a retry (sent after this delivery)
    # A bounce: whom the notifications it names (Classification.bounce_tokens) were sent to; only they may be blocked.
    notified: frozenset[str] = frozenset()
    # The ticket's Cc participants (rules/people.py): they may reply like its requester. Those who hard-bounced
    # a notification are in `bounced` too (read only with [notifications]).
    participants: frozenset[str] = frozenset()
    merged_from: int | None = None  # the ticket the message named, merged into `ticket` (`ticket merge`)
    # The queues, their addresses and the admin's filters, read with the settings (rules/routing.py, filters.py).
    routing: Routing = field(default_factory=Routing)

    @property
    def queue_addresses(self) -> frozenset[str]:
        """Every queue address: the help desk's own addresses, like own_addresses (rules/people.py)."""
        return frozenset(address for address, _ in self.routing.addresses)


class Sender(Struct, frozen=True):
    """Who the message is from, and where we learnt it."""

    address: str | None
    source: Literal["from", "envelope", "reply-to"] | None
    # "reply-to": the From: address, a robot listed in reply_to_senders, whose Reply-To: person is the sender.
    robot: str | None = None


class Outbound(Struct, frozen=True):
    """What the rules need to know about sending notifications: whether we can, and our own addresses."""

    enabled: bool = False  # [notifications] is configured
    own_addresses: frozenset[str] = frozenset()  # from_address and bounce_address of [notifications]


NoticeKind = Literal["acknowledgement", "technician-update", "requester-comment", "participant-comment"]


class Notice(Struct, frozen=True):
    """A notification the rules decided to send once the delivery commits (rules/notify.py)."""

    kind: NoticeKind
    recipient: str


class Context(Struct, frozen=True):
    """One message on its way through the rules."""

    message: ParsedMessage
    envelope: Envelope
    sender: Sender
    auth: Verdict | None = None  # the sender verification verdict; None: not evaluated (yet)
    classification: Classification | None = None  # signals/classify.py's signals; None: not classified
    release: str | None = None  # the stopping rule an admin's `messages release` skips (rules/loop.py)
    outbound: Outbound = field(default_factory=Outbound)
    # Where the mail was sent and what the admin's filters say of it, found before the rules run like the
    # classification (delivery/core.py); None: the rules work it out themselves (rules/routing.py, filters.py).
    route: Route | None = None
    filtered: Filtered | None = None


# --- the record ---------------------------------------------------------------------------------


class RuleResult(Struct, frozen=True):
    """One rule's verdict: its name, whether it hit, and why, in words an admin understands."""

    name: str
    hit: bool
    why: str

    def reason(self) -> str:
        """The `--json` form: '<rule-name>: <sentence>'."""
        return f"{self.name}: {self.why}"

    def explain_line(self) -> str:
        """The `explain` form: '<rule-name>: HIT|MISS - <sentence>'."""
        return f"{self.name}: {'HIT' if self.hit else 'MISS'} - {self.why}"


class Decision(Struct, frozen=True):
    """What to do with one message, and the full record of why."""

    action: Action
    exit_code: ExitCode
    results: tuple[RuleResult, ...]
    ticket: int | None = None  # ticket updated / duplicated into; create: filled in by the store
    subject: str = ""  # title of a new ticket
    body: str = ""  # description of a new ticket, or the comment text
    reopen: bool = False
    create_sender: bool = False  # the sender is not in the user table and becomes a requester
    status_reason: str = ""  # one sentence for the MTA when exit_code is not 0
    auth_needed: bool = False  # the decision consulted the sender verification verdict
    auth_pending: bool = False  # ...but the Context had none: the shell must verify and decide again
    author_verified: bool = False  # the sender was authenticated (stored with a comment)
    unverified_sender: bool = False  # a new ticket because a privilege was withheld from an unverified sender
    notices: tuple[Notice, ...] = ()  # notifications to send after the commit
    note_kind: str = ""  # "note": "bounce" or "automatic"
    suppress: tuple[str, ...] = ()  # addresses a hard bounce stops notifying
    held_by: str | None = None  # "hold"/"ignore": the rule that stopped the message
    limit_note: str = ""  # create/update of a released message over its limits: the internal note for the ticket
    refers_to: int | None = None  # "create": the ticket our token named, which the sender may not update
    participants: tuple[str, ...] = ()  # create/update: To:/Cc: addresses that become the ticket's participants
    placement: Placement | None = None  # create: queue, priority, technician, status, tags; update: tags (routing)

    @property
    def reasons(self) -> list[str]:
        return [r.reason() for r in self.results]

    def summary(self) -> str:
        """The `Decision:` line of `explain`."""
        if self.action == "create":
            unverified = " flagged as from an unverified sender" if self.unverified_sender else ""
            placed = self.placement
            where = f" in queue {placed.queue}" if placed and placed.queue and not placed.default_queue else ""
            return "create new ticket" + (f" #{self.ticket}" if self.ticket else "") + where + unverified
        if self.action == "update":
            return f"update ticket #{self.ticket}" + (" (reopening it)" if self.reopen else "")
        if self.action == "note":
            return f"internal note on ticket #{self.ticket} ({self.note_kind} mail)"
        if self.action == "duplicate":
            return "duplicate of an earlier delivery" + (f" (ticket #{self.ticket})" if self.ticket else "")
        return f"{self.action} (exit {int(self.exit_code)}): {self.status_reason}"
