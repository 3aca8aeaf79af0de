"""Loop-protection classification (signals/classify.py): each signal on and off, own mail, tokens, spam, the allow-list.

The corpus tests at the end pin down exactly which real messages carry automatic signals and why, so that a
looser pattern shows up as a new entry there, not as a customer's mail silently ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from msgspec.structs import replace

from email2ticket.config.rule_settings import RuleSettings
from email2ticket.mail.envelope import Envelope
from email2ticket.mail.message import parse_message
from email2ticket.signals.classify import LOOP_HEADER, OUT_OF_OFFICE_SUBJECT, Classification, Signal, classify
from email2ticket.signals.tokens import Key, Keyring, make_message_id
from support.corpus import CORPUS_DIR, MISSING_REASON, corpus_available, corpus_messages

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "classify"
needs_corpus = pytest.mark.skipif(not corpus_available(), reason=MISSING_REASON)

# The key the fixtures' tokens were made with (tests/fixtures/classify/*.eml carry tokens for tickets 42 and 7).
KEY = Key("ktest1", b"email2ticket test key, not secret")
KEYRING = Keyring((KEY,))
INSTANCE = "helpdesk-1"
TOKEN_42 = "<e2t.42.ktest1.0123456789ab.e25ae187bf37335c2bde1f91b16ef1a3@helpdesk.example.org>"
TOKEN_7 = "<e2t.7.ktest1.ba9876543210.87ee0c444c8653130a6fecbe074aec96@helpdesk.example.org>"


def _raw(headers: str = "", subject: str = "Printer on floor 3 jams", body: str = "It jams again.\n") -> bytes:
    head = f"From: Bob Smith <bob@example.net>\nTo: support@helpdesk.example.org\nSubject: {subject}\n{headers}"
    return f"{head.rstrip()}\nMessage-ID: <person.1@example.net>\n\n{body}".encode()


def _classify(
    raw: bytes,
    *,
    envelope: Envelope | None = None,
    settings: RuleSettings | None = None,
    keyring: Keyring | None = KEYRING,
    instance_id: str | None = INSTANCE,
    sender: str | None = "",
) -> Classification:
    message = parse_message(raw)
    if sender == "":  # the identified sender, as delivery/core.py passes it: lowercased From:
        sender = message.from_addresses[0] if message.from_addresses else None
    return classify(
        message,
        raw,
        envelope or Envelope(sender="bob@example.net"),
        settings or RuleSettings(),
        keyring=keyring,
        instance_id=instance_id,
        sender=sender,
    )


def _names(cls: Classification) -> list[str]:
    return [signal.name for signal in cls.automatic]


def test_person_written_mail_has_no_signal() -> None:
    cls = _classify(_raw())
    assert cls == Classification()
    assert not cls.is_automatic


def test_signal_describe() -> None:
    assert Signal("auto-submitted", "Auto-Submitted: auto-replied").describe() == (
        "auto-submitted (Auto-Submitted: auto-replied)"
    )


# ----------------------------------------------------------------------------------------------------
# Each automatic signal, present and absent


@pytest.mark.parametrize(
    ("header", "signal"),
    [
        ("Auto-Submitted: auto-replied", "auto-submitted"),
        ("Auto-Submitted: auto-generated (failure)", "auto-submitted"),
        ("Auto-Submitted: Auto-Replied; owner-email=it@example.net", "auto-submitted"),
        ("Auto-Submitted: auto-notified", "auto-submitted"),
        ("Precedence: bulk", "precedence"),
        ("Precedence: JUNK", "precedence"),
        ("Precedence: list", "precedence"),
        ("X-Autoreply: yes", "x-autoreply"),
        ("X-Autorespond: Vacation message of bob", "x-autorespond"),
        ("X-Auto-Response-Suppress: All", "x-auto-response-suppress"),
        ("X-Auto-Response-Suppress: DR, OOF, AutoReply", "x-auto-response-suppress"),
        ("X-Auto-Response-Suppress: autoreply", "x-auto-response-suppress"),
        ("List-Id: Printer users <printers.lists.example.net>", "list-id"),
        ("List-Unsubscribe: <mailto:leave@lists.example.net>", "list-unsubscribe"),
        ("X-Loop: lists.example.net", "x-loop"),
        (f"{LOOP_HEADER}: helpdesk-2", "foreign-loop-header"),
        ("Content-Type: multipart/report; report-type=disposition-notification; boundary=B", "multipart-report"),
    ],
)
def test_header_signal(header: str, signal: str) -> None:
    cls = _classify(_raw(header))
    assert _names(cls) == [signal]
    assert cls.is_automatic


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: no",
        "Auto-Submitted: No; comment",
        "Auto-Submitted: NO (a person wrote this)",
        "Auto-Submitted:",  # empty: asserts nothing
        "Precedence: first-class",
        "Precedence: normal",
        "Precedence: bulky",
        "X-Autoreply: no",
        "X-Autoreply: false",
        "X-Autorespond: off",
        "X-Auto-Response-Suppress: DR, NDR, RN, NRN",  # Outlook asking for no receipts: any person's mail
        "X-Auto-Response-Suppress: OOFish",
        "List-Idea: none",
        "X-Listname: printers",
        f"{LOOP_HEADER}: {INSTANCE}",  # ours: not an automatic signal but own mail (tested below)
    ],
)
def test_header_not_a_signal(header: str) -> None:
    assert _names(_classify(_raw(header))) == []


def test_every_signal_is_reported_in_order() -> None:
    headers = "Auto-Submitted: auto-replied\nPrecedence: bulk\nList-Id: <l.example.net>\nX-Autoreply: yes\n"
    cls = _classify(_raw(headers, subject="Automatic reply: Printer"), envelope=Envelope(sender=""))
    assert _names(cls) == [
        "auto-submitted",
        "precedence",
        "x-autoreply",
        "list-id",
        "null-sender",
        "out-of-office-subject",
    ]
    assert cls.automatic[0].detail == "Auto-Submitted: auto-replied"


def test_null_sender() -> None:
    assert _names(_classify(_raw(), envelope=Envelope(sender=""))) == ["null-sender"]
    assert _names(_classify(_raw(), envelope=Envelope(sender=None))) == []  # not given is not <>
    assert _names(_classify(_raw(), envelope=Envelope(sender="bob@example.net"))) == []


@pytest.mark.parametrize(
    "sender", ["MAILER-DAEMON@mx.example.net", "postmaster@example.net", "Mailer_Daemon@example.net"]
)
def test_mailer_daemon(sender: str) -> None:
    raw = _raw().replace(b"Bob Smith <bob@example.net>", sender.encode())
    cls = _classify(raw)
    assert _names(cls) == ["mailer-daemon"]
    assert cls.automatic[0].detail == f"sender {sender.lower()}"


@pytest.mark.parametrize(
    "sender", ["daemon@example.net", "mailer@example.net", "postmaster-team@example.net", "noreply@example.net"]
)
def test_not_mailer_daemon(sender: str) -> None:
    assert _names(_classify(_raw().replace(b"bob@example.net", sender.encode()))) == []


def test_mailer_daemon_from_the_envelope_sender() -> None:
    cls = _classify(_raw(), envelope=Envelope(sender="postmaster@example.net"))
    assert _names(cls) == ["mailer-daemon"]


# ----------------------------------------------------------------------------------------------------
# Out-of-office subjects


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: Printer on floor 3 jams",
        "Out of the office",
        "Out of Office AutoReply: Printer",
        "Automatic reply: [Ticket #42] Printer",
        "Auto reply: Printer",
        "Autoreply",
        "Auto-Reply: Printer",
        "Automated response: your message",
        "Auto: Printer on floor 3 jams",  # Sieve vacation
        "Away from the office",
        "On vacation",
        "On holiday!",
        "Vacation reply: Printer",
        "I am out of the office until 14 March",
        "I'm currently out of the office",
        "Jane Doe is out of the office.",  # Lotus Notes
        "Abwesenheitsnotiz: Drucker",
        "Automatische Antwort: [Ticket #42] Drucker",
        "Autom. Antwort: Drucker",
        "Ich bin nicht im Büro",
        "Max Muster ist außer Haus.",
        "Réponse automatique : Imprimante",
        "Absence du bureau",
        "Absent",
        "Absente : retour le 3 mars",
        "Respuesta automática: Impresora",
        "Fuera de la oficina",
        "Risposta automatica: Stampante",
        "Fuori sede",
        "Resposta automática: Impressora",
        "Ausência",
        "Automatisch antwoord: Printer",
        "Afwezig",
        "Autosvar: Skrivare",
        "Frånvaro",
        "Fraværende",
        "Automatisk svar: Printer",
        "Automatyczna odpowiedź: Drukarka",
        "Poza biurem",
        "Automatická odpověď: Tiskárna",
        "Автоматический ответ: Принтер",
        "自動応答: プリンター",
        "【自動返信】プリンター",
        "不在: プリンター",
        "自动回复: 打印机",
        "自動回覆：印表機",
        "  Automatic   reply:\tPrinter",  # folded, with runs of whitespace
    ],
)
def test_out_of_office_subject(subject: str) -> None:
    cls = _classify(_raw(subject=subject))
    assert _names(cls) == ["out-of-office-subject"], subject


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic backups fail",
        "Absent from the meeting list?",
        "Out of office not working in Outlook",  # an IT ticket about the feature
        "Auto reply not working",
        "Out of office settings",
        "Automatic replies are sent twice",
        "Re: Automatic reply: Printer",  # a person answering the robot
        "AW: Abwesenheitsnotiz: Drucker",
        "Abwesenheitsnotiz funktioniert nicht",
        "Auto - insurance claim 1234",
        "Autopilot license",
        "On vacation next week, who covers the printer?",
        "I am out of paper",
        "Fwd: Out of Office: Printer",
        "不在着信について",  # "about missed calls"
        "Printer on floor 3 jams",
        "",
    ],
)
def test_ordinary_subject(subject: str) -> None:
    assert _names(_classify(_raw(subject=subject))) == [], subject


def test_out_of_office_patterns_are_data() -> None:
    assert OUT_OF_OFFICE_SUBJECT.flags & re.IGNORECASE


# ----------------------------------------------------------------------------------------------------
# Allow-list


@pytest.mark.parametrize(
    ("entries", "sender", "expected"),
    [
        (("alerts@monitor.example",), "alerts@monitor.example", "alerts@monitor.example"),
        (("@monitor.example",), "alerts@monitor.example", "@monitor.example"),
        (("monitor.example",), "alerts@monitor.example", "monitor.example"),  # a bare domain counts as @domain
        (("@MONITOR.example",), "Alerts@Monitor.Example", "@MONITOR.example"),
        (("@monitor.example",), "alerts@eu.monitor.example", None),  # not subdomains
        (("@monitor.example",), "alerts@monitor.example.evil.net", None),
        (("alerts@monitor.example",), "other@monitor.example", None),
        (("ops@x.example", "@monitor.example"), "alerts@monitor.example", "@monitor.example"),
        (("@monitor.example",), None, None),
        ((), "alerts@monitor.example", None),
    ],
)
def test_allow_list(entries: tuple[str, ...], sender: str | None, expected: str | None) -> None:
    settings = replace(RuleSettings(), allowed_senders=entries)
    cls = _classify(_raw("Auto-Submitted: auto-generated\nPrecedence: bulk"), settings=settings, sender=sender)
    assert cls.allow_listed == expected
    assert _names(cls) == ["auto-submitted", "precedence"]  # recorded either way
    assert cls.is_automatic is (expected is None)


def test_allow_list_does_not_exempt_a_bounce() -> None:
    raw = (FIXTURES / "exim_mail_delivery_failed.eml").read_bytes()
    settings = replace(RuleSettings(), allowed_senders=("@mx.example.net",))
    cls = _classify(raw, settings=settings)
    assert cls.allow_listed == "@mx.example.net"
    assert cls.bounce is not None
    assert cls.is_automatic


# ----------------------------------------------------------------------------------------------------
# Spam headers


@pytest.mark.parametrize(
    ("entries", "header", "hit"),
    [
        (("x-spam-flag: yes",), "X-Spam-Flag: YES", True),  # the default setting
        (("x-spam-flag: yes",), "X-Spam-Flag:  yes ", True),
        (("x-spam-flag: yes",), "X-Spam-Flag: NO", False),
        (("x-spam-flag: yes",), "X-Spam-Flag: yes, probably", False),  # exact unless the entry ends in *
        (("x-spam-status: yes*",), "X-Spam-Status: Yes, score=7.1 required=5.0 tests=BAYES_99", True),
        (("x-spam-status: yes*",), "X-Spam-Status: No, score=-1.9 required=5.0", False),
        (("x-spam: *",), "X-Spam: anything", True),
        (("x-spam-verdict",), "X-Spam-Verdict: whatever", True),  # a bare name: present is enough
        (("x-spam-verdict",), "X-Spam-Flag: YES", False),
        ((), "X-Spam-Flag: YES", False),
        (("x-mailgun-sflag: yes", "x-spam-flag: yes"), "X-Spam-Flag: YES", True),
    ],
)
def test_spam_headers(entries: tuple[str, ...], header: str, hit: bool) -> None:
    cls = _classify(_raw(header), settings=replace(RuleSettings(), spam_headers=entries))
    assert (cls.spam is not None) is hit
    assert cls.automatic == ()  # spam is its own verdict, not an automatic-mail signal


def test_spam_signal_names_the_header_and_the_entry() -> None:
    cls = _classify(
        _raw("X-Spam-Status: Yes, score=7.1"), settings=replace(RuleSettings(), spam_headers=("x-spam-status: yes*",))
    )
    assert cls.spam == Signal(
        "spam-header", "X-Spam-Status: Yes, score=7.1 (matches 'x-spam-status: yes*' in spam_headers)"
    )


# ----------------------------------------------------------------------------------------------------
# Our own mail: loop header and Message-ID token


@pytest.mark.parametrize("value", [INSTANCE, "  HelpDesk-1 "])
def test_loop_header_of_this_instance_is_own_mail(value: str) -> None:
    cls = _classify(_raw(f"{LOOP_HEADER}: {value}"))
    assert cls.own is not None and cls.own.name == "loop-header"
    assert _names(cls) == []


def test_loop_header_of_another_instance_is_automatic_not_own() -> None:
    cls = _classify(_raw(f"{LOOP_HEADER}: helpdesk-2"))
    assert cls.own is None
    assert cls.automatic == (Signal("foreign-loop-header", f"{LOOP_HEADER}: helpdesk-2, another email2ticket's"),)


def test_loop_header_without_an_instance_id_is_foreign() -> None:
    cls = _classify(_raw(f"{LOOP_HEADER}: {INSTANCE}"), instance_id=None)
    assert cls.own is None and _names(cls) == ["foreign-loop-header"]


def test_own_message_id_with_a_valid_token() -> None:
    cls = _classify(_raw().replace(b"<person.1@example.net>", TOKEN_42.encode()))
    assert cls.own == Signal("own-message-id", f"Message-ID {TOKEN_42} carries a token of ours for #42")


def test_own_message_id_from_a_rotated_key() -> None:
    """A notification made with the previous key still comes back as ours after a rotation."""
    rotated = Keyring((Key("knew01", b"the new key after a rotation....."), KEY))
    cls = _classify(_raw().replace(b"<person.1@example.net>", TOKEN_42.encode()), keyring=rotated)
    assert cls.own is not None and cls.own.name == "own-message-id"


@pytest.mark.parametrize(
    "message_id",
    [
        TOKEN_42.replace("e25ae187", "e25ae188"),  # forged tag
        TOKEN_42.replace(".42.", ".43."),  # the tag of ticket 42 on ticket 43
        make_message_id(42, Keyring((Key("kother", b"somebody else's key............."),)), "helpdesk.example.org"),
        "<e2t.42.ktest1.0123456789ab@helpdesk.example.org>",  # no tag at all
    ],
    ids=["forged-tag", "moved-tag", "unknown-key", "no-tag"],
)
def test_own_message_id_needs_a_valid_token(message_id: str) -> None:
    cls = _classify(_raw().replace(b"<person.1@example.net>", message_id.encode()))
    assert cls.own is None


def test_no_keyring_no_tokens() -> None:
    raw = _raw(f"In-Reply-To: {TOKEN_42}").replace(b"<person.1@example.net>", TOKEN_7.encode())
    cls = _classify(raw, keyring=None)
    assert (cls.own, cls.token_tickets) == (None, ())


# ----------------------------------------------------------------------------------------------------
# Tokens in In-Reply-To and References


def _token(ticket: int, nonce: str) -> str:
    return make_message_id(ticket, KEYRING, "helpdesk.example.org", nonce=nonce)


def test_token_tickets_in_reply_to_first_then_references_newest_first() -> None:
    references = " ".join(
        [_token(1, "aaaaaaaaaaaa"), "<x@example.net>", _token(2, "bbbbbbbbbbbb"), _token(3, "cccccccccccc")]
    )
    raw = _raw(f"In-Reply-To: {_token(5, 'dddddddddddd')}\nReferences: {references}")
    assert _classify(raw).token_tickets == (5, 3, 2, 1)


def test_token_tickets_without_repeats_and_without_forgeries() -> None:
    forged = _token(9, "eeeeeeeeeeee").replace(".9.", ".8.")
    references = f"{_token(2, 'aaaaaaaaaaaa')} {forged} {_token(4, 'bbbbbbbbbbbb')}"
    raw = _raw(f"In-Reply-To: {_token(4, 'cccccccccccc')}\nReferences: {references}")
    assert _classify(raw).token_tickets == (4, 2)


# ----------------------------------------------------------------------------------------------------
# Fixtures: auto-replies and bounces of our notifications


def test_outlook_out_of_office_reply_to_our_notification() -> None:
    cls = _classify((FIXTURES / "autoreply_oof_outlook.eml").read_bytes())
    assert _names(cls) == ["auto-submitted", "x-auto-response-suppress", "out-of-office-subject"]
    assert cls.token_tickets == (42,)
    assert (cls.bounce, cls.own, cls.bounce_ticket) == (None, None, None)
    assert cls.is_automatic


def test_old_style_autoreply_recognised_by_its_subject_alone() -> None:
    cls = _classify((FIXTURES / "autoreply_subject_only.eml").read_bytes())
    assert _names(cls) == ["out-of-office-subject"]
    assert cls.token_tickets == (42,)


def test_qmail_bounce_of_our_notification_names_its_ticket() -> None:
    raw = (FIXTURES / "qmail_failure_notice.eml").read_bytes()
    cls = _classify(raw, envelope=Envelope(sender=""))
    assert cls.bounce is not None and cls.bounce.recipients == ("olga.petrova@example.net",)
    assert cls.bounce_ticket == 42
    assert _names(cls) == ["null-sender", "mailer-daemon"]
    # The returned notification's own loop header and token are in the body, not this message's headers.
    assert (cls.own, cls.token_tickets) == (None, ())


def test_exim_bounce_of_our_notification_names_its_ticket() -> None:
    cls = _classify((FIXTURES / "exim_mail_delivery_failed.eml").read_bytes())
    assert cls.bounce is not None and cls.bounce.kind == "hard"
    assert cls.bounce_ticket == 7
    assert _names(cls) == ["auto-submitted", "mailer-daemon"]


def test_bounce_ticket_needs_a_valid_token() -> None:
    raw = (FIXTURES / "exim_mail_delivery_failed.eml").read_bytes().replace(b"87ee0c44", b"87ee0c45")
    cls = _classify(raw)
    assert cls.bounce is not None and cls.bounce_ticket is None
    assert cls.bounce_tokens == ()  # nothing to look up: no notification of ours is named


def test_bounce_tokens_are_the_valid_tokens_a_bounce_names() -> None:
    """Whom they were sent to decides who may be blocked (rules/loop.py): only our own, genuine Message-IDs count."""
    cls = _classify((FIXTURES / "exim_mail_delivery_failed.eml").read_bytes())
    assert cls.bounce_ticket == 7 and len(cls.bounce_tokens) == 1 and cls.bounce_tokens[0].startswith("<e2t.7.")
    assert _classify(_raw(f"In-Reply-To: {_token(4, 'cccccccccccc')}")).bounce_tokens == ()  # not a bounce


def test_success_report_is_automatic_but_no_bounce() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.net\nSubject: Successful Mail Delivery Report\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\n\n"
        b"--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
        b"Final-Recipient: rfc822; bob@example.net\nAction: delivered\nStatus: 2.0.0\n\n--B--\n"
    )
    cls = _classify(raw)
    assert cls.bounce is None
    assert _names(cls) == ["mailer-daemon", "multipart-report"]
    assert cls.is_automatic


# ----------------------------------------------------------------------------------------------------
# The corpus


# Every complete corpus message carrying an automatic signal, a bounce or a spam header, with the identified
# sender (From:) and no envelope. Everything not listed is person-written (or spam without a spam header) and
# must stay free of signals.
CORPUS_SIGNALS: dict[str, tuple[str, ...]] = {
    # The bounces of tests/test_bounce.py: MAILER-DAEMON or postmaster senders, many with Auto-Submitted.
    "cpython_test_email/msg_05.txt": ("bounce",),  # From: foo; a multipart/report (delivery-status)
    "cpython_test_email/msg_16.txt": ("precedence", "list-id", "list-unsubscribe", "mailer-daemon", "bounce"),
    "cpython_test_email/msg_25.txt": ("auto-submitted", "mailer-daemon", "bounce"),
    "cpython_test_email/msg_43.txt": ("mailer-daemon", "bounce"),  # From: MAILER DAEMON <>
    "flanker/messages/bounce/broken-mime.eml": ("mailer-daemon", "bounce"),
    "flanker/messages/bounce/delayed-broken.eml": ("bounce",),  # no header at all
    "flanker/messages/bounce/delayed.eml": ("mailer-daemon", "bounce"),
    "flanker/messages/bounce/gmail-invalid-address.eml": ("mailer-daemon", "bounce"),
    "flanker/messages/bounce/gmail-no-dns.eml": ("mailer-daemon", "bounce"),
    "flanker/messages/bounce/mailbox-full.eml": ("auto-submitted", "mailer-daemon", "bounce"),
    "flanker/messages/bounce/no-mx.eml": ("mailer-daemon", "bounce"),
    "flanker/messages/bounce/office365.eml": ("auto-submitted", "mailer-daemon", "bounce"),
    "flanker/messages/bounce/zed.eml": ("auto-submitted", "mailer-daemon", "bounce"),
    "otobo/EmailParser/PostMaster-Test10.box": ("mailer-daemon", "bounce"),
    "otobo/PostMaster/PostMaster-Test10.box": ("mailer-daemon", "bounce"),
    "zammad/mail/mail018.box": ("mailer-daemon", "bounce"),
    "zammad/mail/mail033-undelivered-mail-returned-to-sender.box": ("auto-submitted", "mailer-daemon", "bounce"),
    "zammad/mail/mail052.box": ("mailer-daemon", "bounce"),
    "zammad/mail/mail053.box": ("auto-submitted", "mailer-daemon", "bounce"),  # From: MAILER-DAEMON, no address
    "zammad/mail/mail055.box": ("auto-submitted", "mailer-daemon", "bounce"),
    "zammad/mail/mail063.box": ("auto-submitted", "mailer-daemon", "bounce"),
    "zammad/mail/mail078.box": ("auto-submitted", "mailer-daemon", "bounce"),
    "zammad/mail/mail092.box": ("auto-submitted", "mailer-daemon", "bounce"),
    # Mailing-list traffic: people wrote these, but to a list (FreeBSD, Apache, Mailman lists), and a help desk
    # must not answer a list.
    "cpython_test_email/msg_32.txt": ("precedence", "x-loop"),  # X-Loop: FreeBSD.org
    "cpython_test_email/msg_33.txt": ("precedence", "x-loop"),
    "flanker/messages/apache-message-news-mime.eml": ("precedence",),
    "flanker/messages/from-encoding.eml": ("precedence",),
    "flanker/messages/message-external-body.eml": ("precedence",),
    "otobo/EmailParser/UTF8Filename.box": ("precedence", "list-id", "list-unsubscribe"),
    "otobo/PostMaster/UTF8Filename.box": ("precedence", "list-id", "list-unsubscribe"),
    # A newsletter ("Kontakte") with Precedence: bulk and List-Unsubscribe.
    "zammad/mail/mail043.box": ("precedence", "list-unsubscribe"),
    # ServiceNow incident notifications: Auto-Submitted: auto-generated, Precedence: bulk.
    "zammad/mail/mail089.box": ("auto-submitted", "precedence"),
    "zammad/mail/mail090.box": ("auto-submitted", "precedence"),
    # Spam complaints (ARF, AOL's with Precedence: list and X-Loop) and a read receipt: reports, not bounces.
    "flanker/messages/complaints/aol.eml": ("precedence", "x-loop", "multipart-report"),
    "flanker/messages/complaints/yahoo.eml": ("multipart-report",),
    "flanker/messages/disposition-notification.eml": ("multipart-report",),
    # From postmaster@example.com: an ordinary message, but the sender is a system address.
    "flanker/messages/long-links.eml": ("mailer-daemon",),
    # SpamAssassin's X-Spam-Flag: YES (the default spam_headers).
    "otobo/EmailParser/PostMaster-Test14.box": ("spam",),
    "otobo/EmailParser/PostMaster-Test18.box": ("spam",),
    "otobo/PostMaster/PostMaster-Test14.box": ("spam",),
    "otobo/PostMaster/PostMaster-Test18.box": ("spam",),
    "zammad/mail/mail046.box": ("spam",),
    "zammad/mail/mail069.box": ("spam",),
    "zammad/mail/mail071.box": ("spam",),
}


@needs_corpus
def test_corpus_signals_are_exactly_the_expected_ones() -> None:
    found = {}
    for path in corpus_messages():
        cls = _classify(path.read_bytes(), envelope=Envelope())
        names = (*_names(cls), *(("bounce",) if cls.bounce else ()), *(("spam",) if cls.spam else ()))
        assert (cls.own, cls.token_tickets, cls.bounce_ticket) == (None, (), None), path
        if names:
            found[str(path.relative_to(CORPUS_DIR))] = names
    assert found == CORPUS_SIGNALS
    assert len(corpus_messages()) > 250  # most of the corpus is person-written and carries nothing


@needs_corpus
def test_reply_corpora_carry_no_signal() -> None:
    """People's replies (bare bodies of the reply-parser libraries, talon's .eml): nothing automatic, not ours."""
    folders = ("crisp_email_reply_parser", "github_email_reply_parser", "mail_parser_reply", "talon")
    paths = [p for folder in folders for p in sorted((CORPUS_DIR / folder).rglob("*")) if p.is_file()]
    assert len(paths) > 150
    flagged = {}
    for path in paths:
        cls = _classify(path.read_bytes())
        if cls.automatic or cls.bounce or cls.own or cls.spam:
            flagged[path.name] = cls
    assert flagged == {}
