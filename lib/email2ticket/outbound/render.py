"""Rendering the help desk's own mail: acknowledgements of new tickets and notifications of updates.

Pure: fields in, the complete RFC 5322 message out (outbound/transport.py sends it, the store records it). Every
notification is built so that whatever comes back is recognisable and threads into its ticket:

- the Subject ENDS with "[Ticket #N]" (mail/subject.py reads the number there, where clients never add text);
  when an admin's template leaves it out, it is appended;
- the Message-ID carries an HMAC token naming the ticket (signals/tokens.py), so a reply's In-Reply-To finds the
  ticket even when the subject lost its number, and our own mail looping back is known as ours;
- `Auto-Submitted` (RFC 3834), `X-Auto-Response-Suppress: All` (Exchange) and our loop header ask
  vacation responders and other help desks not to answer, and let signals/classify.py drop what answers anyway;
- the body starts with REPLY_ABOVE_LINE, added here so that no template can lose it, and reply/extract.py cuts
  a reply there.

An acknowledgement never repeats the incoming message's body: it goes to an address nobody verified, so
echoing the body would make the help desk a reflector for spam sent with a forged sender. Only template
fields reach the text, and the ticket subject is cut to SUBJECT_MAX characters.

Templates are text files (templates/*.txt, overridable per file by notifications.templates): a
`Subject:` line, a blank line, the body, with string.Template placeholders ($ticket, $subject,
$requester, $technician, $status, $helpdesk; $comment and $author in the comment kinds only). A
placeholder the kind does not offer is a ConfigurationError naming the file, at load time.

The message uses LF line ends, what `sendmail -t` reads; outbound/transport.py converts to CRLF for SMTP, because
smtplib sends bytes unchanged. Only the stdlib is used, and the email package is imported by render()
alone, so a delivery that sends nothing does not pay for it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from msgspec import Struct

from ..exits import ConfigurationError
from ..rules.decision import NoticeKind
from ..signals.tokens import LOOP_HEADER
from ..store.notices import NotificationFields

if TYPE_CHECKING:
    from ..config.model import NotificationsConfig
    from ..signals.tokens import Keyring

KINDS: tuple[NoticeKind, ...] = get_args(NoticeKind)
COMMENT_KINDS: frozenset[NoticeKind] = frozenset({"technician-update", "requester-comment", "participant-comment"})
REPLY_ABOVE_LINE = "##- Please type your reply above this line -##"
SUBJECT_MAX = 120
NO_SUBJECT = "(no subject)"
COMMON_PLACEHOLDERS = frozenset({"ticket", "subject", "requester", "technician", "status", "helpdesk"})
COMMENT_PLACEHOLDERS = frozenset({"comment", "author"})
BUILT_IN = "built-in"

_WHITESPACE = re.compile(r"[\s\x00-\x1f\x7f]+")  # any run of whitespace or control characters
_MSG_ID = re.compile(r"<[^<>\s]+>")


class OutgoingMail(Struct, frozen=True):
    """A rendered notification, ready for mailer.send(); `data` has LF line ends."""

    message_id: str  # with <>
    envelope_from: str  # "" is the null sender
    recipient: str
    data: bytes


class NoticeTemplate(Struct, frozen=True):
    """One kind's parsed template, and where it came from (for errors and `doctor`)."""

    kind: NoticeKind
    subject: string.Template
    body: string.Template
    source: str  # BUILT_IN or the file's path


class Templates(Struct, frozen=True):
    """The template of every kind."""

    by_kind: Mapping[NoticeKind, NoticeTemplate]

    def __getitem__(self, kind: NoticeKind) -> NoticeTemplate:
        return self.by_kind[kind]


def placeholders(kind: NoticeKind) -> frozenset[str]:
    """The placeholders a template of `kind` may use."""
    return COMMON_PLACEHOLDERS | COMMENT_PLACEHOLDERS if kind in COMMENT_KINDS else COMMON_PLACEHOLDERS


def load_templates(directory: str | None) -> Templates:
    """The built-in templates, each replaced by `<directory>/<kind>.txt` where that file exists."""
    overrides = _override_files(Path(directory).expanduser()) if directory else {}
    return Templates({kind: _load_one(kind, overrides.get(kind)) for kind in KINDS})


def _override_files(directory: Path) -> dict[NoticeKind, Path]:
    """The directory's template files; an unknown *.txt is an error (a misspelt name would be ignored)."""
    if not directory.is_dir():
        raise ConfigurationError(f"notifications.templates: {directory} is not a directory")
    known = {f"{kind}.txt": kind for kind in KINDS}
    found: dict[NoticeKind, Path] = {}
    for path in sorted(directory.glob("*.txt")):
        if path.name not in known:
            raise ConfigurationError(f"template {path}: unknown template name (known: {', '.join(sorted(known))})")
        found[known[path.name]] = path
    return found


