"""Bounce detection (signals/bounce.py): every real bounce in the shared corpus, the MTA forms, hostile input.

The catalogue of the corpus's bounces, what each is and what must be read from it, is support/bounces.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from email2ticket.mail.envelope import Envelope
from email2ticket.mail.message import ParsedMessage, parse_message
from email2ticket.signals.bounce import BounceReport, detect_bounce, system_sender
from support.bounces import CORPUS_BOUNCES, CORPUS_NOT_BOUNCES
from support.corpus import CORPUS_DIR, MISSING_REASON, corpus_available, corpus_messages

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "classify"
needs_corpus = pytest.mark.skipif(not corpus_available(), reason=MISSING_REASON)


def _detect(raw: bytes, envelope: Envelope | None = None, sender: str | None = None) -> BounceReport | None:
    message = parse_message(raw)
    return detect_bounce(message, raw, envelope or Envelope(), sender or _first_from(message))


def _first_from(message: ParsedMessage) -> str | None:
    return message.from_addresses[0] if message.from_addresses else None


# ----------------------------------------------------------------------------------------------------
# The corpus


@needs_corpus
@pytest.mark.parametrize("path", sorted(CORPUS_BOUNCES))
def test_corpus_bounce(path: str) -> None:
    kind, recipients, status, originals, detected_by = CORPUS_BOUNCES[path]
    report = _detect((CORPUS_DIR / path).read_bytes())
    assert report is not None, f"{path} is a bounce"
    assert (report.kind, report.recipients, report.status) == (kind, recipients, status)
    assert report.original_message_ids == originals
    assert report.detected_by == detected_by


@needs_corpus
def test_every_flanker_bounce_sample_is_in_the_catalogue() -> None:
    samples = {str(p.relative_to(CORPUS_DIR)) for p in (CORPUS_DIR / "flanker/messages/bounce").glob("*.eml")}
    assert len(samples) == 9
    assert samples <= set(CORPUS_BOUNCES)


@needs_corpus
def test_zammad_bounces_match_its_own_expectations() -> None:
    """Every Zammad sample whose .yml expects a delivery report (or a MAILER-DAEMON sender) is in the catalogue."""
    expected = set()
    for yml in (CORPUS_DIR / "zammad/mail").glob("*.yml"):
        text = yml.read_text(encoding="utf-8", errors="replace")
        if "message/delivery-status" in text or "from_email: MAILER-DAEMON" in text:
            expected.add(str(yml.with_suffix(".box").relative_to(CORPUS_DIR)))
    zammad = {path for path in CORPUS_BOUNCES if path.startswith("zammad/")}
    assert expected == zammad
    assert len(zammad) == 8


@needs_corpus
def test_no_other_corpus_message_is_a_bounce() -> None:
    found = {}
    for path in corpus_messages():
        name = str(path.relative_to(CORPUS_DIR))
        if name in CORPUS_BOUNCES:
            continue
        report = _detect(path.read_bytes())
        if report is not None:
            found[name] = report.describe()
    assert found == {}
    checked = {str(path.relative_to(CORPUS_DIR)) for path in corpus_messages()}
    assert checked >= CORPUS_NOT_BOUNCES  # the named non-bounces were among those checked


@needs_corpus
def test_reply_corpora_are_not_bounces() -> None:
    """People's replies (bare bodies, talon's .eml) never read as bounces, even as if sent by MAILER-DAEMON.

    That makes each of them a candidate, so flufl.bounce's heuristics run on all of them: its LLNL detector
    would take talon comcast.eml's quoted "To: xxx@gmail.com, xxx@hotmail.com, ..." for a failed recipient.
    """
    folders = ("crisp_email_reply_parser", "github_email_reply_parser", "mail_parser_reply", "talon")
    paths = [p for folder in folders for p in sorted((CORPUS_DIR / folder).rglob("*")) if p.is_file()]
    assert len(paths) > 150
    envelope = Envelope(sender="")
    bounces = [p.name for p in paths if _detect(p.read_bytes(), envelope, "mailer-daemon@example.net") is not None]
    assert bounces == []


# ----------------------------------------------------------------------------------------------------
# MTA forms outside the corpus (tests/fixtures/classify)


def test_qmail_failure_notice_through_flufl_bounce() -> None:
    report = _detect((FIXTURES / "qmail_failure_notice.eml").read_bytes(), Envelope(sender=""))
    assert report == BounceReport(
        kind="hard",
        recipients=("olga.petrova@example.net",),
        original_message_ids=("<e2t.42.ktest1.0123456789ab.e25ae187bf37335c2bde1f91b16ef1a3@helpdesk.example.org>",),
        detected_by="flufl.bounce (Qmail)",
        status="5.1.1",  # qmail's "(#5.1.1)"
    )


def test_exim_mail_delivery_failed() -> None:
    report = _detect((FIXTURES / "exim_mail_delivery_failed.eml").read_bytes())
    assert report is not None
    assert (report.kind, report.recipients, report.status) == ("hard", ("j.doe@example.net",), "5.1.1")
    assert report.original_message_ids == (
        "<e2t.7.ktest1.ba9876543210.87ee0c444c8653130a6fecbe074aec96@helpdesk.example.org>",
    )
    assert report.detected_by == "X-Failed-Recipients header"


def test_autoreplies_are_not_bounces() -> None:
    for name in ("autoreply_oof_outlook.eml", "autoreply_subject_only.eml"):
        assert _detect((FIXTURES / name).read_bytes(), Envelope(sender="")) is None, name


# ----------------------------------------------------------------------------------------------------
# Reading delivery-status reports


def _dsn(*blocks: str, sender: str = "MAILER-DAEMON@mx.example.net", report_type: str = "delivery-status") -> bytes:
    status = "\n\n".join(("Reporting-MTA: dns; mx.example.net", *blocks))
    return (
        f"From: {sender}\nTo: support@helpdesk.example.org\nSubject: Delivery report\n"
        f'Content-Type: multipart/report; report-type={report_type}; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nSee the report.\n\n"
        f"--B\nContent-Type: message/delivery-status\n\n{status}\n\n"
        "--B\nContent-Type: text/rfc822-headers\n\nFrom: support@helpdesk.example.org\nMessage-ID: <orig@helpdesk>\n\n"
        "--B--\n"
    ).encode()


def test_failed_is_hard_and_lists_every_failed_recipient() -> None:
    report = _detect(
        _dsn(
            "Final-Recipient: rfc822; a@example.net\nAction: delayed\nStatus: 4.4.1",
            "Final-Recipient: rfc822; B@Example.NET\nAction: failed\nStatus: 5.1.1",
            "Final-Recipient: rfc822; c@example.net\nAction: delivered\nStatus: 2.0.0",
        )
    )
    assert report is not None
    assert (report.kind, report.recipients, report.status) == ("hard", ("a@example.net", "b@example.net"), "4.4.1")
    assert report.original_message_ids == ("<orig@helpdesk>",)


def test_delayed_only_is_soft() -> None:
    report = _detect(_dsn("Final-Recipient: rfc822;a@example.net\nAction: delayed\nStatus: 4.4.7"))
    assert report is not None and report.kind == "soft"


def test_status_class_decides_without_action() -> None:
    hard = _detect(_dsn("Final-Recipient: rfc822; a@example.net\nStatus: 5.2.1"))
    soft = _detect(_dsn("Final-Recipient: rfc822; a@example.net\nStatus: 4.2.1"))
    unknown = _detect(_dsn("Final-Recipient: rfc822; a@example.net"))
    assert [r.kind if r else None for r in (hard, soft, unknown)] == ["hard", "soft", "unknown"]


def test_status_from_the_diagnostic_code_when_no_status_field() -> None:
    report = _detect(
        _dsn("Final-Recipient: rfc822; a@example.net\nAction: failed\nDiagnostic-Code: smtp; 550 5.1.1 no")
    )
    assert report is not None and report.status == "5.1.1"


def test_success_report_is_not_a_bounce() -> None:
    """Delivered/relayed/expanded only: a success notice (automatic mail, flagged by classify.py, not a bounce)."""
    raw = _dsn(
        "Final-Recipient: rfc822; a@example.net\nAction: delivered\nStatus: 2.0.0",
        "Final-Recipient: rfc822; b@example.net\nAction: relayed\nStatus: 2.0.0",
        "Final-Recipient: rfc822; c@example.net\nAction: expanded (to a list)\nStatus: 2.0.0",
    )
    assert _detect(raw) is None


def test_original_recipient_preferred_and_non_internet_addresses_skipped() -> None:
    report = _detect(
        _dsn(
            "Original-Recipient: rfc822;customer@example.com\nFinal-Recipient: rfc822;customer.private@example.org\n"
            "Action: failed",
            "Final-Recipient: x400; /C=DE/ADMD=Example/\nAction: failed",
        )
    )
    assert report is not None and report.recipients == ("customer@example.com",)


def test_report_without_report_type_counts_when_it_has_the_status_part() -> None:
    raw = _dsn("Final-Recipient: rfc822; a@example.net\nAction: failed", sender="someone@example.net")
    raw = raw.replace(b"report-type=delivery-status; ", b"")
    report = _detect(raw)
    assert report is not None and report.recipients == ("a@example.net",)


def test_read_receipt_is_not_a_bounce_even_from_mailer_daemon() -> None:
    raw = _dsn("Final-Recipient: rfc822; a@example.net\nAction: failed", report_type="disposition-notification")
    assert _detect(raw, Envelope(sender="")) is None


def test_forwarded_bounce_from_a_customer_is_their_mail() -> None:
    """A customer forwards the bounce they got (as an attachment, or with its parts copied inline)."""
    raw = (
        b"From: Olga <olga@example.net>\nTo: support@helpdesk.example.org\n"
        b"Subject: Fwd: Undelivered Mail Returned to Sender\nContent-Type: multipart/mixed; boundary=B\n\n"
        b"--B\nContent-Type: text/plain\n\nMy mail to you bounced, see below. Please call me.\n\n"
        b"--B\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; support@helpdesk.example.org\n"
        b"Action: failed\nStatus: 5.1.1\n\n"
        b"--B\nContent-Type: message/rfc822\n\nFrom: olga@example.net\nMessage-ID: <x@example.net>\n\nHello\n\n--B--\n"
    )
    assert _detect(raw) is None


# ----------------------------------------------------------------------------------------------------
# Non-standard forms


def test_x_failed_recipients() -> None:
    raw = (
        b"From: Mail Delivery System <Mailer-Daemon@mx.example.net>\nSubject: Mail delivery failed\n"
        b"X-Failed-Recipients: a@example.net, B@example.net, not-an-address\n\n"
        b"SMTP error from remote mail server after RCPT TO:<a@example.net>:\n550-5.1.1 no such user\n"
    )
    report = _detect(raw)
    assert report is not None
    assert (report.kind, report.recipients, report.status) == ("hard", ("a@example.net", "b@example.net"), "5.1.1")


def test_version_numbers_are_not_status_codes() -> None:
    raw = b"From: MAILER-DAEMON@mx.example.net\nX-Failed-Recipients: a@example.net\n\nExim 4.94.2 gave up.\n"
    report = _detect(raw)
    assert report is not None and report.status is None


def test_bounce_subject_alone_from_a_person_is_not_a_bounce() -> None:
    raw = b"From: Bob <bob@example.net>\nSubject: Undeliverable: my last mail\n\nIt says undeliverable, why?\n"
    assert _detect(raw) is None


def test_bounce_subject_from_a_system_sender_without_recipients_is_unknown() -> None:
    raw = b"From: postmaster@example.net\nSubject: Non remis : Facture 1234\n\nLe message n'a pas pu etre remis.\n"
    report = _detect(raw)
    assert report is not None and (report.kind, report.recipients) == ("unknown", ())


def test_quoted_address_list_is_not_a_failed_recipient() -> None:
    """flufl.bounce's LLNL detector is left out: it reads any ", someone@example.org," line as a bounce."""
    raw = (
        b"From: postmaster@example.net\nSubject: Weekly mailbox report\n\n"
        b"Sent to: a@example.org, b@example.org, c@example.org\nAll mailboxes are fine.\n"
    )
    assert _detect(raw) is None


