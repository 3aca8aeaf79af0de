"""Tests for email2ticket.mail.message: every bad input parses into concrete, NUL-free data and never raises."""

import base64
import hashlib
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from email2ticket.config.model import Limits
from email2ticket.mail.message import (
    MAX_DEPTH,
    Attachment,
    ParsedMessage,
    normalise_address,
    parse_message,
    safe_filename,
)
from support.corpus import CORPUS_DIR, MISSING_REASON, corpus_available, corpus_files, corpus_messages

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bad"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
LIB_DIR = Path(__file__).resolve().parents[2] / "lib"


def parse_fixture(name: str) -> ParsedMessage:
    return parse_message((FIXTURES / name).read_bytes())


def has_defect(parsed: ParsedMessage, fragment: str) -> bool:
    return any(fragment in defect for defect in parsed.defects)


def assert_clean(parsed: ParsedMessage) -> None:
    """Every text field is a str a PostgreSQL text column accepts: no NUL, encodable as UTF-8."""
    texts = [
        parsed.subject,
        parsed.text,
        *parsed.from_addresses,
        *parsed.in_reply_to,
        *parsed.references,
        *parsed.defects,
        *(part for header in parsed.headers for part in header),
    ]
    texts += [parsed.message_id or ""] + [attachment.filename or "" for attachment in parsed.attachments]
    for text in texts:
        assert isinstance(text, str)
        assert "\x00" not in text
        text.encode("utf-8")  # raises on lone surrogates
    for attachment in parsed.attachments:
        assert isinstance(attachment.data, bytes)
        assert attachment.sha256 == hashlib.sha256(attachment.data).hexdigest()
        assert attachment.safe_filename and "/" not in attachment.safe_filename


# ----------------------------------------------------------------------------------------------------
# Fixtures: one bad input each


def test_malformed_mime_no_boundary_reads_body_as_text() -> None:
    parsed = parse_fixture("malformed_mime_no_boundary.eml")
    assert parsed.subject == "Multipart without boundary"
    assert parsed.from_addresses == ("alice@example.com",)
    assert "The printer on floor 3 is jammed again." in parsed.text
    assert parsed.attachments == ()
    assert has_defect(parsed, "NoBoundaryInMultipartDefect")
    assert has_defect(parsed, "multipart/mixed without usable boundary read as text")


def test_missing_headers_body_only() -> None:
    parsed = parse_fixture("missing_headers_body_only.eml")
    assert parsed.subject == ""
    assert parsed.from_addresses == ()
    assert parsed.from_header_count == 0
    assert parsed.message_id is None
    assert parsed.headers == ()
    assert parsed.text == "Hello help desk,\nmy laptop does not boot any more.\n\nRegards, Bob\n"
    assert parsed.body_digest == hashlib.sha256(b"Regards, Bob\n").hexdigest()  # after the first empty line
    assert has_defect(parsed, "MissingHeaderBodySeparatorDefect")


def test_broken_header_no_colon_is_joined_to_the_previous_field() -> None:
    # A gateway wrapped the Subject without indenting the continuation; without the repair the header block
    # would end there and Message-ID and Date would become body text.
    parsed = parse_fixture("broken_header_no_colon.eml")
    assert parsed.subject == "VPN drops every hour since the firewall update on Monday"
    assert parsed.from_addresses == ("carol@example.com",)
    assert parsed.message_id == "<broken-header-1@example.com>"
    assert parsed.header("date") == "Mon, 02 Sep 2024 10:00:00 +0200"
    assert parsed.text == "The VPN connection drops every hour.\n"
    assert has_defect(parsed, "line(s) without a colon")


def test_undeclared_8bit_latin1_headers() -> None:
    parsed = parse_fixture("undeclared_8bit_subject_latin1.eml")
    assert parsed.subject == "Grüße aus Köln: Drucker defekt"
    assert parsed.header("From") == "Jürgen Müller <Juergen.Mueller@example.de>"
    assert parsed.from_addresses == ("juergen.mueller@example.de",)
    assert parsed.text == "Der Drucker im Büro druckt nicht mehr.\n"
    assert has_defect(parsed, "header Subject: undeclared 8-bit bytes")


