"""Recognise bounces (non-delivery reports) and read which recipients failed and which message bounced.

A bounce must never become a ticket, and never be answered: answering one is how two mail systems start a loop.
And a bounce of one of our notifications tells the help desk that a requester's address is dead, so the ticket it
was about (`original_message_ids` carry our Message-ID token) deserves a note.

Where the facts come from, most reliable first:

1. An RFC 3464 report: a ``message/delivery-status`` part (in a ``multipart/report``, or the whole message) with
   one block of fields per recipient. Read here, without any library: it is plain data.
2. Everything else MTAs send (qmail "failure notice", Exim "Mail delivery failed", Gmail and Exchange prose,
   sendmail transcripts): Exim's X-Failed-Recipients header, DSN fields pasted into a body that lost its MIME
   structure, then GNU Mailman's heuristic detectors (`flufl.bounce`). These run only on a message that looks
   like a bounce (a MAILER-DAEMON/postmaster sender, X-Failed-Recipients, a report, or a bounce subject), so a
   customer's mail is never read as one by a heuristic. The null envelope sender alone is not enough: RFC 3834
   auto-replies use it too, and flufl.bounce's looser detectors would find "recipients" in a vacation notice.

Decisions:

* hard/soft: ``Action: failed`` is hard even with a 4.x.x Status (flanker delayed.eml: "Cannot send message for
  5 days", Status 4.0.0): the MTA gave up, the message is lost; the class only says the cause looked temporary.
  ``delayed`` (or a bare 4.x.x) is soft. flufl.bounce agrees: its first set is temporary, its second permanent.
* A report whose recipients were all ``delivered``/``relayed``/``expanded`` is a success notice, not a bounce:
  `detect_bounce` returns None and signals/classify.py flags it as automatic by its multipart/report and sender.
* A message that is unmistakably a bounce but names no recipient (a MAILER-DAEMON "Undelivered Mail Returned to
  Sender" with an empty body, a delivery-status report without a readable status part) is kind "unknown".
* Original-Recipient (the address the mail was sent to) is preferred to Final-Recipient (where a forward took it).

`detect_bounce` never raises and does bounded work: hostile input gets at most MAX_SCAN_BYTES of each text
looked at, and flufl.bounce (whose regular expressions are quadratic in the line length) sees lines of at most
MAX_LINE bytes. flufl.bounce and the compat32 parser are imported only for a bounce candidate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Literal

from msgspec import Struct

from ..mail.envelope import Envelope
from ..mail.message import ParsedMessage, normalise_address
from .bounce_flufl import MAX_SCAN_BYTES, flufl_addresses, run_flufl
from .lazy_patterns import LazyPattern, literal_heads, may_start

if TYPE_CHECKING:
    pass

__all__ = ["SYSTEM_LOCAL_PARTS", "BounceReport", "detect_bounce", "system_sender"]

BounceKind = Literal["hard", "soft", "unknown"]

SYSTEM_LOCAL_PARTS = frozenset({"mailer-daemon", "mailer_daemon", "postmaster"})
DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
ORIGINAL_TYPES = ("message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers")
# multipart/report types that are not about delivery: read receipts (RFC 8098), spam complaints (RFC 5965).
OTHER_REPORT_TYPES = ("disposition-notification", "feedback-report")
MAX_RECIPIENTS = 100
MAX_MESSAGE_IDS = 10

# Subjects MTAs give bounces, matched at the start of the whitespace-collapsed subject, case-insensitively. Only a
# gate (from a system or the null sender they make an "unknown" bounce): "Fwd: Undeliverable: ..." is a customer's.
_BOUNCE_SUBJECT_PATTERNS = tuple(
    pattern
    for pattern in (
        r"undeliver(?:ed|able)\b",  # Postfix, Exchange "Undeliverable:", "Undeliverable Mail"
        r"returned mail\b",  # sendmail
        r"mail delivery failed\b",  # Exim
        r"failure notice\b",  # qmail
        r"delivery status notification\b",  # Gmail, Exchange: "(Failure)", "(Delay)"
        r"delivery (?:notification|failure|failed|has failed|problem|delayed|has been delayed)\b",
        r"non-?deliver(?:y|able)\b",
        r"mail system error\b",
        r"delayed mail\b",  # Postfix delay warning
        r"warning: could not send message\b",  # sendmail delay warning
        r"(?:message|mail) (?:could not be|not) delivered\b",
        r"(?:unzustellbar|nicht zustellbar)\b",  # Exchange de
        r"benachrich\w* zum übermittlungsstatus",  # Exchange de (zammad mail018: "Benachrichtung")
        r"(?:non remis|message non remis|échec de (?:la )?(?:remise|distribution))\b",  # fr
        r"(?:no se puede entregar|mensaje no entregado)\b",  # es
        r"non recapitabile\b",  # it
        r"onbestelbaar\b",  # nl
        r"(?:não entregue|não é possível entregar)\b",  # pt
        r"(?:kan ikke leveres|kan inte levereras|olevererbart)\b",  # da, no, sv
        r"(?:niedostarczalne|nie można dostarczyć)\b",  # pl
        r"(?:nedoručitelné|nelze doručit)\b",  # cs
        r"(?:недоставляем|не удается доставить|не доставлено)",  # ru
        r"(?:配信不能|配信エラー|无法投递|退信|無法傳遞)",  # ja, zh
    )
)
# One pattern: this gate runs on every message, and 23 compiled patterns cost every delivery 1 ms to build. It is
# compiled only for a subject that starts like one of them (signals/lazy_patterns.py); the others below only for
# bounce candidates.
BOUNCE_SUBJECT = LazyPattern(rf"^(?:{'|'.join(_BOUNCE_SUBJECT_PATTERNS)})", re.IGNORECASE)
_BOUNCE_SUBJECT_HEADS = literal_heads(_BOUNCE_SUBJECT_PATTERNS)

_STATUS = LazyPattern(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
# An enhanced status code in prose only counts after its SMTP reply code ("550 5.1.1", "550-5.1.1"): "Exim 4.94.2"
# is a version number.
_SMTP_STATUS = LazyPattern(r"\b([245])\d\d[ -]([245]\.\d{1,3}\.\d{1,3})\b")
_QMAIL_STATUS = LazyPattern(r"\(#([245]\.\d{1,3}\.\d{1,3})\)")
_BLANK_LINE = LazyPattern(r"\n[ \t]*\n")
_FIELD = LazyPattern(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_MESSAGE_ID_FIELD = LazyPattern(
    r"^[ \t>]*(?:x-)?(?:original-)?message-id[ \t]*:[ \t]*(?:\n[ \t]+)?<?([^<>\s@]{1,250}@[^<>\s]{1,250})", re.I | re.M
)
_LIST_SEPARATOR = LazyPattern(r"[\s,;]+")
_REPORT_TYPE = LazyPattern(r"report-type\s*=\s*\"?([A-Za-z0-9-]+)", re.I)
_FROM_DAEMON = LazyPattern(r"\bmailer[-_ ]?daemon\b", re.I)


class BounceReport(Struct, frozen=True):
    """What a bounce says: how final the failure is, for whom, and which message of ours it returns."""

    kind: BounceKind
    recipients: tuple[str, ...]  # failed recipients, lowercased addr-specs
    original_message_ids: tuple[str, ...]  # Message-IDs (with <>) of the message that bounced
    detected_by: str  # words for the admin: "RFC 3464 delivery-status report", "flufl.bounce (Exim)", ...
    status: str | None = None  # the first enhanced status code, e.g. "5.1.1"

    def describe(self) -> str:
        shown = ", ".join(self.recipients[:5]) or "unknown recipients"
        more = f" and {len(self.recipients) - 5} more" if len(self.recipients) > 5 else ""
        status = f", status {self.status}" if self.status else ""
        return f"{self.kind} bounce for {shown}{more}{status}, detected by {self.detected_by}"


class _Recipient(Struct, frozen=True):
    """One per-recipient block of a delivery-status report."""

    address: str
    severity: Literal["hard", "soft", "success", "unknown"]
    status: str | None


class _Evidence(Struct, frozen=True):
    """Why a message might be a bounce; heuristics run only when one of these holds."""

    report: bool  # a delivery-status report (multipart/report or a bare message/delivery-status)
    system_sender: bool  # MAILER-DAEMON/postmaster
    null_sender: bool  # the null envelope sender <>
    subject: bool  # a subject BOUNCE_SUBJECT matches
    failed_header: bool  # X-Failed-Recipients (Exim, Gmail)

    @property
    def candidate(self) -> bool:
        return self.report or self.system_sender or self.subject or self.failed_header

    @property
    def unmistakable(self) -> bool:
        """A bounce even when no recipient can be read from it."""
        return self.report or ((self.system_sender or self.null_sender) and self.subject)


# ----------------------------------------------------------------------------------------------------
# Public functions


def detect_bounce(message: ParsedMessage, raw: bytes, envelope: Envelope, sender: str | None) -> BounceReport | None:
    """The bounce report `message` is, or None (not a bounce, or a success notice). Never raises."""
    try:
        return _detect(message, raw, envelope, sender)
    except Exception:  # hostile input beat a guard below: not recognisable as a bounce, so treat it as none
        return None


def system_sender(message: ParsedMessage, envelope: Envelope, sender: str | None) -> str | None:
    """The MAILER-DAEMON/postmaster address among sender, envelope sender and From:, or None.

    "From: MAILER-DAEMON (Mail Delivery System)" (zammad mail053) and "From: MAILER DAEMON <>" (CPython msg_43)
    carry no address at all; the From: text itself is returned for them.
    """
    for address in (sender, envelope.sender, *message.from_addresses):
        if address and _local_part(address) in SYSTEM_LOCAL_PARTS:
            return address
    if not message.from_addresses:
        return next((value.strip() for value in message.header_all("from") if _FROM_DAEMON.search(value)), None)
    return None


def _local_part(address: str) -> str:
    return (address.rpartition("@")[0] if "@" in address else address).strip().lower()


# ----------------------------------------------------------------------------------------------------
# The decision


def _detect(message: ParsedMessage, raw: bytes, envelope: Envelope, sender: str | None) -> BounceReport | None:
    content_type = (message.header("content-type") or "").strip().lower()
    if content_type.startswith("multipart/report") and _report_type(content_type) in OTHER_REPORT_TYPES:
        return None  # a read receipt or a spam complaint: automatic, but no delivery failed
    dsn_texts = [_text(a.data) for a in message.attachments if a.content_type in DSN_TYPES]
    evidence = _Evidence(
        report=_is_delivery_report(content_type, bool(dsn_texts)),
        system_sender=system_sender(message, envelope, sender) is not None,
        null_sender=envelope.is_null_sender,
        subject=_bounce_subject(message.subject),
        failed_header=bool(message.header_all("x-failed-recipients")),
    )
    if not evidence.candidate:
        # A customer forwarding a bounce "inline" may carry its delivery-status part along (otobo
        # FilenameWithCRLF.box has one in a multipart/mixed from a person): that mail is theirs, not a bounce.
        return None
    originals = _original_message_ids(message, dsn_texts)
    recipients = _dsn_recipients(dsn_texts)
    if recipients:
        return _from_dsn(recipients, originals, "RFC 3464 delivery-status report")
    for heuristic in _HEURISTICS:
        report = heuristic(message, raw, originals)
        if report is not None:
            return report
    if evidence.unmistakable:
        return BounceReport("unknown", (), originals, _unknown_why(evidence), _prose_status(message.text))
    return None


def _unknown_why(evidence: _Evidence) -> str:
    if evidence.report:
        return "delivery-status report without readable recipients"
    return f"bounce subject from {'a system sender' if evidence.system_sender else 'the null envelope sender'}"


def _from_dsn(recipients: tuple[_Recipient, ...], originals: tuple[str, ...], detected_by: str) -> BounceReport | None:
    failed = [r for r in recipients if r.severity != "success"]
    if not failed:
        return None  # every recipient delivered, relayed or expanded: a success notice
    severities = {r.severity for r in failed}
    kind: BounceKind = "hard" if "hard" in severities else "soft" if "soft" in severities else "unknown"
    status = next((r.status for r in failed if r.status), None)
    addresses = tuple(dict.fromkeys(r.address for r in failed))
    return BounceReport(kind, addresses, originals, detected_by, status)


def _failed_recipients_header(message: ParsedMessage, raw: bytes, originals: tuple[str, ...]) -> BounceReport | None:
    """Exim (and Gmail) name permanently failed recipients in X-Failed-Recipients; delay warnings carry none."""
    tokens = (t for v in message.header_all("x-failed-recipients") for t in _LIST_SEPARATOR.split(v[:MAX_SCAN_BYTES]))
    found = (normalise_address(token) for token in tokens if "@" in token)
    addresses = tuple(dict.fromkeys(a for a in found if a))[:MAX_RECIPIENTS]
    if not addresses:
        return None
    return BounceReport("hard", addresses, originals, "X-Failed-Recipients header", _prose_status(message.text))


def _fields_in_text(message: ParsedMessage, raw: bytes, originals: tuple[str, ...]) -> BounceReport | None:
    """DSN fields in the body: a report whose MIME structure broke (CPython msg_25.txt lost its boundary)."""
    recipients = _dsn_recipients([message.text[:MAX_SCAN_BYTES]])
    return _from_dsn(recipients, originals, "delivery-status fields in the message text") if recipients else None


def _flufl_bounce(message: ParsedMessage, raw: bytes, originals: tuple[str, ...]) -> BounceReport | None:
    found = run_flufl(raw)
    if found is None:
        return None
    name, temporary, permanent = found
    addresses = tuple(dict.fromkeys(flufl_addresses(permanent | temporary)))[:MAX_RECIPIENTS]
    kind: BounceKind = "hard" if permanent else "soft"
    return BounceReport(kind, addresses, originals, f"flufl.bounce ({name})", _prose_status(message.text))


_Heuristic = Callable[[ParsedMessage, bytes, tuple[str, ...]], BounceReport | None]
# The non-standard forms, most reliable first.
_HEURISTICS: tuple[_Heuristic, ...] = (_failed_recipients_header, _fields_in_text, _flufl_bounce)


# ----------------------------------------------------------------------------------------------------
# Reading delivery-status fields


def _dsn_recipients(texts: Iterable[str]) -> tuple[_Recipient, ...]:
    found = (_recipient(fields) for text in texts for fields in _blocks(text))
    return tuple(r for r in found if r is not None)[:MAX_RECIPIENTS]


def _blocks(text: str) -> Iterator[dict[str, str]]:
    """The field blocks of a delivery-status text (separated by blank lines), names lowercased, first one wins."""
    for block in _BLANK_LINE.split(text.replace("\r\n", "\n")[:MAX_SCAN_BYTES]):
        fields: dict[str, str] = {}
        name = None
        for line in block.split("\n"):
            if line[:1] in (" ", "\t") and name is not None:
                fields[name] = f"{fields[name]} {line.strip()}"  # a continuation line
                continue
            match = _FIELD.match(line)
            name = match.group(1).lower() if match else None
            if match and name is not None and name not in fields:
                fields[name] = match.group(2).strip()
            elif match:
                name = None  # a repeated field: keep the first, ignore its continuation
        yield fields


def _recipient(fields: dict[str, str]) -> _Recipient | None:
    address = _dsn_address(fields.get("original-recipient")) or _dsn_address(fields.get("final-recipient"))
    if address is None:
        return None
    status_match = _STATUS.search(fields.get("status", ""))
    status = status_match.group(1) if status_match else _prose_status(fields.get("diagnostic-code", ""))
    return _Recipient(address, _severity(fields.get("action", ""), status), status)


def _dsn_address(value: str | None) -> str | None:
    """'rfc822; user@example.com' (or a bare '<user@example.com>', otobo FilenameWithCRLF.box) to an addr-spec."""
    if not value:
        return None
    address_type, _, address = value.rpartition(";")
    if address_type and address_type.strip().lower() not in ("rfc822", "utf-8"):
        return None  # an X.400 or other non-Internet address
    return normalise_address(address.strip())


def _severity(action: str, status: str | None) -> Literal["hard", "soft", "success", "unknown"]:
    word = action.strip().lower()
    if word.startswith(("failed", "error")):  # opensmtpd writes "error"
        return "hard"
    if word.startswith("delayed"):
        return "soft"
    if word.startswith(("delivered", "relayed", "expanded")):
        return "success"
    if status and status[0] in "245":
        return "hard" if status[0] == "5" else "soft" if status[0] == "4" else "success"
    return "unknown"


# ----------------------------------------------------------------------------------------------------
# The bounced message


def _original_message_ids(message: ParsedMessage, dsn_texts: list[str]) -> tuple[str, ...]:
    """Message-IDs of the returned message, from the most to the least certain place that has any.

    The attached message's header section; the report's X-Original-Message-ID; the whole attached message (otobo
    PostMaster-Test10.box lost the indentation of a folded header, so its header section ends early); and the
    body text, where Gmail and qmail quote the original headers.
    """
    originals = [_text(a.data).replace("\r\n", "\n") for a in message.attachments if a.content_type in ORIGINAL_TYPES]
    places = ([_header_section(text) for text in originals] + dsn_texts, originals, [message.text[:MAX_SCAN_BYTES]])
    for texts in places:
        found = [f"<{m}>" for text in texts for m in _MESSAGE_ID_FIELD.findall(text.replace("\r\n", "\n"))]
        if found:
            return tuple(dict.fromkeys(found))[:MAX_MESSAGE_IDS]
    return ()


def _header_section(text: str) -> str:
    return _BLANK_LINE.split(text, maxsplit=1)[0]


def _text(data: bytes) -> str:
    return data[:MAX_SCAN_BYTES].decode("utf-8", errors="replace")


def _prose_status(text: str) -> str | None:
    """The first enhanced status code after its SMTP reply code ("550 5.1.1"), or in qmail's "(#5.1.1)"."""
    match = _SMTP_STATUS.search(text[:MAX_SCAN_BYTES])
    if match and match.group(1) == match.group(2)[0]:
        return match.group(2)
    qmail = _QMAIL_STATUS.search(text[:MAX_SCAN_BYTES])
    return qmail.group(1) if qmail else None


def _bounce_subject(subject: str) -> bool:
    collapsed = " ".join(subject[:1000].split())
    return may_start(collapsed, _BOUNCE_SUBJECT_HEADS) and BOUNCE_SUBJECT.match(collapsed) is not None


def _is_delivery_report(content_type: str, has_status_part: bool) -> bool:
    """multipart/report of a delivery-status (msg_16.txt names no report-type but has the part), or the bare part."""
    if content_type.startswith(DSN_TYPES):
        return True  # flanker delayed-broken.eml: the whole message is the message/delivery-status part
    if not content_type.startswith("multipart/report"):
        return False
    report_type = _report_type(content_type)
    return report_type in ("delivery-status", "global-delivery-status") or (not report_type and has_status_part)


def _report_type(content_type: str) -> str:
    match = _REPORT_TYPE.search(content_type)
    return match.group(1).lower() if match else ""
