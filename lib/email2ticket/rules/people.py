"""Who a message involves besides its sender: the help desk's own addresses, the ticket's Cc participants, and the
person a robot writes for.

Help desks learnt both from their users' bug reports. A colleague copied on the first mail answers with
Reply-All before the subject carries a ticket number: the To:/Cc: addresses of the mail that opened a ticket
become its participants, who may reply like its requester (rules/ticket.py `sender-is-participant`), so the
reply lands on the ticket instead of opening a duplicate. And a web form or shop robot sends as `no-reply@`
with the customer in Reply-To: for the robots the admin lists in `reply_to_senders`, that person is the
sender. Reply-To is trivially forged, so for everyone else it changes nothing.

Our own addresses are never participants (the help desk would write to itself): see `our_addresses`.
Pure functions over the message, the settings and the facts; the store writes what they decide.
"""

from __future__ import annotations

from msgspec.structs import replace

from ..config.rule_settings import RuleSettings
from ..mail.message import ParsedMessage
from ..mail.mime.headers import addresses
from .base import Finding, Found, hit, miss, rule
from .decision import Context, Facts, Sender

# A Reply-All to a mailing list can carry hundreds of addresses: at most this many new participants a message,
# and this many on a ticket (with restrict_replies off anyone may add some, and notify_participants mails them).
MAX_NEW_PARTICIPANTS = 50
MAX_PARTICIPANTS = 100
DEFAULT_DELIMITER = "+"


def base_address(address: str, delimiters: str = DEFAULT_DELIMITER) -> str:
    """`helpdesk+7@example.org` -> `helpdesk@example.org`: the local part up to the first delimiter character
    (Postfix's recipient_delimiter may name several); an address without one is its own base."""
    local, at, domain = address.rpartition("@")
    if not at or not delimiters:
        return address
    cut = min((index for index in (local.find(d) for d in delimiters) if index > 0), default=-1)
    return f"{local[:cut]}@{domain}" if cut > 0 else address


def our_addresses(ctx: Context, facts: Facts) -> frozenset[str]:
    """The help desk's own addresses: `own_addresses`, [notifications]' from_address and bounce_address, every
    queue address, and the envelope recipient with its base address (`helpdesk+7@` -> `helpdesk@`). Mail
    delivered without an envelope recipient knows the desk's address only from `own_addresses`."""
    settings = facts.settings
    delimiters = settings.recipient_delimiter
    found = set(settings.own_addresses) | ctx.outbound.own_addresses | facts.queue_addresses
    recipient = ctx.envelope.recipient
    if recipient:
        found |= {recipient.lower(), base_address(recipient.lower(), delimiters)}
    return frozenset(found)


def matching_entry(address: str | None, entries: tuple[str, ...]) -> str | None:
    """The entry of an address list setting (`addr@domain` or `@domain`, the domain exactly) `address` matches."""
    if not address or "@" not in address:
        return None
    address = address.lower()
    domain = address.rpartition("@")[2]
    return next((entry for entry in entries if entry == address or entry == f"@{domain}"), None)


def reply_to_address(message: ParsedMessage) -> str | None:
    """The first usable address of the first Reply-To: header."""
    value = message.header("reply-to")
    found = addresses(value) if value else ()
    return found[0] if found else None


def with_requester(ctx: Context, settings: RuleSettings) -> Context:
    """For mail from a robot listed in `reply_to_senders`, the sender becomes its first Reply-To: address: for the
    update rule, a new ticket and its notifications alike. Everyone else's Reply-To changes nothing."""
    sender = ctx.sender
    if sender.source == "reply-to" or matching_entry(sender.address, settings.reply_to_senders) is None:
        return ctx
    person = reply_to_address(ctx.message)
    recipient = (ctx.envelope.recipient or "").lower()
    ours = {*settings.own_addresses, *ctx.outbound.own_addresses, recipient}
    if person is None or person == sender.address or person in ours:  # a robot answering to the desk itself
        return ctx
    return replace(ctx, sender=Sender(person, "reply-to", robot=sender.address))