@pytest.mark.parametrize(
    "name",
    ["unknown_charset_name.eml", "unknown_charset_latin1_bytes.eml"],
)
def test_unknown_charset_keeps_the_text(name: str) -> None:
    parsed = parse_fixture(name)
    assert parsed.text == "Können Sie mir helfen? Grüße\n"  # UTF-8 bytes, resp. cp1252 guess for Latin-1
    assert has_defect(parsed, "unknown charset 'x-unknown'")


def test_charset_with_stray_quote() -> None:
    parsed = parse_fixture("charset_with_stray_quote.eml")
    assert parsed.text == "Straße gesperrt.\n"


def test_wrong_charset_declared_utf8_is_latin1() -> None:
    parsed = parse_fixture("wrong_charset_declared_utf8_is_latin1.eml")
    assert parsed.text == "Die Gebühr für März ist zu hoch.\n"
    assert has_defect(parsed, "text is not valid utf-8")


def test_broken_rfc2047_subject() -> None:
    parsed = parse_fixture("broken_rfc2047_subject.eml")
    # unknown charset -> UTF-8; invalid UTF-8 -> cp1252; broken base64 and unterminated words kept as sent
    assert parsed.subject == "café und Grüße =?utf-8?B?x?= =?UTF-8?Q?unterminated"
    assert has_defect(parsed, "unknown charset 'x-bogus'")
    assert has_defect(parsed, "malformed encoded word '=?utf-8?B?x?='")


def test_rfc2047_subject_de() -> None:
    parsed = parse_fixture("rfc2047_subject_de.eml")
    assert parsed.subject == "Drucker kaputt – Ticket #42"
    assert parsed.header("from") == "Jürgen Müller <jm@example.de>"
    assert parsed.from_addresses == ("jm@example.de",)
    assert parsed.defects == ()


def test_zero_length_attachment() -> None:
    parsed = parse_fixture("zero_length_attachment.eml")
    assert parsed.text == "See the empty file."
    (attachment,) = parsed.attachments
    assert attachment == Attachment("empty.dat", "application/octet-stream", b"", EMPTY_SHA256, False)
    assert attachment.size == 0


def test_path_like_filenames_are_kept_as_sent_and_made_safe() -> None:
    parsed = parse_fixture("path_like_filename_attachment.eml")
    passwd, evil = parsed.attachments
    assert passwd.filename == "../../etc/passwd"
    assert passwd.safe_filename == "passwd"
    assert passwd.content_type == "text/plain"
    assert passwd.data == b"root:x:0:0:root:/root:/bin/sh"
    assert evil.filename == "C:\\Windows\\evil.exe"
    assert evil.safe_filename == "evil.exe"
    assert evil.data == base64.b64decode("TVqQAAMAAAAEAAAA")
    assert evil.size == 12


def test_empty_filename_attachment() -> None:
    parsed = parse_fixture("empty_filename_attachment.eml")
    (attachment,) = parsed.attachments
    assert attachment.filename == ""
    assert attachment.safe_filename == "attachment.pdf"
    assert attachment.data == b"%PDF-1.4\n"
    assert attachment.sha256 == hashlib.sha256(b"%PDF-1.4\n").hexdigest()


def test_nul_bytes_are_stripped_from_text_but_kept_in_attachments() -> None:
    parsed = parse_fixture("nul_bytes.eml")
    assert parsed.subject == "NUL in subject"
    assert parsed.text == "Text with a NUL byte."
    (attachment,) = parsed.attachments
    assert attachment.filename == "nul.bin"
    assert attachment.data == b"\x00\x01\x02binary\x00"
    assert_clean(parsed)


