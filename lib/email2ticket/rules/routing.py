"""Routing by recipient: which queue a new ticket lands in, and which ticket a plus-address names.

Several help-desk addresses land in different queues: the envelope recipient (`--recipient`, `$ORIGINAL_RECIPIENT`,
`$RECIPIENT`) chooses the queue; without one, the first queue address found in Delivered-To:, To:, Cc:, in that
order; otherwise the default queue. A reply never moves a ticket, so only a new ticket consults `queue`.

With `recipient_delimiter` (default `+`, Postfix's setting of the same name: each character is a delimiter),
`helpdesk+123@...` is `helpdesk@...` with the detail `123`, and refers to ticket 123 like a subject reference
(the subject's reference wins). In the envelope recipient any base address counts: the MTA already decided the
mail is ours. Without an envelope recipient, only plus-forms of our own addresses (queue addresses,
`own_addresses`, [notifications]' addresses) count, since anyone can write any address into To:. An address
that is itself a queue address (`helpdesk+billing@` as its own mailbox) is never read as a plus-address.

Pure functions over the message, the envelope and the routing the store read with the settings; the header scan
is linear and bounded (hostile mail can carry a thousand To: fields).
"""

from __future__ import annotations

import re

from msgspec.structs import replace

from ..config.rule_settings import RuleSettings
from ..mail.envelope import Envelope
from ..mail.message import ParsedMessage
from .base import Finding, Found, hit, miss, rule
from .decision import Context, Decision, Facts
from .filters import filter_outcome
from .people import base_address
from .routing_facts import Placement, Queue, RecipientSource, Route, Routing

# Linear on hostile input: a token starts only where a token may start (not at every position of a long run).
_ADDRESS = re.compile(r"(?<![^\s<>(),;:\"])[^\s<>(),;:\"@]+@[^\s<>(),;:\"@]+")
_TICKET_NUMBER = re.compile(r"[0-9]{1,9}")
HEADERS: tuple[tuple[str, RecipientSource], ...] = (("delivered-to", "delivered-to"), ("to", "to"), ("cc", "cc"))
MAX_FIELDS = 20  # fields of each of those headers looked at
MAX_ADDRESSES = 500  # addresses looked at in all
SOURCE_WORDS = {"envelope": "envelope recipient", "delivered-to": "Delivered-To:", "to": "To:", "cc": "Cc:"}


def detail(address: str, delimiters: str) -> str | None:
    """The plus-detail of `address` (`7` of `helpdesk+7@...`), None when it has none."""
    base = base_address(address, delimiters)
    if base == address:
        return None
    return address.rpartition("@")[0][len(base.rpartition("@")[0]) + 1 :]


def header_addresses(message: ParsedMessage) -> list[tuple[RecipientSource, str]]:
    """The addresses of Delivered-To:, To: and Cc:, in that order, lower-cased; bounded (MAX_FIELDS, MAX_ADDRESSES)."""
    found: list[tuple[RecipientSource, str]] = []
    for name, source in HEADERS:
        for value in message.header_all(name)[:MAX_FIELDS]:
            for match in _ADDRESS.finditer(value):
                found.append((source, match.group().lower().rstrip(".")))
                if len(found) >= MAX_ADDRESSES:
                    return found
    return found


def queue_for(address: str, routing: Routing, delimiters: str) -> tuple[Queue | None, str | None]:
    """The queue `address` belongs to, exactly or by its base address, and the queue address that matched."""
    for candidate in dict.fromkeys((address, base_address(address, delimiters))):
        queue = routing.queue_of(candidate)
        if queue is not None:
            return queue, candidate
    return None, None


def _plus(address: str, routing: Routing, delimiters: str) -> tuple[int | None, str]:
    """The ticket a plus-address names, or why its detail names none ("" for an address without a detail)."""
    found = detail(address, delimiters)
    if found is None or routing.queue_of(address) is not None:
        return None, ""
    if _TICKET_NUMBER.fullmatch(found) and int(found) > 0:
        return int(found), ""
    return None, f"the plus-detail {found!r} of {address} is no ticket number"


def route_message(
    message: ParsedMessage, envelope: Envelope, routing: Routing, settings: RuleSettings, own: frozenset[str]
) -> Route:
    """Where the mail was sent: the queue its recipient chooses and the ticket a plus-address names.

    `own` are our own addresses besides the queue addresses (own_addresses, [notifications]' addresses): without
    an envelope recipient, only their plus-forms in the headers name a ticket."""
    delimiters = settings.recipient_delimiter
    if envelope.recipient:
        address = envelope.recipient.lower()
        queue, matched = queue_for(address, routing, delimiters)
        ticket, note = _plus(address, routing, delimiters) if delimiters else (None, "")
        named = address if ticket is not None or note else None
        return Route(address, "envelope", queue, matched, named, "envelope" if named else None, ticket, note)
    ours = own | {address for address, _ in routing.addresses}
    route = Route()
    for source, address in header_addresses(message):
        if route.queue is None:
            queue, matched = queue_for(address, routing, delimiters)
            if queue is not None:
                route = replace(route, recipient=address, source=source, queue=queue, queue_address=matched)
        if route.plus_address is None and delimiters and base_address(address, delimiters) in ours:
            ticket, note = _plus(address, routing, delimiters)
            if ticket is not None or note:
                route = replace(route, plus_address=address, plus_source=source, plus_ticket=ticket, plus_note=note)
        if route.queue is not None and route.plus_address is not None:
            break
    return route