def _load_one(kind: NoticeKind, path: Path | None) -> NoticeTemplate:
    if path is None:
        from importlib.resources import files  # only paid for when a notification is rendered

        built_in = files("email2ticket.outbound") / "templates" / f"{kind}.txt"
        return parse_template(kind, built_in.read_text("utf-8"), BUILT_IN)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read template {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise ConfigurationError(f"template {path}: not UTF-8 text") from None
    return parse_template(kind, text, str(path))


def parse_template(kind: NoticeKind, text: str, source: str) -> NoticeTemplate:
    """Parse a template file's text; ConfigurationError naming `source` when it is malformed."""
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    end = next((index for index, line in enumerate(lines) if not line.strip()), None)
    if end is None:
        raise ConfigurationError(f"template {source}: the Subject: line must be followed by a blank line")
    subject = _subject_line(lines[:end], source)
    body = "\n".join(lines[end + 1 :]).rstrip() + "\n"
    allowed = placeholders(kind)
    for part, template_text in (("Subject", subject), ("body", body)):
        _check_placeholders(string.Template(template_text), allowed, f"template {source} ({part})")
    return NoticeTemplate(kind, string.Template(subject), string.Template(body), source)


def _subject_line(header: list[str], source: str) -> str:
    """The one header a template has: `Subject: ...`, possibly folded onto indented lines."""
    if not header or not header[0].lower().startswith("subject:"):
        raise ConfigurationError(f"template {source}: must start with a 'Subject: ...' line, then a blank line")
    parts = [header[0][len("subject:") :]]
    for line in header[1:]:
        if not line[:1].isspace():
            raise ConfigurationError(f"template {source}: only a Subject: line may precede the blank line: {line!r}")
        parts.append(line)
    return " ".join(part.strip() for part in parts).strip()


def _check_placeholders(template: string.Template, allowed: frozenset[str], where: str) -> None:
    if not template.is_valid():
        raise ConfigurationError(f"{where}: a '$' that starts no placeholder (write $$ for a dollar sign)")
    unknown = sorted(set(template.get_identifiers()) - allowed)
    if unknown:
        raise ConfigurationError(f"{where}: unknown placeholder ${unknown[0]} (known: {_dollars(allowed)})")


def _dollars(names: frozenset[str]) -> str:
    return ", ".join(f"${name}" for name in sorted(names))


def check_templates(templates: Templates) -> list[str]:
    """What `doctor` should point out about templates that load but may not say what the admin intends."""
    problems = []
    for kind in KINDS:
        template = templates[kind]
        where = f"template {kind} ({template.source})"
        body_names = set(template.body.get_identifiers())
        if not template.body.template.strip():
            problems.append(f"{where}: the body is empty")
        elif "ticket" not in body_names:
            problems.append(f"{where}: the body does not mention $ticket")
        if REPLY_ABOVE_LINE in template.body.template:
            problems.append(f"{where}: the body repeats {REPLY_ABOVE_LINE!r}, which is added to every notification")
        if "comment" in template.subject.get_identifiers():
            problems.append(f"{where}: $comment in the Subject makes a long subject line of the whole comment")
    return problems


def render(
    fields: NotificationFields,
    *,
    templates: Templates,
    config: NotificationsConfig,
    keyring: Keyring,
    now: datetime | None = None,
    nonce: str | None = None,
) -> OutgoingMail:
    """The complete notification for `fields`.

    ConfigurationError when [notifications] has no from_address; ValueError when the recipient is not
    an address we can write into To: (a permanent failure of this one notification).
    """
    from ..signals.tokens import make_message_id

    helpdesk, domain, envelope, loop = config.from_address, config.domain(), config.envelope_from(), config.loop_id()
    if helpdesk is None or domain is None or envelope is None or loop is None:
        raise ConfigurationError("notifications.from_address is not set: the help desk sends no mail")
    recipient = mail_address(fields.recipient)
    template = templates[fields.kind]
    values = placeholder_values(fields, helpdesk)
    headers = {
        "From": helpdesk,
        **_reply_to(helpdesk, fields.reply_delimiter, fields.ticket),
        "To": recipient,
        "Subject": ticket_subject(template.subject.substitute(values), fields.ticket),
        "Date": _date(now),
        "Message-ID": make_message_id(fields.ticket, keyring, domain, nonce=nonce),
        **_threading(fields.in_reply_to),
        "Auto-Submitted": "auto-replied" if fields.kind == "acknowledgement" else "auto-generated",
        "X-Auto-Response-Suppress": "All",
        LOOP_HEADER: loop,
    }
    body = f"{REPLY_ABOVE_LINE}\n\n{template.body.substitute(values)}"
    return OutgoingMail(headers["Message-ID"], envelope, recipient, compose(headers, body))


def placeholder_values(fields: NotificationFields, helpdesk: str) -> dict[str, str]:
    """Each placeholder's text; one-line fields are flattened so none can add a header or a line of its own.

    The comment and its author exist only for the comment kinds: an acknowledgement has nothing of the
    incoming message but its (shortened) subject.
    """
    values = {
        "ticket": str(fields.ticket),
        "subject": clean_subject(fields.subject),
        "requester": one_line(fields.requester),
        "technician": one_line(fields.technician or ""),
        "status": one_line(fields.status),
        "helpdesk": one_line(helpdesk),
    }
    if fields.kind in COMMENT_KINDS:
        values["comment"] = fields.comment.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
        values["author"] = one_line(fields.author)
    return values


def one_line(text: str) -> str:
    """`text` with every run of whitespace and control characters (CR, LF, tab, NUL, ...) made one space."""
    return _WHITESPACE.sub(" ", text).strip()


def clean_subject(subject: str) -> str:
    """The ticket subject for $subject: one line, at most SUBJECT_MAX characters ("…" marks a cut)."""
    text = one_line(subject) or NO_SUBJECT
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 1].rstrip() + "…"