def test_html_only_newsletter_is_converted() -> None:
    parsed = parse_fixture("html_only.eml")
    assert parsed.html_converted
    assert parsed.from_addresses == ("news@example.com",)
    assert "Monthly Newsletter" in parsed.text
    assert "here are this month's numbers:" in parsed.text
    assert "Widget" in parsed.text and "9.99 €" in parsed.text
    assert "our website" in parsed.text
    assert "<" not in parsed.text
    assert "do not show" not in parsed.text and "color: red" not in parsed.text
    assert parsed.attachments == ()
    assert parsed.html is not None and "Monthly Newsletter" in parsed.html  # the source, for reply cutting


def test_html_alternative_is_kept_beside_the_text() -> None:
    parsed = parse_fixture("inline_image.eml")  # multipart/related > alternative (text/plain, text/html)
    assert parsed.html is not None and parsed.html.lstrip().startswith("<")
    assert not parsed.html_converted
    assert parse_fixture("rfc2047_subject_de.eml").html is None  # text/plain only


def test_attached_message_is_kept_whole() -> None:
    parsed = parse_fixture("attached_eml.eml")
    assert parsed.text == "Forwarding the original message."
    (attachment,) = parsed.attachments
    assert attachment.content_type == "message/rfc822"
    assert attachment.filename == "original.eml"
    assert attachment.data == (
        b"From: Original Sender <orig@example.net>\nTo: someone@example.com\nSubject: The original problem\n"
        b"Message-ID: <inner-1@example.net>\nContent-Type: text/plain; charset=utf-8\n\nThe original text."
    )  # the line break before the boundary belongs to the boundary (RFC 2046 5.1.1)
    inner = parse_message(attachment.data)
    assert inner.subject == "The original problem"
    assert inner.text == "The original text."


def test_inline_image_in_multipart_related() -> None:
    parsed = parse_fixture("inline_image.eml")  # CRLF line endings, as on the wire
    assert parsed.text == "See the logo below."
    assert not parsed.html_converted
    (image,) = parsed.attachments  # the HTML alternative is the body again, not an attachment
    assert image.filename == "logo.png"
    assert image.content_type == "image/png"
    assert image.inline
    assert image.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert image.size == 70
    assert image.sha256 == hashlib.sha256(image.data).hexdigest()


def test_rfc2231_filename() -> None:
    parsed = parse_fixture("rfc2231_filename.eml")
    (attachment,) = parsed.attachments
    assert attachment.filename == "€ rates.pdf"
    assert attachment.safe_filename == "€ rates.pdf"
    assert attachment.content_type == "application/pdf"
    assert not attachment.inline


def test_rfc2231_filename_that_crashes_the_stdlib_parser() -> None:
    # otobo PostMaster-Test12.box: policy.default raises UnicodeDecodeError while parsing this parameter.
    parsed = parse_fixture("rfc2231_undecodable_iso2022jp_filename.eml")
    assert parsed.subject == "Japanese filename"
    assert parsed.text == "File attached."
    (attachment,) = parsed.attachments
    assert attachment.data == b"report"
    assert attachment.filename is not None and attachment.filename.startswith("報告書")
    assert has_defect(parsed, "policy.default) failed: UnicodeDecodeError")


def test_multiple_from_headers_are_all_collected() -> None:
    parsed = parse_fixture("multiple_from_headers.eml")
    assert parsed.from_header_count == 2
    assert parsed.from_addresses == ("alice@example.com", "bob@example.com", "mallory@evil.example")
    assert parsed.header_all("FROM") == (
        "Alice <Alice@Example.com>, bob@example.com",
        '"Mallory" <MALLORY@Evil.example>',
    )


def test_garbage_from_header_falls_back_to_the_angle_address() -> None:
    parsed = parse_fixture("garbage_from_header.eml")
    assert parsed.from_addresses == ("bob@example.com",)
    assert parsed.from_header_count == 1