def route_of(ctx: Context, facts: Facts) -> Route:
    """The route the delivery found before the rules ran (delivery/core.py), else worked out here."""
    if ctx.route is not None:
        return ctx.route
    return route_message(ctx.message, ctx.envelope, facts.routing, facts.settings, own_addresses(ctx, facts.settings))


def own_addresses(ctx: Context, settings: RuleSettings) -> frozenset[str]:
    """Our own addresses besides the queue addresses, for `route_message` (the delivery calls it before the facts)."""
    return frozenset(settings.own_addresses) | ctx.outbound.own_addresses


# --- the rules ----------------------------------------------------------------------------------


def involves_plus_address(ctx: Context, facts: Facts) -> bool:
    """plus-address has something to say: the recipient (or one of our addresses in the headers) has a detail."""
    route = route_of(ctx, facts)
    return route.plus_address is not None


@rule(
    "plus-address",
    "mail to a plus-address such as `helpdesk+123@` refers to ticket 123 like a subject reference "
    "(`recipient_delimiter`); the subject's reference wins",
    see="Queues and filters",
)
def plus_address(ctx: Context, facts: Facts, found: Found) -> Finding:
    route = route_of(ctx, facts)
    where = SOURCE_WORDS.get(route.plus_source or "", "recipient")
    if route.plus_ticket is None:
        delimiter = facts.settings.recipient_delimiter
        return miss(f"{route.plus_note or 'no plus-address'} (recipient_delimiter={delimiter!r})")
    if facts.reference_source == "plus-address":
        return hit(f"the {where} {route.plus_address} names ticket #{route.plus_ticket}")
    return miss(
        f"the {where} {route.plus_address} names ticket #{route.plus_ticket}, but the {facts.reference_source} "
        f"names ticket #{facts.reference}, which wins"
    )


def chosen_queue(ctx: Context, facts: Facts) -> tuple[Queue | None, str]:
    """A new ticket's queue and why: a filter's `queue=`, else the recipient's queue, else the default one."""
    route, routing = route_of(ctx, facts), facts.routing
    default = routing.default
    queue: Queue | None
    if route.queue is not None:
        where = SOURCE_WORDS.get(route.source or "", "recipient")
        queue, why = route.queue, f"the {where} {route.recipient} is an address of queue {route.queue.name}"
        if route.queue_address != route.recipient:
            why += f" (as {route.queue_address})"
    else:
        queue = default
        name = default.name if default else "(none)"
        if route.source == "envelope" or route.recipient:
            why = f"the envelope recipient {route.recipient} is no queue address: the default queue ({name})"
        else:
            why = f"no envelope recipient and no queue address in Delivered-To/To/Cc: the default queue ({name})"
    for hit_ in filter_outcome(ctx, facts).hits:
        wanted = next((a.value for a in hit_.actions if a.action == "queue"), None)
        if wanted is None:
            continue
        target = routing.queue(name=wanted)
        if target is None:
            why += f"; filter {hit_.name} names queue {wanted}, which no longer exists"
            continue
        return target, f"filter {hit_.name} puts it in queue {target.name} (the recipient chose: {why})"
    return queue, why


@rule(
    "queue",
    "a new ticket's queue: the one whose address the mail was sent to (the envelope recipient, else the first queue "
    "address in Delivered-To:, To:, Cc:), else the default queue; a filter's `queue=` wins",
    see="Queues and filters",
)
def queue(ctx: Context, facts: Facts, found: Found) -> Finding:
    chosen, why = chosen_queue(ctx, facts)
    if chosen is not None and not chosen.is_default:
        return hit(why)
    return miss(why)


def placement(ctx: Context, facts: Facts, decision: Decision) -> Decision:
    """What routing adds to a decision: a new ticket's queue, priority, technician, status and tags (each the
    first matching filter's that sets it; tags from all), an update's tags; nothing for any other action."""
    if decision.action not in ("create", "update"):
        return decision
    hits = filter_outcome(ctx, facts).hits
    tags = tuple(dict.fromkeys(a.value for h in hits for a in h.actions if a.action == "tag"))
    reply = reply_delimiter(facts.settings)
    if decision.action == "update":
        return replace(decision, placement=Placement(tags=tags, reply_delimiter=reply)) if tags or reply else decision

    def first(action: str) -> str | None:
        return next((a.value for h in hits for a in h.actions if a.action == action), None)

    chosen, _ = chosen_queue(ctx, facts)
    return replace(
        decision,
        placement=Placement(
            queue_id=chosen.id if chosen else None,
            queue=chosen.name if chosen else None,
            default_queue=chosen.is_default if chosen else False,
            priority=first("priority"),
            technician=first("assign"),
            status=first("status"),
            tags=tags,
            reply_delimiter=reply,
        ),
    )


def reply_delimiter(settings: RuleSettings) -> str:
    """The delimiter of our notifications' Reply-To: helpdesk+N@ (reply_to_ticket_address), "" for none."""
    return settings.recipient_delimiter[:1] if settings.reply_to_ticket_address else ""