def involves_reply_to(ctx: Context, facts: Facts) -> bool:
    """Whether `requester-from-reply-to` has anything to say: the mail has a Reply-To:, or comes from a listed robot."""
    robot = ctx.sender.robot or ctx.sender.address
    listed = matching_entry(robot, facts.settings.reply_to_senders) is not None
    return listed or ctx.message.header("reply-to") is not None


@rule(
    "requester-from-reply-to",
    "mail from a robot in `reply_to_senders` (a web form, a shop) is from the person in its Reply-To:; "
    "anyone else's Reply-To: changes nothing",
)
def requester_from_reply_to(ctx: Context, facts: Facts, found: Found) -> Finding:
    sender, entries = ctx.sender, facts.settings.reply_to_senders
    if sender.source == "reply-to":
        entry = matching_entry(sender.robot, entries)
        return hit(
            f"{sender.robot} is a robot in reply_to_senders ({entry}): the sender and requester is its Reply-To: "
            f"address {sender.address}"
        )
    if matching_entry(sender.address, entries) is not None:
        return miss(f"{sender.address} is in reply_to_senders, but the mail has no usable Reply-To: address of another")
    return miss(
        f"Reply-To: {reply_to_address(ctx.message) or '(no address)'} is ignored: {sender.address} is not in "
        "reply_to_senders (Reply-To: is trivially forged)"
    )


def header_addresses(message: ParsedMessage, names: tuple[str, ...] = ("to", "cc")) -> tuple[str, ...]:
    """The addresses of the To: and Cc: headers, in order, each once."""
    found = (address for name in names for value in message.header_all(name) for address in addresses(value))
    return tuple(dict.fromkeys(found))


def new_participants(ctx: Context, facts: Facts, updating: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the To:/Cc: addresses that become participants, those left out as our own or a plus-form of one), sorted.
    Not the sender, the robot it came through, the ticket's requester or technician, nor who already is one;
    at most MAX_NEW_PARTICIPANTS, and no more than the ticket has room for (MAX_PARTICIPANTS)."""
    wanted, own = _candidates(ctx, facts, updating)
    return wanted[: _room(facts, updating)], own


def _room(facts: Facts, updating: bool) -> int:
    """How many new participants this message may add."""
    room = MAX_PARTICIPANTS - len(facts.participants) if updating else MAX_PARTICIPANTS
    return max(0, min(room, MAX_NEW_PARTICIPANTS))


def _candidates(ctx: Context, facts: Facts, updating: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    ours = our_addresses(ctx, facts)
    people = {ctx.sender.address, ctx.sender.robot}
    ticket = facts.ticket
    if updating and ticket is not None:  # a new ticket owes nothing to the one the sender may not update
        people |= {ticket.requester, ticket.technician, *facts.participants}
    delimiters = facts.settings.recipient_delimiter
    candidates = [address for address in header_addresses(ctx.message) if address not in people]
    own = sorted(a for a in candidates if a in ours or base_address(a, delimiters) in ours)  # helpdesk+7@ too
    return tuple(sorted(a for a in candidates if a not in own)), tuple(own)


@rule(
    "cc-participants",
    "the To:/Cc: addresses of a new ticket's mail, or of an authorised reply, other than our own, become the "
    "ticket's participants (`cc_participants`)",
)
def cc_participants(ctx: Context, facts: Facts, found: Found) -> Finding:
    if not facts.settings.cc_participants:
        return miss("cc_participants is off")
    wanted, own = _candidates(ctx, facts, found.updating)
    new = wanted[: _room(facts, found.updating)]
    left_out = f" (left out as our own: {', '.join(own)})" if own else ""
    if not new:
        full = f"; the ticket has its {MAX_PARTICIPANTS} participants" if wanted else ""
        return miss(f"no To:/Cc: address that is not already on the ticket or our own{left_out}{full}")
    capped = (
        f" (at most {MAX_NEW_PARTICIPANTS} a message, {MAX_PARTICIPANTS} a ticket)" if len(new) < len(wanted) else ""
    )
    return hit(f"{', '.join(new)} become participants of the ticket{capped}{left_out}")
