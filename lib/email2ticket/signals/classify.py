"""Classify incoming mail for loop protection: written by a person or a robot, a bounce, our own mail, spam.

A help desk that answers mail will sooner or later answer an out-of-office robot, a bounce, a mailing list or
itself, and then the robot answers back. This module only names what a message carries, as data: each automatic
signal is a `Signal` with a stable short name (it appears in the decision's reasons) and words for the admin.
rules/loop.py decides what the signals mean. Pure functions; flufl.bounce is imported only for bounce candidates.

Decisions:

* A bounce is automatic whatever the allow-list says: `allowed_senders` lets a monitoring robot open tickets, but
  a bounce must never open one or be answered (signals/bounce.py says why).
* X-Email2ticket-Loop with another instance's id is not our mail but another email2ticket's notification: the
  automatic signal "foreign-loop-header" (answering it would start a ping-pong between two help desks). Without
  an instance id of our own, every loop header is foreign.
* An Auto-Submitted, X-Autoreply or X-Autorespond header with an empty value asserts nothing: no signal.
* Two more signals: "x-loop" (procmail, OTRS, list managers stamp their mail with X-Loop) and
  "multipart-report" (a read receipt, spam complaint or success notice: machine-made, though not a bounce).
* "mailer-daemon" looks at the sender, the envelope sender and every From: address (local part mailer-daemon,
  mailer_daemon or postmaster), and at a From: that is only the words "MAILER-DAEMON" with no address.
* An out-of-office subject counts only at the very start, and only with a colon or as the whole subject: "Out of
  office not working in Outlook" is a ticket, and "Re: Automatic reply: ..." is a person answering a robot.
* `allowed_senders` entries are addresses or "@domain" (the sender's domain exactly, not its subdomains); an entry
  without "@" is taken as a domain too.
* A `spam_headers` value ending in "*" matches by prefix ("x-spam-status: yes*" matches SpamAssassin's
  "Yes, score=7.1 ..."); otherwise the stripped value must equal it, case-insensitively.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

from msgspec import Struct

from ..config.rule_settings import RuleSettings
from ..mail.envelope import Envelope
from ..mail.message import ParsedMessage
from .bounce import BounceReport, detect_bounce, system_sender
from .lazy_patterns import LazyPattern, literal_heads, may_start
from .tokens import (
    LOOP_HEADER,
    Keyring,
    KeyringSource,
    may_be_token,
    resolve_keyring,
    ticket_from_message_id,
    tickets_from_message_ids,
)

__all__ = ["LOOP_HEADER", "OUT_OF_OFFICE_SUBJECT", "Classification", "Signal", "classify"]

PRECEDENCE_AUTOMATIC = frozenset({"bulk", "junk", "list", "auto_reply"})
SUPPRESS_AUTOMATIC = frozenset({"all", "oof", "autoreply"})  # X-Auto-Response-Suppress values (Exchange)
NEGATIVE_VALUES = frozenset({"no", "false", "0", "off"})
MAX_DETAIL = 100
_FIRST_TOKEN = re.compile(r"\s*([^\s;(]*)")  # "auto-replied" of "auto-replied; owner-email=..." or "... (comment)"

# Out-of-office and auto-reply subjects. A phrase matches at the start of the (whitespace-collapsed) subject, after
# an optional opening bracket, when a colon or closing bracket follows it or nothing but full stops does.
_PHRASES = (
    # en: Outlook "Automatic reply:", older Outlook "Out of Office AutoReply:", Zimbra, Gmail vacation subjects
    r"out of (?:the )?office(?: auto-?reply| reply| notice| notification| message)?",
    r"auto(?:matic|mated)?[- ]?(?:reply|response|responder|answer)",
    r"away from (?:the |my )?office",
    r"on (?:vacation|holiday|leave|annual leave)",
    r"(?:vacation|holiday|absence) (?:reply|response|notice|message|auto-?reply)",
    # de
    r"abwesenheitsnotiz|automatische abwesenheitsnotiz|automatische antwort|autom\. antwort|abwesend|abwesenheit",
    r"urlaubsabwesenheit|nicht im büro|außer haus",
    # fr, es, it, pt
    r"réponse automatique|absente?(?: du bureau)?|absence du bureau|message d'absence|notification d'absence",
    r"respuesta automática|fuera de (?:la )?oficina|ausente",
    r"risposta automatica|fuori sede|fuori ufficio|assente",
    r"resposta automática|ausência|fora do escritório",
    # nl, sv, no, da, fi
    r"automatisch antwoord|afwezig|niet aanwezig|afwezigheidsmelding",
    r"autosvar|automatiskt svar|automatisk svar|frånvaro|frånvarande|fraværende|fravær|ikke til stede",
    r"automaattinen vastaus|poissa toimistolta",
    # pl, cs, sk, hu, ro, tr, el
    r"automatyczna odpowiedź|poza biurem|nieobecność",
    r"automatická odpověď|automatická odpoveď|mimo kancelář|mimo kanceláriu|nepřítomnost",
    r"automatikus válasz|házon kívül|irodán kívül|răspuns automat|otomatik (?:yanıt|cevap)|ofis dışında",
    r"αυτόματη απάντηση|εκτός γραφείου",
    # ru, uk
    r"автоматический ответ|автоответ|нет на месте|вне офиса|в отпуске|автоматична відповідь|поза офісом",
    # ja, zh, ko, ar, he
    r"自動応答|自動返信|不在通知|不在のお知らせ|不在|外出中|自动回复|自动答复|自動回覆|自動回復|不在办公室",
    r"자동 회신|자동 응답|부재중|رد تلقائي|תגובה אוטומטית|מענה אוטומטי",
)
# Whole-subject forms: a sentence rather than a label.
_SENTENCES = (
    r"auto\s*:",  # Sieve vacation (Dovecot, Thunderbird filters): "Auto: <subject>"
    r"(?:i am|i'm|i will be|i'll be)(?: currently)? (?:out of|away from) (?:the |my )?office\b",
    r"ich bin (?:derzeit |zurzeit |momentan )?(?:nicht im büro|außer haus|abwesend)\b",
    r"je suis (?:actuellement )?absente?\b",
    r"estoy fuera de (?:la )?oficina\b",
)
# Lotus Notes: "Jane Doe is out of the office.", "Max Muster ist außer Haus." It ends the subject, so the gate
# below looks at the end: _NAME_IS_AWAY_ENDS are its ASCII endings (keep them in step).
_NAME_IS_AWAY = r"[^:]{1,80}? (?:is (?:currently )?out of (?:the )?office|ist (?:nicht im büro|außer haus))\.?$"
_NAME_IS_AWAY_ENDS = ("office", "haus")
_OPENERS = "[【("
# One pattern, not one per phrase: compiling ~30 case-insensitive patterns cost 8 ms of every delivery's
# start-up, the alternation costs about 1 ms; and it is compiled only for a subject that may match
# (_may_be_out_of_office, signals/lazy_patterns.py).
OUT_OF_OFFICE_SUBJECT = LazyPattern(
    rf"^(?:[\[【(]?\s*(?:{'|'.join(_PHRASES)})\s*(?:[:：\]】)]|[.!。]*$)|{'|'.join((*_SENTENCES, _NAME_IS_AWAY))})",
    re.I,
)
_PHRASE_HEADS = literal_heads(_PHRASES)
_SENTENCE_HEADS = literal_heads(_SENTENCES)


class Signal(Struct, frozen=True):
    """One thing a message carries that decides how it is treated: a short stable name and words for the admin."""

    name: str
    detail: str

    def describe(self) -> str:
        return f"{self.name} ({self.detail})"


class Classification(Struct, frozen=True):
    """Everything loop protection needs to know about a message, found before any rule runs."""

    automatic: tuple[Signal, ...] = ()  # every automatic-mail signal found; empty: a person wrote it
    allow_listed: str | None = None  # the allowed_senders entry the sender matched: automatic signals not acted on
    bounce: BounceReport | None = None
    own: Signal | None = None  # our own mail coming back: loop header, or own Message-ID with a valid token
    spam: Signal | None = None  # a trusted spam header (settings.spam_headers) matched
    token_tickets: tuple[int, ...] = ()  # tickets of valid tokens in In-Reply-To, then References newest first
    bounce_ticket: int | None = None  # ticket of a valid token among bounce.original_message_ids
    # A bounce: the Message-IDs of ours (valid tokens) it names, in its report, then its In-Reply-To/References.
    # Whom those notifications went to is the store's to say, and only that recipient may be blocked (rules/loop.py).
    bounce_tokens: tuple[str, ...] = ()

    @property
    def bounce_link(self) -> int | None:
        """The ticket whose notification a bounce answers: our token in its report, else in its own
        In-Reply-To/References (some MTAs thread their bounces)."""
        return self.bounce_ticket or next(iter(self.token_tickets), None)

    @property
    def is_automatic(self) -> bool:
        """A bounce always; other automatic signals unless the sender is allow-listed."""
        return self.bounce is not None or (bool(self.automatic) and self.allow_listed is None)


class _Mail(Struct, frozen=True):
    """What the signal checks look at."""

    message: ParsedMessage
    envelope: Envelope
    sender: str | None
    instance_id: str | None
    bounce: BounceReport | None


# ----------------------------------------------------------------------------------------------------
# Public function


def classify(
    message: ParsedMessage,
    raw: bytes,
    envelope: Envelope,
    settings: RuleSettings,
    *,
    keyring: KeyringSource,
    instance_id: str | None,
    sender: str | None,
) -> Classification:
    """Every signal `message` carries. `sender` is the identified sender (lowercased From:, else envelope).

    `keyring` may be a function that loads it: it is called only when a Message-ID looks like a token
    of ours, so most mail never reads the key file.
    """
    bounce = detect_bounce(message, raw, envelope, sender)
    mail = _Mail(message, envelope, sender, instance_id, bounce)
    found = (check(mail) for check in SIGNAL_CHECKS)
    originals = bounce.original_message_ids if bounce else ()
    candidates = (message.message_id or "", *message.in_reply_to, *message.references, *originals)
    keyring = resolve_keyring(keyring) if any(may_be_token(mid) for mid in candidates) else None
    return Classification(
        automatic=tuple(signal for signal in found if signal is not None),
        allow_listed=_allow_listed(sender, settings.allowed_senders),
        bounce=bounce,
        own=_loop_header_ours(message, instance_id) or _own_message_id(message, keyring),
        spam=_spam(message, settings.spam_headers),
        token_tickets=tickets_from_message_ids((*message.in_reply_to, *reversed(message.references)), keyring),
        bounce_ticket=next(iter(tickets_from_message_ids(originals, keyring)), None),
        bounce_tokens=_our_message_ids((*originals, *message.in_reply_to, *message.references), keyring)
        if bounce is not None
        else (),
    )


MAX_BOUNCE_TOKENS = 16  # a report names one notification; a hostile one naming thousands costs a bounded lookup


def _our_message_ids(message_ids: tuple[str, ...], keyring: Keyring | None) -> tuple[str, ...]:
    """The Message-IDs among `message_ids` that are valid tokens of ours, without repeats, at most MAX_BOUNCE_TOKENS."""
    ours = (mid for mid in dict.fromkeys(message_ids) if ticket_from_message_id(mid, keyring) is not None)
    return tuple(itertools.islice(ours, MAX_BOUNCE_TOKENS))


# ----------------------------------------------------------------------------------------------------
# Automatic-mail signals, one small check each, in the order they are reported


def _auto_submitted(mail: _Mail) -> Signal | None:
    """RFC 3834: any value but "no" ("auto-generated (failure)", "auto-replied; owner-email=...")."""
    for value in mail.message.header_all("auto-submitted"):
        token = _FIRST_TOKEN.match(value)
        if token and token.group(1) and token.group(1).lower() != "no":
            return Signal("auto-submitted", f"Auto-Submitted: {_short(value)}")
    return None


def _precedence(mail: _Mail) -> Signal | None:
    for value in mail.message.header_all("precedence"):
        if value.strip().lower() in PRECEDENCE_AUTOMATIC:
            return Signal("precedence", f"Precedence: {_short(value)}")
    return None


def _x_autoreply(mail: _Mail) -> Signal | None:
    return _asserted(mail, "X-Autoreply", "x-autoreply")


def _x_autorespond(mail: _Mail) -> Signal | None:
    return _asserted(mail, "X-Autorespond", "x-autorespond")


def _x_auto_response_suppress(mail: _Mail) -> Signal | None:
    """Exchange marks its own automatic mail "All", "OOF" or "AutoReply"; "DR, NDR, RN" alone is any person's."""
    for value in mail.message.header_all("x-auto-response-suppress"):
        if {item.strip().lower() for item in value.split(",")} & SUPPRESS_AUTOMATIC:
            return Signal("x-auto-response-suppress", f"X-Auto-Response-Suppress: {_short(value)}")
    return None