def test_null_sender_alone_is_not_a_bounce() -> None:
    """Auto-replies come from <> too; they are automatic mail (signals/classify.py), not bounces."""
    raw = b"From: erika@example.com\nSubject: Urlaub\n\nIch bin bis Montag im Urlaub.\n"
    assert _detect(raw, Envelope(sender="")) is None


def test_system_sender() -> None:
    message = parse_message(b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n\nx\n")
    assert system_sender(message, Envelope(), "mailer-daemon@mx.example.net") == "mailer-daemon@mx.example.net"
    assert system_sender(message, Envelope(), None) == "mailer-daemon@mx.example.net"  # from From:
    no_address = parse_message(b"From: MAILER-DAEMON (Mail Delivery System)\n\nx\n")
    assert system_sender(no_address, Envelope(), None) == "MAILER-DAEMON (Mail Delivery System)"
    person = parse_message(b"From: Daemon Fan <daemon.fan@example.net>\n\nx\n")
    assert system_sender(person, Envelope(sender="postmaster-team@example.net"), None) is None
    assert system_sender(person, Envelope(sender="mailer_daemon@example.net"), None) == "mailer_daemon@example.net"


def test_describe() -> None:
    report = BounceReport("hard", ("a@example.net",), (), "X-Failed-Recipients header", "5.1.1")
    assert report.describe() == "hard bounce for a@example.net, status 5.1.1, detected by X-Failed-Recipients header"
    many = BounceReport("soft", tuple(f"u{i}@example.net" for i in range(7)), (), "RFC 3464 delivery-status report")
    assert many.describe().startswith("soft bounce for u0@example.net, u1@example.net, u2@example.net, ")
    assert "u4@example.net and 2 more, detected by" in many.describe()


# ----------------------------------------------------------------------------------------------------
# Hostile input: never raises, bounded work


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe" * 50_000,
        b"From: MAILER-DAEMON@x\nContent-Type: multipart/report; report-type=delivery-status; boundary=\n\n--\n",
        b"From: MAILER-DAEMON@x\nContent-Type: message/delivery-status\n\nFinal-Recipient: ;;;;\nAction:\n",
        b"From: MAILER-DAEMON@x\nX-Failed-Recipients: @, @@, a@, @b, <>\n\n",
        b"From: MAILER-DAEMON@x\nSubject: failure notice\n\n"
        + b"".join(b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i) for i in range(3000)),
    ],
    ids=["empty", "garbage", "no-boundary", "empty-fields", "bad-addresses", "deep-nesting"],
)
def test_hostile_input_never_raises(raw: bytes) -> None:
    report = _detect(raw, Envelope(sender=""))
    assert report is None or report.kind in ("hard", "soft", "unknown")