def ticket_subject(rendered: str, ticket: int) -> str:
    """The rendered subject on one line, ending with "[Ticket #N]" (appended when the template has not)."""
    text = one_line(rendered)
    marker = f"[Ticket #{ticket}]"
    return text if text.endswith(marker) else f"{text} {marker}".lstrip()


def mail_address(text: str) -> str:
    """`text` as an ASCII addr-spec for To: and RCPT TO (an IDN domain in its xn-- form); ValueError otherwise."""
    from email.errors import MessageError
    from email.headerregistry import Address

    try:
        address = Address(addr_spec=text.strip())
        domain = address.domain.encode("idna").decode("ascii")
    except (ValueError, IndexError, UnicodeError, MessageError):
        raise ValueError(f"cannot notify {text!r}: not a mail address") from None
    if not address.username or not domain or not address.username.isascii():
        raise ValueError(f"cannot notify {text!r}: not an ASCII mail address with a domain")
    return Address(username=address.username, domain=domain).addr_spec


def _reply_to(helpdesk: str, delimiter: str, ticket: int) -> dict[str, str]:
    """reply_to_ticket_address: Reply-To: our From: address with the ticket as its plus-detail (helpdesk+7@...), so
    a reply finds its ticket even when a client rewrote the subject (rules/routing.py)."""
    from email.utils import formataddr, parseaddr

    name, address = parseaddr(helpdesk)
    local, at, domain = address.rpartition("@")
    if not delimiter or not at or not local:
        return {}
    return {"Reply-To": formataddr((name if name.isascii() else "", f"{local}{delimiter}{ticket}@{domain}"))}


def _threading(in_reply_to: str | None) -> dict[str, str]:
    """In-Reply-To and References for the triggering mail's Message-ID; a malformed one is left out."""
    message_id = (in_reply_to or "").strip()
    if not _MSG_ID.fullmatch(message_id) or not message_id.isascii():
        return {}
    return {"In-Reply-To": message_id, "References": message_id}


def _date(now: datetime | None) -> str:
    from email.utils import format_datetime

    return format_datetime((now or datetime.now()).astimezone())


def compose(headers: Mapping[str, str], body: str) -> bytes:
    """The message bytes: `headers` in order, then a text/plain UTF-8 body (quoted-printable when not ASCII)."""
    import email.policy
    from email.message import EmailMessage

    part = EmailMessage(policy=email.policy.default)  # LF line ends
    # Not 8bit: neither a relay without 8BITMIME nor a transport that strips the eighth bit can hurt it.
    part.set_content(body, charset="utf-8", cte=None if body.isascii() else "quoted-printable")
    lines = "".join(header_field(name, value) for name, value in headers.items())
    return lines.encode("ascii") + part.as_bytes()


def header_field(name: str, value: str) -> str:
    """One header field ending in LF: ASCII folded at spaces, non-ASCII text as RFC 2047 encoded words.

    ASCII is folded here because the email package's folder puts a long Message-ID, or a subject that
    starts with "[", on a continuation line of its own, which some readers keep as leading space.
    """
    if name == "From":
        value = _address_header(value)
    if value.isascii():
        return _fold_ascii(name, value)
    import email.policy

    policy = email.policy.default
    folded: str = policy.header_factory(name, value).fold(policy=policy)
    return folded


def _address_header(text: str) -> str:
    """The configured From: rewritten in canonical form (a display name with specials quoted)."""
    from email.utils import formataddr, parseaddr

    name, address = parseaddr(text)
    return formataddr((name, address)) if name.isascii() else text


def _fold_ascii(name: str, value: str, width: int = 78) -> str:
    lines = [f"{name}:"]
    for index, word in enumerate(value.split(" ")):
        if index and word and len(lines[-1]) + 1 + len(word) > width:
            lines.append(" " + word)  # a continuation line never holds only white space
        else:
            lines[-1] += " " + word
    return "\n".join(lines) + "\n"
