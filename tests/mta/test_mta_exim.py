"""The MTA contract through a real Exim 4 (exim4-daemon-light), wired with postfix/exim4.conf.snippet.

Exim (4.94+) refuses tainted data such as ${sender_address} in a pipe command, so the envelope reaches
email2ticket-deliver through SENDER/RECIPIENT in the environment; `temp_errors = 75:71` makes 75 defer
(as in Postfix) and `return_fail_output` puts our one-line reason into the bounce.
"""

from __future__ import annotations

import pytest

from support.mta.exim import EximInstance
from support.mta.fixtures import MakeMtaDesk, MtaDesk
from support.mta.mail import HELPDESK, bounce_text, message
from support.mta.system import smtp_session, submit, submit_on, wait_for

pytestmark = pytest.mark.mta


@pytest.fixture
def desk(exim: EximInstance, make_mta_desk: MakeMtaDesk) -> MtaDesk:
    return make_mta_desk(exim, "sqlite")


def _bounce_for(exim: EximInstance, message_id: str) -> str:
    def probe() -> str | None:
        return next((bounce_text(b) for b in exim.bounces() if message_id in b.as_string()), None)

    return wait_for(f"the bounce of {message_id}", probe, timeout=60)


def test_delivery_exits_0_with_the_envelope_from_the_environment(exim: EximInstance, desk: MtaDesk) -> None:
    qid = submit(exim.port, "alice@customers.test", [HELPDESK], message("alice@customers.test", "Printer", "e1@c"))
    exim.wait_event(qid, "Completed")
    assert any(kind == "=>" for kind, _ in exim.events(qid))
    assert exim.queue_count() == 0
    (record,) = desk.messages()
    assert (record["action"], record["envelope_sender"], record["envelope_recipient"], record["queue_id"]) == (
        "create",
        "alice@customers.test",
        HELPDESK,
        qid,
    )
    raw = desk.admin("messages", "show", str(record["id"]), "--raw").stdout_text
    assert raw.startswith("Return-path: <alice@customers.test>")  # return_path_add; no "From " line


def test_null_sender_arrives_as_empty_sender(exim: EximInstance, desk: MtaDesk) -> None:
    qid = submit(exim.port, "", [HELPDESK], message("", "Report", "e0@c", from_header="monitor@customers.test"))
    exim.wait_event(qid, "Completed")
    (record,) = desk.messages()
    # Mail from <> is automatic mail (loop protection): kept, never a ticket, exit 0.
    assert (record["action"], record["envelope_sender"]) == ("ignore", "")
    assert any(reason.startswith("automatic-mail: automatic mail: null-sender") for reason in record["reasons"])


def test_tempfail_defers_then_delivers_exactly_once(
    exim: EximInstance, make_mta_desk: MakeMtaDesk, postgres_url: str
) -> None:
    desk = make_mta_desk(exim, postgres_url, init=False)
    qid = submit(exim.port, "bob@customers.test", [HELPDESK], message("bob@customers.test", "VPN", "e75@c"))
    reason = exim.wait_event(qid, "==")
    assert "returned 75" in reason
    assert exim.queue_count() == 1
    assert "email2ticket init" in exim.log()  # log_output: our first line is in the main log

    desk.admin("init")
    exim.flush()
    exim.wait_event(qid, "Completed")
    assert exim.queue_count() == 0
    exim.flush()
    assert [t["subject"] for t in desk.tickets()] == ["VPN"]
    assert [m["action"] for m in desk.messages()] == ["create"]


def test_unknown_sender_rejected_77_bounces_with_our_reason(exim: EximInstance, desk: MtaDesk) -> None:
    desk.admin("settings", "set", "unknown_senders", "reject")
    qid = submit(exim.port, "mallory@customers.test", [HELPDESK], message("mallory@customers.test", "Hi", "e77@c"))
    assert "returned 77" in exim.wait_event(qid, "**")
    text = _bounce_for(exim, "e77@c")
    assert "5.7.1 sender mallory@customers.test is not a help-desk user" in text
    assert [m["action"] for m in desk.messages()] == ["reject"]


def test_oversized_message_65_bounces_with_our_reason(exim: EximInstance, desk: MtaDesk) -> None:
    desk.configure(max_message_bytes=4000)
    raw = message("carol@customers.test", "Huge log", "e65@c", ("x" * 70 + "\n") * 100)
    qid = submit(exim.port, "carol@customers.test", [HELPDESK], raw)
    assert "returned 65" in exim.wait_event(qid, "**")
    assert "5.3.4 message larger than max_message_bytes (4000 bytes)" in _bounce_for(exim, "e65@c")


def test_thirty_messages_on_one_connection_land_exactly_once(exim: EximInstance, desk: MtaDesk) -> None:
    # smtp_accept_queue_per_connection = 0 (else Exim only queues after the 10th) and max_parallel = 4
    # (deliveries over it are deferred for a later queue run, which flush() is).
    with smtp_session(exim.port) as smtp:
        ids = [
            submit_on(
                smtp, f"user{i}@customers.test", [HELPDESK], message(f"user{i}@customers.test", f"P{i}", f"b{i}@c")
            )
            for i in range(30)
        ]

    def settled() -> bool:
        return all(any(kind in ("=>", "==") for kind, _ in exim.events(qid)) for qid in ids)

    wait_for("a first delivery attempt of every message", settled, timeout=120)
    for _ in range(5):
        if exim.queue_count() == 0:
            break
        exim.flush()
    assert exim.queue_count() == 0
    assert sorted(t["subject"] for t in desk.tickets()) == sorted(f"P{i}" for i in range(30))
    assert len(desk.messages("create")) == 30
