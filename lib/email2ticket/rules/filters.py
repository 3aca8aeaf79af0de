"""Postmaster filters: the admin's ordered rules that route, tag, prioritise, hold or ignore mail by its headers.

Zammad's "postmaster filters" and osTicket's "ticket filters", as data: `filters add NAME --if "FIELD OP [VALUE]"
... --then ACTION ...`. FIELD is a header name (its decoded values are matched), `recipient` or `sender` (the
envelope) or `body`; OP is `contains`, `is`, `matches` (RE2, the separators' linear-time engine), `exists`, or
their negations `not-contains`, `is-not`, `not-matches`, `missing`. Conditions are ANDed and case-insensitive;
`is` on an address header also holds for any one address in it (`From is alice@example.com`).

They run after the loop rules and before the update-or-create decision (rules/chain.py), in their position
order. Each that matches is recorded as `filter NAME: HIT - <its conditions>: <its actions>`. `hold` and
`ignore` stop the message as the loop rules do (kept raw, exit 0; `messages release` delivers it past exactly
that filter), and nothing after it is evaluated. `queue`, `priority`, `assign` and `status` apply only when the
message opens a ticket, each from the first matching filter that sets it; `tag` also on an update, from all.

`match_filters` is the one function that evaluates them: the delivery calls it before the rules (like the
classification), and `email2ticket filters test < message.eml` calls it too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from ..exits import ExitCode
from ..mail.envelope import Envelope
from ..mail.message import ParsedMessage
from ..reply.separators import Unusable, compiled_regex  # loaded for the reply cut anyway (reply/extract.py)
from .base import RELEASED, Finding, Found, hit, miss, rule
from .decision import Context, Decision, Facts, RuleResult
from .routing_facts import PRIORITIES, STATUSES, Condition, Filter, FilterAction, Filtered, FilterHit

if TYPE_CHECKING:
    from .walk import Walk

ENVELOPE_FIELDS = ("recipient", "sender", "body")
OPS = ("contains", "is", "matches", "exists", "not-contains", "is-not", "not-matches", "missing")
NEGATIONS = {"not-contains": "contains", "is-not": "is", "not-matches": "matches", "missing": "exists"}
ACTIONS = ("queue", "priority", "tag", "assign", "status", "hold", "ignore")
STOPS = ("hold", "ignore")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,23}")  # "filter NAME" fits messages.held_by (32)
_FIELD = re.compile(r"[!-9;-~]{1,76}")  # a header field name: printable ASCII but the colon (RFC 5322)
_TAG = re.compile(r"[^\s,]{1,64}")
_ADDRESS = re.compile(r"(?<![^\s<>(),;:\"])[^\s<>(),;:\"@]+@[^\s<>(),;:\"@]+")
MAX_VALUES = 50  # fields of one header name a condition looks at


class InvalidFilter(ValueError):
    """A filter an admin typed that cannot work; the message is one sentence meant for that admin."""


def valid_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise InvalidFilter(
            f"filter name {name!r}: 1 to 24 letters, digits, '.', '-' or '_', starting with a letter or digit"
        )
    return name


def parse_condition(text: str) -> Condition:
    """`"Subject contains URGENT"` -> Condition; InvalidFilter with the reason for the admin."""
    parts = text.strip().split(None, 2)
    if len(parts) < 2:
        raise InvalidFilter(f'condition {text!r}: write FIELD OP [VALUE], e.g. "Subject contains URGENT"')
    field, op = parts[0].removesuffix(":"), parts[1].lower()
    value = parts[2] if len(parts) > 2 else ""
    if not _FIELD.fullmatch(field):
        raise InvalidFilter(f"condition {text!r}: {field!r} is no header name (nor recipient, sender, body)")
    if op not in OPS:
        raise InvalidFilter(f"condition {text!r}: {op!r} is not one of {', '.join(OPS)}")
    if op in ("exists", "missing"):
        if value:
            raise InvalidFilter(f"condition {text!r}: {op} takes no value")
    elif not value:
        raise InvalidFilter(f"condition {text!r}: {op} needs a value")
    if op in ("matches", "not-matches"):
        check_pattern(value, text)
    return Condition(field, op, value)


def check_pattern(pattern: str, text: str) -> None:
    """Refuse a pattern RE2 cannot compile, or would search slowly (the separators' check, reply/pattern_cost.py)."""
    from ..reply.pattern_cost import costly_reason  # only for an admin's new filter, never in a delivery

    try:
        regex = compiled_regex(pattern)
    except Unusable as exc:
        raise InvalidFilter(f"condition {text!r}: not valid RE2 syntax ({exc})") from None
    reason = costly_reason(pattern, getattr(regex, "programsize", None))
    if reason is not None:
        raise InvalidFilter(f"condition {text!r}: too costly to search in every mail: {reason}")


def parse_action(text: str) -> FilterAction:
    """`"priority=high"`, `"hold"` -> FilterAction (queue and assign are checked against the database by the store)."""
    action, equals, value = text.strip().partition("=")
    action, value = action.strip().lower(), value.strip()
    if action not in ACTIONS:
        known = ", ".join(a if a in STOPS else f"{a}=..." for a in ACTIONS)
        raise InvalidFilter(f"action {text!r}: not one of {known}")
    if action in STOPS:
        if equals:
            raise InvalidFilter(f"action {text!r}: {action} takes no value")
        return FilterAction(action)
    if not value:
        raise InvalidFilter(f"action {text!r}: write {action}=VALUE")
    if action == "priority" and value.lower() not in PRIORITIES:
        raise InvalidFilter(f"action {text!r}: priority is one of {', '.join(PRIORITIES)}")
    if action == "status" and value.lower() not in STATUSES:
        raise InvalidFilter(f"action {text!r}: status is one of {', '.join(STATUSES)}")
    if action == "tag" and not _TAG.fullmatch(value):
        raise InvalidFilter(f"action {text!r}: a tag is one word of at most 64 characters")
    if action in ("priority", "status", "assign", "tag"):
        value = value.lower()
    return FilterAction(action, value)


def check_actions(actions: tuple[FilterAction, ...]) -> None:
    """A filter that holds or ignores does nothing else (the message stops there), and sets each thing once."""
    kinds = [a.action for a in actions]
    if not kinds:
        raise InvalidFilter("a filter needs at least one --then ACTION")
    stops = [kind for kind in kinds if kind in STOPS]
    if stops and len(kinds) > 1:
        raise InvalidFilter(f"{stops[0]} stops the message: a filter with it can have no other action")
    repeated = sorted({kind for kind in kinds if kind != "tag" and kinds.count(kind) > 1})
    if repeated:
        raise InvalidFilter(f"a filter sets {repeated[0]} once")


def as_json(conditions: tuple[Condition, ...], actions: tuple[FilterAction, ...]) -> tuple[list[Any], list[Any]]:
    """The filters table's JSON forms."""
    return (
        [{"field": c.field, "op": c.op, "value": c.value} for c in conditions],
        [{"action": a.action, "value": a.value} for a in actions],
    )


def stored_filter(name: str, position: int, conditions: Any, actions: Any) -> Filter:
    """A filter from its stored JSON (text, or already decoded); one this code cannot read never matches, and
    says why (a hand-edited row, a filter of a newer release)."""
    try:
        found = json.loads(conditions) if isinstance(conditions, str) else conditions
        done = json.loads(actions) if isinstance(actions, str) else actions
        parsed = tuple(Condition(str(c["field"]), str(c["op"]), str(c.get("value", ""))) for c in found)
        acts = tuple(FilterAction(str(a["action"]), str(a.get("value", ""))) for a in done)
        problems = [f"unknown op {c.op!r}" for c in parsed if c.op not in OPS]
        problems += [f"unknown action {a.action!r}" for a in acts if a.action not in ACTIONS]
        if not parsed:
            problems.append("no condition")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return Filter(name, position, (), (), problem=f"unreadable definition ({exc})")
    return Filter(name, position, parsed, acts, problem="; ".join(problems))


# --- matching -----------------------------------------------------------------------------------


def _values(condition: Condition, message: ParsedMessage, envelope: Envelope) -> tuple[str, ...]:
    field = condition.field.lower()
    if field == "recipient":
        return (envelope.recipient,) if envelope.recipient else ()
    if field == "sender":
        return () if envelope.sender is None else (envelope.sender or "<>",)
    if field == "body":
        return (message.text,)
    return message.header_all(field)[:MAX_VALUES]


def _is(value: str, wanted: str) -> bool:
    if value.strip().casefold() == wanted:
        return True
    return "@" in wanted and any(m.group().casefold() == wanted for m in _ADDRESS.finditer(value))


def holds(condition: Condition, message: ParsedMessage, envelope: Envelope) -> bool:
    """Whether one condition holds for the message (case-insensitive; a missing field holds only the negations)."""
    positive = NEGATIONS.get(condition.op, condition.op)
    values = _values(condition, message, envelope)
    test: Callable[[str], bool]
    if positive == "exists":
        result = bool(values)
    else:
        if positive == "contains":
            needle = condition.value.casefold()
            test = lambda value: needle in value.casefold()  # noqa: E731
        elif positive == "is":
            wanted = condition.value.strip().casefold()
            test = lambda value: _is(value, wanted)  # noqa: E731
        else:
            regex = compiled_regex(condition.value)
            test = lambda value: regex.search(value.encode("utf-8", "surrogatepass")) is not None  # noqa: E731
        result = any(test(value) for value in values)
    return result if positive == condition.op else not result


NO_FILTERS = Filtered()


def match_filters(
    filters: tuple[Filter, ...], message: ParsedMessage, envelope: Envelope, release: str | None = None
) -> Filtered:
    """Evaluate the filters in order, up to the first that matches and stops the message. `release`: the stopping
    rule an admin's `messages release` skips (`filter NAME`): that filter is not evaluated."""
    if not filters:
        return NO_FILTERS  # most help desks: nothing to do on every message
    checked: list[str] = []
    hits: list[FilterHit] = []
    unusable: list[str] = []
    released = None
    for item in filters:
        if release == f"filter {item.name}":
            released = item.name
            continue
        if item.problem:
            unusable.append(f"{item.name}: {item.problem}")
            continue
        checked.append(item.name)
        try:
            matched = all(holds(condition, message, envelope) for condition in item.conditions)
        except Unusable as exc:  # a stored pattern this RE2 refuses
            unusable.append(f"{item.name}: {exc}")
            continue
        if matched:
            hits.append(FilterHit(item.name, tuple(c.describe() for c in item.conditions), item.actions))
            if hits[-1].stops:
                break
    return Filtered(tuple(checked), tuple(hits), released, tuple(unusable))


def filter_outcome(ctx: Context, facts: Facts) -> Filtered:
    """What the filters said: as the delivery found it before the rules ran, else evaluated here."""
    if ctx.filtered is not None:
        return ctx.filtered
    return match_filters(facts.routing.filters, ctx.message, ctx.envelope, ctx.release)


def describe_hit(found: FilterHit) -> str:
    """`Subject contains 'URGENT' and From is 'x': priority=high, tag=vip`, with where the actions apply."""
    actions = ", ".join(a.describe() for a in found.actions)
    stop = found.stops
    if stop:
        effect = "held for the admin" if stop == "hold" else "ignored, kept raw"
        return f"{' and '.join(found.conditions)}: {actions}; {effect} (`messages release` skips this filter)"
    only_new = [a.describe() for a in found.actions if a.action != "tag"]
    scope = f" ({', '.join(only_new)} only for a new ticket)" if only_new else ""
    return f"{' and '.join(found.conditions)}: {actions}{scope}"


# --- the rule and what follows it ---------------------------------------------------------------


@rule(
    "filters",
    "the admin's postmaster filters (`filters add`), in order: each that matches is recorded as `filter NAME`; "
    "`hold`/`ignore` stop the message",
    see="Queues and filters",
)
def filters(ctx: Context, facts: Facts, found: Found) -> Finding:
    outcome = filter_outcome(ctx, facts)
    notes = "".join(f"; not usable: {note}" for note in outcome.unusable)
    notes += f"; filter {outcome.released} skipped (released by the admin)" if outcome.released else ""
    if not outcome.hits:
        return miss(f"none of the {len(outcome.checked)} filter(s) checked matched{notes}")
    names = ", ".join(h.name for h in outcome.hits)
    return hit(f"{len(outcome.hits)} of the {len(outcome.checked)} filter(s) checked matched: {names}{notes}")


def apply_filters(walk: Walk, result: RuleResult) -> Decision | None:
    """Record each filter that matched (and one a release skipped); one that holds or ignores stops the walk."""
    outcome = filter_outcome(walk.ctx, walk.facts)
    if outcome.released:
        walk.results.append(RuleResult(f"filter {outcome.released}", False, RELEASED))
    for found in outcome.hits:
        walk.results.append(RuleResult(f"filter {found.name}", True, describe_hit(found)))
        if found.stops is not None:
            action: Literal["hold", "ignore"] = "hold" if found.stops == "hold" else "ignore"
            reason = f"filter {found.name} {'holds' if action == 'hold' else 'ignores'} the message"
            results = tuple(walk.results)
            return Decision(action, ExitCode.OK, results, status_reason=reason, held_by=f"filter {found.name}")
    return None
