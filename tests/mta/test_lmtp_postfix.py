"""LMTP through a real Postfix: its lmtp(8) client delivers to the resident service's Unix socket, wired as
postfix/setup.sh wires it (WIRING=lmtp: an `email2ticket-lmtp` lmtp service, one recipient per delivery, and
a transport entry `email2ticket-lmtp:unix:email2ticket/lmtp.sock`, relative to Postfix's queue directory).

The service is restarted in the middle of a burst, gracefully (SIGTERM: it drains what it holds) and as a
crash (SIGKILL: a delivery may commit and never be answered). Meanwhile Postfix cannot connect and defers;
after the restart it retries (the test flushes the queue to speed that up). Counted at the end: in, landed
(exactly one ticket each), duplicated, lost. The summary line is printed (pytest -s shows it).
"""

from __future__ import annotations

import grp
import pwd
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.mta.fixtures import MakeMtaDesk, MtaDesk
from support.mta.mail import HELPDESK, message
from support.mta.postfix import PostfixInstance
from support.mta.system import POSTFIX_USER, run, smtp_session, submit, submit_on, wait_for
from support.servers.delivery_service import ServiceProcess

pytestmark = pytest.mark.mta

TRANSPORT = "email2ticket-lmtp"
SOCKET = "email2ticket/lmtp.sock"  # as the transport entry names it: relative to the queue directory


@pytest.fixture(scope="module")
def lmtp_postfix(postfix: PostfixInstance) -> PostfixInstance:
    """The module's Postfix with the help-desk address routed to the service over LMTP instead of the pipe."""
    (postfix.etc / "master.cf").write_text(
        (postfix.etc / "master.cf").read_text() + f"{TRANSPORT} unix - - n - 20 lmtp\n"
    )
    (postfix.etc / "main.cf").write_text(
        (postfix.etc / "main.cf").read_text()
        + f"{TRANSPORT}_destination_recipient_limit = 1\n{TRANSPORT}_destination_concurrency_limit = 8\n"
    )
    transport = postfix.etc / "transport"
    routes = [line for line in transport.read_text().splitlines() if not line.startswith(HELPDESK)]
    transport.write_text("\n".join([*routes, f"{HELPDESK} {TRANSPORT}:unix:{SOCKET}"]) + "\n")
    run([postfix.dist.sbin / "postmap", "-c", postfix.etc, transport], env=postfix.dist.env())
    (postfix.queue_dir / "email2ticket").mkdir(mode=0o755, exist_ok=True)
    postfix.reload()
    return postfix


@pytest.fixture
def service(lmtp_postfix: PostfixInstance, make_mta_desk: MakeMtaDesk, postgres_url: str) -> Iterator[ServiceProcess]:
    desk = make_mta_desk(lmtp_postfix, postgres_url)
    group = grp.getgrgid(pwd.getpwnam(POSTFIX_USER).pw_gid).gr_name  # lmtp(8) runs as Postfix's mail_owner
    desk.configure(service={"socket_group": group})
    process = ServiceProcess(
        postgres_url, config=desk.mta.config_toml, lmtp_socket=lmtp_postfix.queue_dir / SOCKET, threads=4
    )
    process.desk = desk  # type: ignore[attr-defined]
    try:
        yield process.start()
    finally:
        process.close()


def _desk(service: ServiceProcess) -> MtaDesk:
    desk: MtaDesk = service.desk  # type: ignore[attr-defined]
    return desk


def test_a_message_through_postfix_lmtp(lmtp_postfix: PostfixInstance, service: ServiceProcess) -> None:
    qid = submit(lmtp_postfix.port, "alice@customers.test", [HELPDESK], message("alice@customers.test", "VPN", "l1@c"))
    assert lmtp_postfix.wait_status(qid, "sent").startswith("250 2.0.0")
    (record,) = _desk(service).messages()
    assert (record["action"], record["queue_id"], record["envelope_recipient"]) == ("create", qid, HELPDESK)
    (line,) = [line for line in lmtp_postfix.log().splitlines() if f"{qid}: to=<" in line]
    assert "postfix/lmtp[" in line and "status=sent" in line, line  # by lmtp(8), not by pipe(8)


def _final(postfix: PostfixInstance, ids: list[str]) -> dict[str, str]:
    statuses = postfix.statuses()
    return {qid: statuses[qid][-1][0] for qid in ids if qid in statuses}


@pytest.mark.slow
@pytest.mark.parametrize("restart", ["graceful", "crash"])
def test_a_service_restart_in_the_middle_of_a_burst_loses_and_duplicates_nothing(
    lmtp_postfix: PostfixInstance, service: ServiceProcess, restart: str
) -> None:
    postfix, desk = lmtp_postfix, _desk(service)
    subjects = [f"Burst {i:03d} laptop" for i in range(80)]
    ids: list[str] = []

    def send() -> None:
        with smtp_session(postfix.port) as smtp:
            for i, subject in enumerate(subjects):  # distinct senders: no per-sender limit applies
                sender = f"burst{i:03d}@customers.test"
                ids.append(submit_on(smtp, sender, [HELPDESK], message(sender, subject, f"lb{i}@c")))

    sender = threading.Thread(target=send)
    sender.start()
    wait_for("20 deliveries", lambda: list(_final(postfix, list(ids)).values()).count("sent") >= 20, 120)
    if restart == "graceful":
        assert service.stop() == 0
    else:
        service.kill()
    sender.join(timeout=300)
    assert len(ids) == 80
    wait_for("an attempt at every message", lambda: len(_final(postfix, ids)) == 80, timeout=300)
    before = Counter(_final(postfix, ids).values())
    service.start()

    flushes = 0

    def drained() -> bool:
        nonlocal flushes
        if not postfix.queue():
            return True
        postfix.flush()  # retry now, and forget that the transport looked dead
        flushes += 1
        return False

    wait_for("the queue to drain", drained, timeout=300, interval=2)
    after = Counter(_final(postfix, ids).values())
    landed = Counter(t["subject"] for t in desk.tickets())
    counts = {
        "in": len(subjects),
        "landed": sum(1 for s in subjects if landed[s] == 1),
        "duplicated": sum(1 for s in subjects if landed[s] > 1),
        "lost": sum(1 for s in subjects if landed[s] == 0),
    }
    actions = Counter(m["action"] for m in desk.messages())
    print(f"\nlmtp-restart-{restart}: {counts} before-restart={dict(before)} flushes={flushes} audit={dict(actions)}")
    assert before["bounced"] == 0 and before["deferred"] > 0, before
    assert after == {"sent": 80}
    assert counts == {"in": 80, "landed": 80, "duplicated": 0, "lost": 0}
    assert actions["create"] == 80 and set(actions) <= {"create", "duplicate"}
    assert Path(postfix.queue_dir / SOCKET).is_socket()
