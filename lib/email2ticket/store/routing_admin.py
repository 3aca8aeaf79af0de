"""The admin's queues and postmaster filters: `queue add|list|remove|set-default` and `filters add|list|remove|move`.

Core statements on the admin store's session; results come back as the plain dicts `--json` prints. Exactly one
queue is the default (the admin commands keep it so: a partial unique index would differ between the engines), and
`default` exists from migration 0005 on. The rules read all of it in the delivery's preamble (store/facts.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update

from ..rules.filters import InvalidFilter, as_json, check_actions, parse_action, parse_condition, valid_name
from . import schema as t
from .admin import AdminError, _email

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ..mail.envelope import Envelope
    from .admin import AdminStore

_q, _qa, _f = t.queues.c, t.queue_addresses.c, t.filters.c


# --- queues -------------------------------------------------------------------------------------


def _queue_id(s: Session, name: str) -> int:
    found = s.execute(select(_q.id).where(_q.name == name)).scalar()
    if found is None:
        raise AdminError(f"there is no queue {name!r} (see `email2ticket queue list`)")
    return int(found)


def add_queue(store: AdminStore, name: str, addresses: list[str]) -> dict[str, Any]:
    """Create the queue (or add to an existing one) with its addresses; an address belongs to one queue only."""
    name = name.strip()
    if not name or len(name) > 64 or any(not char.isprintable() for char in name):
        raise AdminError(f"queue name {name!r}: 1 to 64 printable characters")
    wanted = [_email(address) for address in addresses]
    with store.session() as s:
        queue_id = s.execute(select(_q.id).where(_q.name == name)).scalar()
        if queue_id is None:
            s.execute(t.queues.insert().values(name=name, is_default=False, created_at=t.utcnow()))
            queue_id = s.execute(select(_q.id).where(_q.name == name)).scalar_one()
        for address in dict.fromkeys(wanted):
            owner = s.execute(select(_q.name).join_from(t.queue_addresses, t.queues).where(_qa.address == address))
            taken = owner.scalar()
            if taken == name:
                continue
            if taken is not None:
                raise AdminError(f"{address} is an address of queue {taken!r} already (`queue remove` it there first)")
            s.execute(t.queue_addresses.insert().values(address=address, queue_id=queue_id, created_at=t.utcnow()))
    return next(queue for queue in list_queues(store) if queue["name"] == name)


def list_queues(store: AdminStore) -> list[dict[str, Any]]:
    """Every queue with its addresses and how many tickets it holds, the default first."""
    with store.session() as s:
        queues = s.execute(select(_q.id, _q.name, _q.is_default).order_by(_q.is_default.desc(), _q.name)).all()
        addresses = s.execute(select(_qa.queue_id, _qa.address).order_by(_qa.address)).all()
        per_queue = select(t.tickets.c.queue_id, func.count()).group_by(t.tickets.c.queue_id)
        counts: dict[int | None, int] = {queue_id: int(count) for queue_id, count in s.execute(per_queue).all()}
    return [
        {
            "name": name,
            "default": bool(is_default),
            "addresses": [address for owner, address in addresses if owner == queue_id],
            "tickets": int(counts.get(queue_id, 0)),
        }
        for queue_id, name, is_default in queues
    ]


def remove_queue(store: AdminStore, name: str) -> str:
    """Remove a queue and its addresses; its tickets move to the default queue. Not the default queue, and not
    one a filter still puts mail in."""
    with store.session() as s:
        queue_id = _queue_id(s, name)
        default = s.execute(select(_q.id, _q.name).where(_q.is_default)).first()
        if default is not None and default.id == queue_id:
            raise AdminError(f"{name!r} is the default queue: make another the default first (`queue set-default`)")
        for filter_name, actions in s.execute(select(_f.name, _f.actions)).all():
            if any(a.get("action") == "queue" and a.get("value") == name for a in actions or ()):
                raise AdminError(f"filter {filter_name!r} puts mail in queue {name!r}: change or remove it first")
        moved = (
            s.connection()
            .execute(
                update(t.tickets)
                .where(t.tickets.c.queue_id == queue_id)
                .values(queue_id=default.id if default else None)
            )
            .rowcount
        )
        s.execute(delete(t.queue_addresses).where(_qa.queue_id == queue_id))
        s.execute(delete(t.queues).where(_q.id == queue_id))
    where = f" moved to the default queue {default.name!r}" if default else " left without a queue"
    return f"removed queue {name!r}" + (f"; its {moved} ticket(s){where}" if moved else "")


def set_default_queue(store: AdminStore, name: str) -> str:
    with store.session() as s:
        queue_id = _queue_id(s, name)
        s.execute(update(t.queues).values(is_default=t.queues.c.id == queue_id))
    return f"queue {name!r} is the default queue"


# --- filters ------------------------------------------------------------------------------------


def filter_dict(name: str, position: int, conditions: Any, actions: Any) -> dict[str, Any]:
    return {"name": name, "position": position, "conditions": list(conditions), "actions": list(actions)}


def describe_filter(item: dict[str, Any]) -> str:
    """`urgent: if Subject contains 'URGENT' then priority=high, tag=vip`, as `filters list` prints it."""
    ifs = " and ".join(
        f"{c['field']} {c['op']}" + (f" {c['value']!r}" if c.get("value") else "") for c in item["conditions"]
    )
    thens = ", ".join(a["action"] + (f"={a['value']}" if a.get("value") else "") for a in item["actions"])
    return f"{item['position']}. {item['name']}: if {ifs} then {thens}"


def add_filter(store: AdminStore, name: str, conditions: list[str], actions: list[str]) -> dict[str, Any]:
    """Validate and store a filter at the end of the list; its queue must exist, its technician be one."""
    try:
        valid_name(name)
        parsed = tuple(parse_condition(text) for text in conditions)
        acts = tuple(parse_action(text) for text in actions)
        if not parsed:
            raise InvalidFilter("a filter needs at least one --if CONDITION")
        check_actions(acts)
    except InvalidFilter as exc:
        raise AdminError(str(exc)) from None
    with store.session() as s:
        if s.execute(select(_f.id).where(_f.name == name)).first() is not None:
            raise AdminError(f"there is a filter {name!r} already (`filters remove` it first)")
        for action in acts:
            if action.action == "queue":
                _queue_id(s, action.value)
            if action.action == "assign":
                user = s.execute(select(t.users.c.is_technician).where(t.users.c.email == _email(action.value))).first()
                if user is None or not user.is_technician:
                    raise AdminError(f"{action.value} is not a technician (`user add {action.value} --technician`)")
        position = int(s.execute(select(func.coalesce(func.max(_f.position), 0))).scalar_one()) + 1
        stored_conditions, stored_actions = as_json(parsed, acts)
        s.execute(
            t.filters.insert().values(
                name=name, position=position, conditions=stored_conditions, actions=stored_actions,
                created_at=t.utcnow(),
            )
        )  # fmt: skip
    return filter_dict(name, position, stored_conditions, stored_actions)


def list_filters(store: AdminStore) -> list[dict[str, Any]]:
    with store.session() as s:
        rows = s.execute(select(_f.name, _f.position, _f.conditions, _f.actions).order_by(_f.position)).all()
    return [filter_dict(*row) for row in rows]


def remove_filter(store: AdminStore, name: str) -> str:
    with store.session() as s:
        if not s.connection().execute(delete(t.filters).where(_f.name == name)).rowcount:
            raise AdminError(f"there is no filter {name!r} (see `email2ticket filters list`)")
        _renumber(s, [row.name for row in s.execute(select(_f.name).order_by(_f.position))])
    return f"removed filter {name!r}"


def move_filter(store: AdminStore, name: str, position: int) -> str:
    """Put the filter at `position` (1: first; past the end: last); the others keep their order."""
    with store.session() as s:
        names = [row.name for row in s.execute(select(_f.name).order_by(_f.position))]
        if name not in names:
            raise AdminError(f"there is no filter {name!r} (see `email2ticket filters list`)")
        if position < 1:
            raise AdminError("a position is 1 or more (1: checked first)")
        names.remove(name)
        names.insert(min(position, len(names) + 1) - 1, name)
        _renumber(s, names)
    return f"filter {name!r} is number {names.index(name) + 1} of {len(names)}"


def _renumber(s: Session, names: list[str]) -> None:
    for index, name in enumerate(names, start=1):
        s.execute(update(t.filters).where(_f.name == name).values(position=index))


def try_filters(store: AdminStore, raw: bytes, envelope: Envelope) -> dict[str, Any]:
    """`filters test`: which filters match the message and what they would do, by the very function delivery
    calls (rules/filters.py match_filters) on the filters as delivery reads them (store/facts.py)."""
    from ..mail.message import parse_message
    from ..rules.filters import describe_hit, match_filters
    from .facts import PREAMBLE, routing

    with store.session() as s:
        preamble = [tuple(row) for row in s.execute(PREAMBLE)]
    filtered = match_filters(routing(preamble).filters, parse_message(raw), envelope)
    return {
        "checked": list(filtered.checked),
        "matched": [
            {"name": hit.name, "conditions": list(hit.conditions), "actions": [a.describe() for a in hit.actions],
             "explain": describe_hit(hit)}
            for hit in filtered.hits
        ],
        "unusable": list(filtered.unusable),
    }  # fmt: skip