def test_bare_message_id_and_reference_tokens() -> None:
    parsed = parse_fixture("bare_message_id.eml")
    assert parsed.message_id == "<nagios-alert-12345@monitoring>"
    assert parsed.in_reply_to == ("<first@example.com>",)
    assert parsed.references == ("<root@example.com>", "<first@example.com>", "<second@example.com>")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"Message-ID: <a@example.com>", "<a@example.com>"),
        (b"Message-ID: < a@example.com >", "<a@example.com>"),
        (b"Message-ID: <a@example.com> <b@example.com>", "<a@example.com>"),
        (b"Message-ID:\n <folded@example.com>", "<folded@example.com>"),
        (b"Message-ID: bare-id@example.com", "<bare-id@example.com>"),
        (b"Message-ID: <unterminated@example.com", "<unterminated@example.com>"),
        (b"Message-ID:    ", None),
        (b"Message-ID: <>", None),
        (b"X-Other: 1", None),
    ],
)
def test_message_id_variants(header: bytes, expected: str | None) -> None:
    assert parse_message(b"From: a@example.com\n" + header + b"\n\nbody\n").message_id == expected


def test_related_image_without_disposition_counts_as_inline() -> None:
    # Some clients send cid: images in multipart/related without any Content-Disposition.
    raw = (
        b'Subject: x\nMIME-Version: 1.0\nContent-Type: multipart/related; boundary="r"\n\n'
        b'--r\nContent-Type: text/html\n\n<img src="cid:i1">\n'
        b"--r\nContent-Type: image/gif\nContent-ID: <i1>\nContent-Transfer-Encoding: base64\n\n"
        b"R0lGODlh\n--r--\n"
    )
    parsed = parse_message(raw)
    assert parsed.html_converted
    (image,) = parsed.attachments
    assert image.inline and image.filename is None
    assert image.safe_filename == "attachment.gif"


def test_broken_base64_attachment_is_decoded_as_far_as_possible() -> None:
    parsed = parse_fixture("broken_base64_attachment.eml")
    (attachment,) = parsed.attachments
    assert attachment.data == b"Hello World"
    assert has_defect(parsed, "InvalidBase64CharactersDefect")


def test_every_fixture_is_clean() -> None:
    names = sorted(path.name for path in FIXTURES.glob("*.eml"))
    assert len(names) >= 18
    for name in names:
        assert_clean(parse_fixture(name))


# ----------------------------------------------------------------------------------------------------
# Generated inputs (too big to commit)


def test_very_long_line() -> None:
    raw = b"From: a@example.com\nSubject: long line\n\n" + b"x" * (2 * 1024 * 1024) + b"\n"
    started = time.perf_counter()
    parsed = parse_message(raw)
    assert time.perf_counter() - started < 10  # a quadratic scan of 2 MB would take minutes
    assert parsed.text == "x" * (2 * 1024 * 1024) + "\n"


def test_very_long_header_line() -> None:
    """A 2 MB Subject is over max_header_bytes (1 MiB): cut to the limit and named; raised limits take it whole."""
    raw = b"From: a@example.com\nSubject: " + b"y" * (2 * 1024 * 1024) + b"\n\nbody\n"
    parsed = parse_message(raw)
    assert parsed.over_limits == (f"max_header_bytes: a header section of {len(raw) - 5} bytes (limit 1048576)",)
    assert parsed.subject == "y" * (1024 * 1024 - len("From: a@example.com\nSubject: "))
    assert parsed.text == "body\n"
    whole = parse_message(raw, Limits(max_header_bytes=4 * 1024 * 1024))
    assert whole.over_limits == ()
    assert whole.subject == "y" * (2 * 1024 * 1024)


def deeply_nested(levels: int) -> bytes:
    parts = [
        b"From: a@example.com\nSubject: deep\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="top"\n'
        b"\n--top\nContent-Type: text/plain\n\ntop text\n--top\n"
    ]
    parts += [b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(levels)]
    parts.append(b"Content-Type: text/plain\n\nbottom text\n")
    parts += [b"--b%d--\n" % i for i in reversed(range(levels))]
    parts.append(b"--top--\n")
    return b"".join(parts)