def _list_id(mail: _Mail) -> Signal | None:
    return _present(mail, "List-Id", "list-id")


def _list_unsubscribe(mail: _Mail) -> Signal | None:
    return _present(mail, "List-Unsubscribe", "list-unsubscribe")


def _x_loop(mail: _Mail) -> Signal | None:
    """procmail, OTRS and many autoresponders stamp what they send with X-Loop; no person's mail client does."""
    return _present(mail, "X-Loop", "x-loop")


def _null_sender(mail: _Mail) -> Signal | None:
    return Signal("null-sender", "envelope sender <>") if mail.envelope.is_null_sender else None


def _mailer_daemon(mail: _Mail) -> Signal | None:
    address = system_sender(mail.message, mail.envelope, mail.sender)
    return Signal("mailer-daemon", f"sender {_short(address)}") if address is not None else None


def _out_of_office_subject(mail: _Mail) -> Signal | None:
    subject = " ".join(mail.message.subject[:1000].split())
    if _may_be_out_of_office(subject) and OUT_OF_OFFICE_SUBJECT.match(subject):
        return Signal("out-of-office-subject", f"Subject: {_short(subject)}")
    return None


def _may_be_out_of_office(subject: str) -> bool:
    """False only when OUT_OF_OFFICE_SUBJECT cannot match: no phrase (after an opening bracket and spaces) or
    sentence starts the subject, and it does not end as _NAME_IS_AWAY must."""
    opened = subject[1:].lstrip() if subject[:1] in _OPENERS else ""
    if may_start(subject.lstrip(), _PHRASE_HEADS) or may_start(opened, _PHRASE_HEADS):
        return True
    if may_start(subject, _SENTENCE_HEADS):
        return True
    end = (subject[:-1] if subject.endswith(".") else subject)[-6:]
    return not end.isascii() or end.lower().endswith(_NAME_IS_AWAY_ENDS)


