"""The data routing decides on and decides: queues, their addresses, the admin's filters, where a mail was sent.

Plain frozen records, apart from the rules that read them (rules/routing.py, rules/filters.py) so that the
facts (rules/decision.py), the store that reads them from its preamble (store/facts.py) and the rules share them
without importing each other. Nothing here imports anything of the package.
"""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

PRIORITIES = ("low", "normal", "high", "urgent")
STATUSES = ("open", "closed")
# Where the address that chose a queue (or named a ticket) was found.
RecipientSource = Literal["envelope", "delivered-to", "to", "cc"]


class Queue(Struct, frozen=True):
    """A queue as delivery sees it."""

    id: int
    name: str
    is_default: bool = False


class Condition(Struct, frozen=True):
    """One condition of a filter: `Subject contains URGENT`, `List-Id exists`. `field` is lower-cased."""

    field: str
    op: str
    value: str = ""

    def describe(self) -> str:
        """The condition as the admin wrote it (the field as given to `filters add`, the value quoted)."""
        return f"{self.field} {self.op}" + (f" {self.value!r}" if self.op not in ("exists", "missing") else "")


class FilterAction(Struct, frozen=True):
    """One action of a filter: `queue=sales`, `tag=vip`, `hold`."""

    action: str
    value: str = ""

    def describe(self) -> str:
        return f"{self.action}={self.value}" if self.value else self.action


def stopping_action(actions: tuple[FilterAction, ...]) -> str | None:
    """The stopping action ("hold" or "ignore") among `actions`, else None."""
    return next((a.action for a in actions if a.action in ("hold", "ignore")), None)


class Filter(Struct, frozen=True):
    """One of the admin's postmaster filters, in its position."""

    name: str
    position: int
    conditions: tuple[Condition, ...]
    actions: tuple[FilterAction, ...]
    problem: str = ""  # a stored definition this code cannot use (never matches; the record says why)

    @property
    def stops(self) -> str | None:
        """The action ("hold" or "ignore") by which the filter stops the message, else None."""
        return stopping_action(self.actions)


class Routing(Struct, frozen=True):
    """The queues, their addresses and the filters, read with the settings in the delivery's preamble."""

    queues: tuple[Queue, ...] = ()
    addresses: tuple[tuple[str, int], ...] = ()  # (address, queue id), lower-cased
    filters: tuple[Filter, ...] = ()  # in position order

    @property
    def default(self) -> Queue | None:
        return next((queue for queue in self.queues if queue.is_default), None)

    def queue(self, queue_id: int | None = None, *, name: str | None = None) -> Queue | None:
        return next((q for q in self.queues if q.id == queue_id or (name is not None and q.name == name)), None)

    def queue_of(self, address: str) -> Queue | None:
        """The queue whose address `address` is exactly."""
        queue_id = next((qid for known, qid in self.addresses if known == address), None)
        return self.queue(queue_id) if queue_id is not None else None


class Route(Struct, frozen=True):
    """Where the mail was sent, as routing reads it (rules/routing.py `route_message`)."""

    recipient: str | None = None  # the address that chose the queue (the envelope recipient, or a header's)
    source: RecipientSource | None = None
    queue: Queue | None = None  # the queue that address belongs to; None: the default queue
    queue_address: str | None = None  # the queue address it matched (itself, or its base address)
    plus_address: str | None = None  # an address whose plus-detail is a ticket number
    plus_source: RecipientSource | None = None
    plus_ticket: int | None = None
    plus_note: str = ""  # a plus-detail that names no ticket, and why


class FilterHit(Struct, frozen=True):
    """A filter that matched: which conditions held, and what it does."""

    name: str
    conditions: tuple[str, ...]
    actions: tuple[FilterAction, ...]

    @property
    def stops(self) -> str | None:
        return stopping_action(self.actions)


class Filtered(Struct, frozen=True):
    """What the filters said about one message (rules/filters.py `match_filters`)."""

    checked: tuple[str, ...] = ()  # the filters evaluated, in order (evaluation ends at one that stops the mail)
    hits: tuple[FilterHit, ...] = ()
    released: str | None = None  # the filter an admin's `messages release` skipped
    unusable: tuple[str, ...] = ()  # "NAME: why" for stored filters this code cannot evaluate


class Placement(Struct, frozen=True):
    """What a new ticket (or, for tags, an update) gets from routing: its queue, priority, technician, status."""

    queue_id: int | None = None
    queue: str | None = None
    default_queue: bool = False  # the queue is the default one (`explain` names only another)
    priority: str | None = None  # None: the default, normal
    technician: str | None = None  # assign=EMAIL: that technician, if an enabled one when it is written
    status: str | None = None  # None: open
    tags: tuple[str, ...] = ()
    # reply_to_ticket_address: the delimiter our notifications' Reply-To: helpdesk+N@ uses ("": no Reply-To).
    reply_delimiter: str = ""
