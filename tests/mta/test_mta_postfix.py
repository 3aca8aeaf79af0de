"""The MTA contract through a real Postfix: pipe(8) wiring from postfix/, run as the unprivileged pipe user.

exit 0 -> delivered and removed from the queue; 75 -> deferred and still queued, then delivered exactly
once after the cause is fixed and the queue flushed; 65/77 -> bounced, and the bounce (delivered to a
local Maildir) carries our one-line reason. Also local(8): procmail (postfix/procmailrc.example) and a
.forward (postfix/dot-forward.example), and `email2ticket doctor` on this very wiring.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest

from support.mta.fixtures import MakeMtaDesk, MtaDesk
from support.mta.mail import HELPDESK, bounce_text, message
from support.mta.postfix import LOCAL_DOMAIN, PostfixInstance
from support.mta.system import PIPE_USER, submit

pytestmark = pytest.mark.mta


@pytest.fixture
def desk(postfix: PostfixInstance, make_mta_desk: MakeMtaDesk) -> MtaDesk:
    return make_mta_desk(postfix, "sqlite")


def test_delivery_exits_0_and_leaves_the_queue(postfix: PostfixInstance, desk: MtaDesk) -> None:
    qid = submit(postfix.port, "alice@customers.test", [HELPDESK], message("alice@customers.test", "Printer", "p1@c"))
    assert postfix.wait_status(qid, "sent") == "delivered via email2ticket service"
    reply = message("alice@customers.test", "RE: Printer [Ticket #1]", "p2@c", "Still jammed.\n")
    assert postfix.wait_status(submit(postfix.port, "alice@customers.test", [HELPDESK], reply), "sent")
    postfix.wait_queue_empty()

    assert [t["subject"] for t in desk.tickets()] == ["Printer"]
    first, second = desk.messages()
    assert (first["action"], second["action"], second["ticket"]) == ("create", "update", 1)
    # pipe(8) passed the envelope on the command line (--sender/--recipient/--queue-id) ...
    assert (first["envelope_sender"], first["envelope_recipient"], first["queue_id"]) == (
        "alice@customers.test",
        HELPDESK,
        qid,
    )
    # ... flags=R prepended Return-Path:, and the command ran as the unprivileged pipe user.
    raw = desk.admin("messages", "show", str(first["id"]), "--raw").stdout_text
    assert raw.startswith("Return-Path: <alice@customers.test>")
    database = Path(desk.url.removeprefix("sqlite:///"))
    assert pwd.getpwuid(database.stat().st_uid).pw_name == PIPE_USER
    assert f"queue_id={qid} " in desk.log_file.read_text()


def test_null_sender_arrives_as_empty_sender(postfix: PostfixInstance, desk: MtaDesk) -> None:
    raw = message("", "Delivery report", "dsn1@c", from_header="monitor@customers.test")
    qid = submit(postfix.port, "", [HELPDESK], raw)
    postfix.wait_status(qid, "sent")
    (record,) = desk.messages()
    assert record["envelope_sender"] == ""  # null_sender= : not "MAILER-DAEMON"
    assert desk.admin("messages", "show", str(record["id"]), "--raw").stdout_text.startswith("Return-Path: <>")


def test_tempfail_defers_then_delivers_exactly_once(
    postfix: PostfixInstance, make_mta_desk: MakeMtaDesk, postgres_url: str
) -> None:
    desk = make_mta_desk(postfix, postgres_url, init=False)  # no schema yet: every delivery exits 75
    qid = submit(postfix.port, "bob@customers.test", [HELPDESK], message("bob@customers.test", "VPN", "v1@c"))
    reason = postfix.wait_status(qid, "deferred")
    assert "email2ticket init" in reason
    (queued,) = postfix.queue()
    assert queued["queue_id"] == qid and queued["queue_name"] == "deferred"
    assert "email2ticket init" in queued["recipients"][0]["delay_reason"]
    assert not postfix.bounces() or all(qid not in bounce_text(b) for b in postfix.bounces())

    desk.admin("init")
    postfix.flush()
    postfix.wait_status(qid, "sent")
    postfix.wait_queue_empty()
    postfix.flush()  # a second flush has nothing left to deliver
    assert [t["subject"] for t in desk.tickets()] == ["VPN"]
    assert [m["action"] for m in desk.messages()] == ["create"]


def _bounce_for(postfix: PostfixInstance, message_id: str) -> str:
    from support.mta.system import wait_for

    def probe() -> str | None:
        return next((bounce_text(b) for b in postfix.bounces() if message_id in b.as_string()), None)

    return wait_for(f"the bounce of {message_id}", probe, timeout=60)


def test_unknown_sender_rejected_77_bounces_with_our_reason(postfix: PostfixInstance, desk: MtaDesk) -> None:
    desk.admin("settings", "set", "unknown_senders", "reject")
    raw = message("mallory@customers.test", "Let me in", "m77@c")
    qid = submit(postfix.port, "mallory@customers.test", [HELPDESK], raw)
    assert postfix.wait_status(qid, "bounced") == "sender mallory@customers.test is not a help-desk user "
    text = _bounce_for(postfix, "m77@c")
    assert "sender mallory@customers.test is not a help-desk user" in text
    assert "Status: 5.7.1" in text
    postfix.wait_queue_empty()
    assert desk.tickets() == []
    assert [m["action"] for m in desk.messages()] == ["reject"]


def test_oversized_message_65_bounces_with_our_reason(postfix: PostfixInstance, desk: MtaDesk) -> None:
    desk.configure(max_message_bytes=4000)
    raw = message("carol@customers.test", "Huge log", "big65@c", ("x" * 70 + "\n") * 100)
    qid = submit(postfix.port, "carol@customers.test", [HELPDESK], raw)
    postfix.wait_status(qid, "bounced")
    text = _bounce_for(postfix, "big65@c")
    assert "message larger than max_message_bytes (4000 bytes)" in text
    assert "Status: 5.3.4" in text
    assert desk.tickets() == []


def test_message_above_postfix_default_size_limit_is_delivered(postfix: PostfixInstance, desk: MtaDesk) -> None:
    # 12 MB: above Postfix's default message_size_limit (10240000), which main.cf.snippet raises.
    attachment_line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=" * 2 + "\n"
    body = "see the log\n" + attachment_line * (12_000_000 // len(attachment_line))
    qid = submit(postfix.port, "dave@customers.test", [HELPDESK], message("dave@customers.test", "Big", "b12@c", body))
    postfix.wait_status(qid, "sent", timeout=120)
    assert [t["subject"] for t in desk.tickets()] == ["Big"]


def _default_mailbox_size() -> int:
    try:
        return os.stat(f"/var/mail/{PIPE_USER}").st_size
    except FileNotFoundError:
        return 0


def test_procmail_recipe_propagates_each_exit_code(postfix: PostfixInstance, desk: MtaDesk) -> None:
    address = f"{PIPE_USER}+pm@{LOCAL_DOMAIN}"  # local(8) -> mailbox_command -> procmail -> the recipe
    before = _default_mailbox_size()

    qid = submit(
        postfix.port, "erin@customers.test", [address], message("erin@customers.test", "Via procmail", "pm0@c")
    )
    assert "procmail" in postfix.wait_status(qid, "sent")

    desk.configure(no_such_setting=1)  # a broken configuration: email2ticket exits 75, procmail too
    qid = submit(postfix.port, "erin@customers.test", [address], message("erin@customers.test", "Deferred", "pm75@c"))
    postfix.wait_status(qid, "deferred")
    assert [q["queue_name"] for q in postfix.queue()] == ["deferred"]
    desk.configure()
    postfix.flush()
    postfix.wait_status(qid, "sent")

    desk.admin("settings", "set", "unknown_senders", "reject")
    qid = submit(postfix.port, "frank@customers.test", [address], message("frank@customers.test", "No", "pm77@c"))
    postfix.wait_status(qid, "bounced")
    _bounce_for(postfix, "pm77@c")
    postfix.wait_queue_empty()

    assert sorted(t["subject"] for t in desk.tickets()) == ["Deferred", "Via procmail"]
    assert sorted(m["action"] for m in desk.messages()) == ["create", "create", "reject"]
    assert _default_mailbox_size() == before, "procmail filed a message in the default mailbox"


def test_dot_forward_pipe_reads_the_envelope_from_the_environment(postfix: PostfixInstance, desk: MtaDesk) -> None:
    address = f"{PIPE_USER}+fwd@{LOCAL_DOMAIN}"  # forward_path finds postfix/dot-forward.example
    qid = submit(postfix.port, "gina@customers.test", [address], message("gina@customers.test", "Forwarded", "fw@c"))
    assert "delivered to command" in postfix.wait_status(qid, "sent")
    (record,) = desk.messages()
    assert (record["action"], record["envelope_sender"], record["envelope_recipient"]) == (
        "create",
        "gina@customers.test",
        address,
    )


def test_doctor_accepts_this_wiring_and_names_what_is_wrong(postfix: PostfixInstance, desk: MtaDesk) -> None:
    doctor = [str(desk.install.admin), "--config", str(postfix.config_toml), "doctor"]
    args = ["--user", PIPE_USER, "--postfix-config", str(postfix.etc)]
    proc = subprocess.run([*doctor, *args], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout
    assert "OK    postfix master.cf (email2ticket)" in proc.stdout

    # The same checks against a master.cf without null_sender= and a main.cf with the default size limit.
    broken = postfix.base / "broken-etc"
    broken.mkdir()
    master = (postfix.etc / "master.cf").read_text().replace("null_sender=", "")
    (broken / "master.cf").write_text(master)
    main = (postfix.etc / "main.cf").read_text().replace("message_size_limit = 52428800", "")
    (broken / "main.cf").write_text(main)
    proc = subprocess.run(
        [*doctor, "--user", PIPE_USER, "--postfix-config", str(broken)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert "null_sender= (empty) is missing" in proc.stdout
    assert "message_size_limit (10240000) is below max_message_bytes" in proc.stdout