def test_flufl_bounce_sees_bounded_lines() -> None:
    """flufl.bounce's patterns are quadratic in the line length; a 2 MB line would take hours unbounded."""
    raw = (
        b"From: MAILER-DAEMON@mx.example.net\nSubject: failure notice\n\nYour message to:\n" + b"a" * 2_000_000 + b"\n"
    )
    started = time.monotonic()
    report = _detect(raw, Envelope(sender=""))
    assert time.monotonic() - started < 10
    assert report is not None and report.kind == "unknown"


def test_flufl_bounce_sees_bounded_decoded_lines() -> None:
    import base64

    body = base64.encodebytes(b"Your message to:\n" + b"a" * 1_000_000 + b"\n")
    raw = b"From: MAILER-DAEMON@mx.example.net\nSubject: failure notice\nContent-Transfer-Encoding: base64\n\n" + body
    started = time.monotonic()
    _detect(raw, Envelope(sender=""))
    assert time.monotonic() - started < 10


def test_many_recipients_are_capped() -> None:
    blocks = [f"Final-Recipient: rfc822; u{i}@example.net\nAction: failed" for i in range(5000)]
    report = _detect(_dsn(*blocks))
    assert report is not None and len(report.recipients) == 100


def test_flufl_bounce_is_imported_only_for_candidates() -> None:
    """Start-up cost: a person's mail must not import flufl.bounce; a bounce candidate does."""
    code = (
        "import sys\n"
        "from email2ticket.signals.bounce import detect_bounce\n"
        "from email2ticket.mail.envelope import Envelope\n"
        "from email2ticket.mail.message import parse_message\n"
        "raw = b'From: bob@example.net\\nSubject: Printer jam\\n\\nHelp\\n'\n"
        "detect_bounce(parse_message(raw), raw, Envelope(sender='bob@example.net'), 'bob@example.net')\n"
        "print('flufl.bounce' in sys.modules)\n"
        "raw = b'From: MAILER-DAEMON@x.example\\nSubject: failure notice\\n\\nHi. This is the qmail-send\\n'\n"
        "detect_bounce(parse_message(raw), raw, Envelope(sender=''), None)\n"
        "print('flufl.bounce' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]