@pytest.mark.parametrize("levels", [5000, 600])  # beyond the stdlib's recursion limit, and within it
def test_deeply_nested_multipart(levels: int) -> None:
    parsed = parse_message(deeply_nested(levels))
    assert parsed.subject == "deep"
    assert parsed.text == "top text"
    # "bottom text" lies far below MAX_DEPTH: the structure is cut where it goes deeper, before parsing
    assert all(b"bottom text" not in attachment.data for attachment in parsed.attachments)
    assert parsed.over_limits == (f"max_mime_depth: MIME parts nested deeper than {MAX_DEPTH} levels",)


def test_nesting_within_the_limit_is_walked() -> None:
    raw = deeply_nested(20).replace(b"top text", b"")
    parsed = parse_message(raw)
    assert parsed.text == ""  # an empty text/plain body is still the body
    assert [attachment.data for attachment in parsed.attachments] == [b"bottom text"]


@pytest.mark.slow
def test_25_mb_message() -> None:
    payload = random.Random(25).randbytes(18 * 1024 * 1024)  # 24 MB once base64-encoded
    raw = (
        b"From: a@example.com\nSubject: big\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="XX"\n\n'
        b"--XX\nContent-Type: text/plain\n\nhello\n--XX\nContent-Type: application/octet-stream\n"
        b'Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename="big.bin"\n\n'
        + base64.encodebytes(payload)
        + b"--XX--\n"
    )
    assert len(raw) > 25_000_000
    parsed = parse_message(raw)
    assert parsed.text == "hello"
    (attachment,) = parsed.attachments
    assert attachment.size == len(payload)
    assert attachment.sha256 == hashlib.sha256(payload).hexdigest()


def test_transfer_encoded_attached_message_is_decoded() -> None:
    inner = b"From: x@example.com\nSubject: inner\n\ninner body\n"
    raw = (
        b"From: a@example.com\nSubject: outer\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\nouter body\n--b\nContent-Type: message/rfc822\n"
        b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(inner) + b"--b--\n"
    )
    (attachment,) = parse_message(raw).attachments
    assert attachment.content_type == "message/rfc822"
    assert attachment.data == inner


def test_encoded_words_split_inside_a_multibyte_character() -> None:
    raw = b"Subject: =?UTF-8?Q?Gr=C3?= =?UTF-8?Q?=BC=C3=9Fe?=\n\n"
    parsed = parse_message(raw)
    assert parsed.subject == "Grüße"
    assert parsed.defects == ()


def test_empty_multipart_is_neither_body_nor_attachment() -> None:
    raw = b'Subject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n--b--\n'
    parsed = parse_message(raw)
    assert parsed.text == ""
    assert parsed.attachments == ()


def test_empty_text_plain_alternative_falls_back_to_html() -> None:
    raw = (
        b'Subject: x\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\n\n--b\nContent-Type: text/html\n\n<p>Real content</p>\n--b--\n"
    )
    parsed = parse_message(raw)
    assert parsed.html_converted
    assert parsed.text.strip() == "Real content"
    assert parsed.attachments == ()


@pytest.mark.parametrize("raw", [b"", b"\n", b"\r\n\r\n", b"\x00" * 100, b":", b"From \n", b"=?", b"--\n--"])
def test_degenerate_input(raw: bytes) -> None:
    parsed = parse_message(raw)
    assert isinstance(parsed, ParsedMessage)
    assert_clean(parsed)


def test_empty_input_gives_an_empty_message() -> None:
    assert parse_message(b"") == ParsedMessage()