def _foreign_loop_header(mail: _Mail) -> Signal | None:
    ours = (mail.instance_id or "").strip().lower()
    for value in mail.message.header_all(LOOP_HEADER):
        if not ours or value.strip().lower() != ours:
            return Signal("foreign-loop-header", f"{LOOP_HEADER}: {_short(value)}, another email2ticket's")
    return None


def _report(mail: _Mail) -> Signal | None:
    """A read receipt, spam complaint or successful-delivery notice: machine-made, though not a bounce."""
    content_type = (mail.message.header("content-type") or "").strip()
    if mail.bounce is None and content_type.lower().startswith("multipart/report"):
        return Signal("multipart-report", f"Content-Type: {_short(content_type)}")
    return None


SIGNAL_CHECKS: tuple[Callable[[_Mail], Signal | None], ...] = (
    _auto_submitted,
    _precedence,
    _x_autoreply,
    _x_autorespond,
    _x_auto_response_suppress,
    _list_id,
    _list_unsubscribe,
    _x_loop,
    _null_sender,
    _mailer_daemon,
    _out_of_office_subject,
    _foreign_loop_header,
    _report,
)


def _asserted(mail: _Mail, header: str, name: str) -> Signal | None:
    """A header whose presence says "automatic" unless its value denies it ("no", "false") or is empty."""
    for value in mail.message.header_all(header):
        if value.strip() and value.strip().lower() not in NEGATIVE_VALUES:
            return Signal(name, f"{header}: {_short(value)}")
    return None


