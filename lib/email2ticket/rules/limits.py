"""The structural limits as a rule: a message that would cost too much to parse whole is held, not refused.

mail/limits.py counts what the parser would have to build and cuts the parser's copy to the limits
([limits] in the configuration); the sentences of what was broken arrive as ParsedMessage.over_limits.
Held, the message is kept raw and exits 0: never a bounce (the sender may be forged) and never a retry
storm. `messages release` delivers it with what the limits allow; the ticket then gets an internal
note naming what was left in the raw message.
"""

from __future__ import annotations

from .base import Finding, Found, hit, miss, rule
from .decision import Context, Facts


@rule(
    "message-limits",
    "The message breaks a structural limit ([limits]: MIME parts, nesting, header fields and bytes, addresses "
    "per header, attachments): held, never parsed whole",
    releasable=True,
    see="Limits and hostile mail",
)
def message_limits(ctx: Context, facts: Facts, found: Found) -> Finding:
    over = ctx.message.over_limits
    if not over:
        return miss("within every structural limit ([limits])")
    return hit(f"{'; '.join(over)}; held for the admin (`messages release` delivers what the limits allow)")


def left_out(over: tuple[str, ...]) -> str:
    """The internal note on a ticket opened or updated from a released message that broke a limit."""
    return (
        "This message broke structural limits and was released by the admin; only what the limits allow was "
        "delivered, the rest is in the raw message (`email2ticket messages show ID --raw`): " + "; ".join(over)
    )
