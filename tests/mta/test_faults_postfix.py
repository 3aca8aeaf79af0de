"""Faults under a real Postfix: the database goes away in the middle of a burst; many deliveries at once.

Each test counts messages in and out: in (submitted), landed (exactly one ticket or comment each),
duplicated (more than one), lost (none); the summary line is printed (pytest -s shows it).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from support.mta.fixtures import MakeMtaDesk, MtaDesk
from support.mta.mail import HELPDESK, message
from support.mta.postfix import PostfixInstance
from support.mta.system import smtp_session, submit_on, wait_for

if TYPE_CHECKING:
    from support.servers.pgserver import PgServer

pytestmark = [pytest.mark.mta, pytest.mark.slow]


def _final(postfix: PostfixInstance, ids: list[str]) -> dict[str, str]:
    statuses = postfix.statuses()
    return {qid: statuses[qid][-1][0] for qid in ids if qid in statuses}


def _drain(postfix: PostfixInstance, timeout: float = 300) -> int:
    """Flush until the queue is empty (a flush also revives a transport Postfix had marked dead)."""
    flushes = 0

    def empty() -> bool:
        nonlocal flushes
        if not postfix.queue():
            return True
        postfix.flush()
        flushes += 1
        return False

    wait_for("the queue to drain", empty, timeout=timeout, interval=3)
    return flushes


def _count(desk: MtaDesk, subjects: list[str]) -> dict[str, int]:
    landed = Counter(t["subject"] for t in desk.tickets())
    return {
        "in": len(subjects),
        "landed": sum(1 for s in subjects if landed[s] == 1),
        "duplicated": sum(1 for s in subjects if landed[s] > 1),
        "lost": sum(1 for s in subjects if landed[s] == 0),
    }


def test_postgresql_stopped_during_a_burst_of_200(
    postfix: PostfixInstance, make_mta_desk: MakeMtaDesk, postgres_url: str, pg_admin: PgServer
) -> None:
    desk = make_mta_desk(postfix, postgres_url)
    subjects = [f"Burst {i:03d} printer" for i in range(200)]
    ids: list[str] = []

    def send() -> None:
        with smtp_session(postfix.port) as smtp:
            for i, subject in enumerate(subjects):  # distinct senders: no per-sender limit applies
                sender = f"burst{i:03d}@customers.test"
                ids.append(submit_on(smtp, sender, [HELPDESK], message(sender, subject, f"burst{i}@c")))

    sender = threading.Thread(target=send)
    sender.start()
    wait_for("50 deliveries", lambda: sum(s == "sent" for s in _final(postfix, list(ids)).values()) >= 50, 120)
    pg_admin.stop()  # mid-burst: some deliveries are in flight, the rest find no server
    sender.join(timeout=300)
    assert len(ids) == 200
    wait_for("an attempt at every message", lambda: len(_final(postfix, ids)) == 200, timeout=300)
    before = Counter(_final(postfix, ids).values())
    assert before["bounced"] == 0
    assert before["deferred"] > 0, before
    assert {q["queue_name"] for q in postfix.queue()} <= {"deferred", "active", "incoming"}

    pg_admin.start()
    flushes = _drain(postfix)
    after = Counter(_final(postfix, ids).values())
    counts = _count(desk, subjects)
    actions = Counter(m["action"] for m in desk.messages())
    print(
        f"\nfault postgresql-stopped-mid-burst: {counts} sent-before-stop={before['sent']} "
        f"deferred={before['deferred']} flushes={flushes} audit={dict(actions)}"
    )
    assert after == {"sent": 200}
    assert counts == {"in": 200, "landed": 200, "duplicated": 0, "lost": 0}
    assert actions["create"] == 200


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_twenty_replies_and_twenty_new_tickets_at_once(
    postfix: PostfixInstance, make_mta_desk: MakeMtaDesk, backend: str, request: pytest.FixtureRequest
) -> None:
    url = "sqlite" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    desk = make_mta_desk(postfix, url)
    with smtp_session(postfix.port) as smtp:
        first = submit_on(smtp, "alice@customers.test", [HELPDESK], message("alice@customers.test", "Shared", "s0@c"))
    postfix.wait_status(first, "sent")

    mails = [
        (f"new{i}@customers.test", message(f"new{i}@customers.test", f"New {i} laptop", f"n{i}@c")) for i in range(20)
    ]
    mails += [
        ("alice@customers.test", message("alice@customers.test", "RE: Shared [Ticket #1]", f"r{i}@c", f"reply {i}\n"))
        for i in range(20)
    ]
    ids: list[str] = []

    def send(batch: list[tuple[str, bytes]]) -> None:
        with smtp_session(postfix.port) as smtp:
            for sender, raw in batch:
                ids.append(submit_on(smtp, sender, [HELPDESK], raw))

    threads = [threading.Thread(target=send, args=(mails[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(ids) == 40
    wait_for("all 40 delivered", lambda: list(_final(postfix, ids).values()).count("sent") == 40, timeout=180)
    postfix.wait_queue_empty()

    tickets = desk.tickets()
    comments = desk.json("ticket", "show", "1")["comments"]
    counts = _count(desk, [f"New {i} laptop" for i in range(20)])
    replies = Counter(c["body"] for c in comments)
    print(f"\nfault concurrent-40-{backend}: new={counts} replies-landed={sum(v == 1 for v in replies.values())}")
    assert counts == {"in": 20, "landed": 20, "duplicated": 0, "lost": 0}
    assert len(tickets) == 21
    assert sorted(replies) == sorted(f"reply {i}" for i in range(20)) and set(replies.values()) == {1}