def test_random_bytes_never_raise() -> None:
    rng = random.Random(4711)
    names = ("inline_image.eml", "attached_eml.eml", "nul_bytes.eml")
    seeds = [(FIXTURES / name).read_bytes() for name in names]
    for _ in range(300):
        raw = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 20)):  # flip, insert and delete bytes
            position = rng.randrange(len(raw))
            action = rng.randrange(3)
            if action == 0:
                raw[position] = rng.randrange(256)
            elif action == 1:
                raw[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            else:
                del raw[position : position + rng.randint(1, 8)]
        assert_clean(parse_message(bytes(raw)))


def test_non_bytes_input_does_not_raise() -> None:
    parsed = parse_message("Subject: not bytes\n\n")  # type: ignore[arg-type]
    assert parsed.defects and parsed.text == ""
    assert parse_message(bytearray(b"Subject: bytearray\n\nbody")).subject == "bytearray"  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------
# Body digest


MESSAGE = b"""Received: from relay-{n}.example.net by mx.example.org; Mon, 2 Sep 2024 10:00:0{n} +0200
From: a@example.com
Subject: Duplicate

Body line one.
Body line two.
"""


def test_body_digest_ignores_headers_and_line_endings() -> None:
    first = parse_message(MESSAGE.replace(b"{n}", b"1"))
    second = parse_message(MESSAGE.replace(b"{n}", b"2").replace(b"\n", b"\r\n"))
    assert first.header("received") != second.header("received")
    assert first.body_digest == second.body_digest
    assert first.body_digest == hashlib.sha256(b"Body line one.\nBody line two.\n").hexdigest()


def test_body_digest_changes_with_the_body() -> None:
    original = parse_message(MESSAGE.replace(b"{n}", b"1"))
    changed = parse_message(MESSAGE.replace(b"{n}", b"1").replace(b"two", b"2"))
    assert original.body_digest != changed.body_digest


def test_body_digest_of_a_large_crlf_body_matches_a_plain_hash() -> None:
    body = b"0123456789abcdef\r\n" * 200_000  # crosses the 1 MiB hashing chunks, CRLFs on the boundaries
    parsed = parse_message(b"Subject: big\r\n\r\n" + body)
    assert parsed.body_digest == hashlib.sha256(body.replace(b"\r\n", b"\n")).hexdigest()


# ----------------------------------------------------------------------------------------------------
# Public helpers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bob <Bob@Example.COM>", "bob@example.com"),
        ("bob@example.com", "bob@example.com"),
        ("  <BOB@example.com>  ", "bob@example.com"),
        ('"Example, Bob" <bob@example.com>', "bob@example.com"),
        ("bob@example.com (Bob)", "bob@example.com"),
        ("=?utf-8?q?B=C3=B6b?= <bob@example.com>", "bob@example.com"),
        ("Müller <müller@bücher.example>", "müller@bücher.example"),
        ("bob@example.com.", "bob@example.com"),
        ("", None),
        ("   ", None),
        ("undisclosed-recipients:;", None),
        ("MAILER-DAEMON", None),
        ("MAILER-DAEMON (Mail Delivery System)", None),
        ("<>", None),
        ("no at sign", None),
        ("bob@", None),
        ("@example.com", None),
        ("Bob bob@example.com", None),
        ("bob\x00@example.com", "bob@example.com"),
    ],
)
def test_normalise_address(text: str, expected: str | None) -> None:
    assert normalise_address(text) == expected


@pytest.mark.parametrize(
    ("name", "fallback", "expected"),
    [
        ("report.pdf", "attachment", "report.pdf"),
        ("../../etc/passwd", "attachment", "passwd"),
        ("C:\\Windows\\evil.exe", "attachment", "evil.exe"),
        ("C:evil.exe", "attachment", "evil.exe"),
        ("..", "attachment", "attachment"),
        ("...", "attachment", "attachment"),
        (".bashrc", "attachment", "bashrc"),
        ("dir/", "attachment", "attachment"),
        ("", "attachment.pdf", "attachment.pdf"),
        (None, "attachment.png", "attachment.png"),
        (None, "", "attachment"),
        ("  spaced name.txt  ", "attachment", "spaced name.txt"),
        ("nul\x00byte.txt", "attachment", "nulbyte.txt"),
        ("tab\tnew\nline.txt", "attachment", "tabnewline.txt"),
        ("invoice\u202etxt.exe", "attachment", "invoicetxt.exe"),  # right-to-left override disguising .exe
        ("€ rates.pdf", "attachment", "€ rates.pdf"),
        ("/", "x.bin", "x.bin"),
    ],
)
def test_safe_filename(name: str | None, fallback: str, expected: str) -> None:
    assert safe_filename(name, fallback) == expected