def _present(mail: _Mail, header: str, name: str) -> Signal | None:
    values = mail.message.header_all(header)
    return Signal(name, f"{header}: {_short(values[0])}") if values else None


# ----------------------------------------------------------------------------------------------------
# Own mail, spam, allow-list


def _loop_header_ours(message: ParsedMessage, instance_id: str | None) -> Signal | None:
    ours = (instance_id or "").strip().lower()
    for value in message.header_all(LOOP_HEADER):
        if ours and value.strip().lower() == ours:
            return Signal("loop-header", f"{LOOP_HEADER}: {_short(value)}, this instance's id")
    return None


def _own_message_id(message: ParsedMessage, keyring: Keyring | None) -> Signal | None:
    """Our notification itself, come back (a forward to the help desk, a mailbox that loops): its token is valid."""
    ticket = ticket_from_message_id(message.message_id or "", keyring)
    if ticket is None:
        return None
    return Signal("own-message-id", f"Message-ID {_short(message.message_id)} carries a token of ours for #{ticket}")


def _spam(message: ParsedMessage, entries: tuple[str, ...]) -> Signal | None:
    """The first header that an entry of spam_headers ("name: value", "name: prefix*" or "name") matches."""
    for entry in entries:
        name, colon, wanted = (part.strip().lower() for part in entry.partition(":"))
        for key, value in message.headers:
            if key.lower() == name and (not colon or not wanted or _value_matches(value.strip().lower(), wanted)):
                return Signal("spam-header", f"{key}: {_short(value)} (matches {entry!r} in spam_headers)")
    return None


def _value_matches(value: str, wanted: str) -> bool:
    return value.startswith(wanted[:-1].rstrip()) if wanted.endswith("*") else value == wanted


def _allow_listed(sender: str | None, entries: tuple[str, ...]) -> str | None:
    if not sender or "@" not in sender:
        return None
    address = sender.strip().lower()
    domain = address.rpartition("@")[2]
    for entry in entries:
        wanted = entry.strip().lower()
        if wanted == address or (wanted.lstrip("@") == domain and (wanted.startswith("@") or "@" not in wanted)):
            return entry
    return None


def _short(value: str | None) -> str:
    """A header value fit for a one-line reason: whitespace collapsed, at most MAX_DETAIL characters."""
    text = " ".join((value or "").split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"