def test_safe_filename_caps_utf8_length_and_keeps_the_extension() -> None:
    name = "ä" * 300 + ".pdf"
    safe = safe_filename(name)
    assert len(safe.encode("utf-8")) <= 200
    assert safe.endswith(".pdf") and safe.startswith("ää")
    assert len(safe_filename("x" * 500).encode("utf-8")) == 200


def test_header_lookup_is_case_insensitive() -> None:
    parsed = parse_message(b"X-Test: one\nx-test: two\nAuto-Submitted: auto-replied\n\n")
    assert parsed.header("X-TEST") == "one"
    assert parsed.header_all("x-Test") == ("one", "two")
    assert parsed.header("auto-submitted") == "auto-replied"
    assert parsed.header("missing") is None
    assert parsed.header_all("missing") == ()
    assert parsed.headers[0] == ("X-Test", "one")


def test_results_are_frozen() -> None:
    parsed = parse_fixture("zero_length_attachment.eml")
    with pytest.raises(AttributeError, match="immutable"):
        parsed.subject = "changed"  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        parsed.attachments[0].data = b"changed"  # type: ignore[misc]


@pytest.mark.parametrize(("fixture", "imported"), [("rfc2047_subject_de.eml", False), ("html_only.eml", True)])
def test_inscriptis_is_imported_only_for_html_bodies(fixture: str, imported: bool) -> None:
    code = (
        "import sys; from pathlib import Path; from email2ticket.mail.message import parse_message; "
        f"m = parse_message(Path({str(FIXTURES / fixture)!r}).read_bytes()); i = 'inscriptis' in sys.modules; "
        "m.text; print(i, 'inscriptis' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(LIB_DIR)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", str(imported)]  # an HTML body is converted when its text is used


# ----------------------------------------------------------------------------------------------------
# Corpus robustness


@pytest.mark.skipif(not corpus_available(), reason=MISSING_REASON)
def test_corpus_messages_parse_cleanly() -> None:
    paths = corpus_messages()
    assert len(paths) > 250
    failures = []
    timings = []
    for path in paths:
        started = time.perf_counter()
        try:
            parsed = parse_message(path.read_bytes())
            assert_clean(parsed)
        except Exception as exc:
            failures.append(f"{path.relative_to(CORPUS_DIR)}: {exc!r}")
        timings.append((time.perf_counter() - started, path.relative_to(CORPUS_DIR)))
    slowest = ", ".join(f"{name} {seconds:.2f}s" for seconds, name in sorted(timings, reverse=True)[:3])
    print(f"parsed {len(paths)} corpus messages in {sum(t for t, _ in timings):.2f}s; slowest: {slowest}")
    assert failures == []


@pytest.mark.skipif(not corpus_available(), reason=MISSING_REASON)
def test_every_corpus_file_parses_without_raising() -> None:
    # Bare bodies, expectation files and HTML snippets are not messages, but the filter must survive them.
    for path in corpus_files():
        assert_clean(parse_message(path.read_bytes()))


@pytest.mark.skipif(not corpus_available(), reason=MISSING_REASON)
def test_corpus_spot_checks() -> None:
    def parse(relative: str) -> ParsedMessage:
        return parse_message((CORPUS_DIR / relative).read_bytes())

    test12 = parse("otobo/PostMaster/PostMaster-Test12.box")  # crashes policy.default while parsing
    assert test12.subject == "test äöüß"
    assert "Обяснительная.jpg" in [attachment.filename for attachment in test12.attachments]
    assert parse("zammad/mail/mail054.box").subject == "AW: One Net Business"  # unindented continuation
    assert parse("zammad/mail/mail031.box").subject.startswith("內應力產生")  # GBK labelled gb2312
    assert parse("zammad/mail/mail093.box").subject == "ツール"  # raw Shift_JIS, body iso-2022-jp
    endless = parse("flanker/messages/enclosed-endless.eml")
    assert endless.subject == "Wow"
    assert [attachment.filename for attachment in endless.attachments] == ["thanks.eml"]
