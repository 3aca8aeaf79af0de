"""Reply separators: validation, the admin's add/remove list, and cutting quoted history off a reply.

The client bodies below are short excerpts of real test fixtures: mailgun/talon (Apache-2.0),
github/email_reply_parser and crisp-oss/email-reply-parser (MIT).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import email2ticket.reply.search as separator_search
import email2ticket.reply.separators as separators_module
from email2ticket.reply.extract import (
    DEFAULT_SEPARATORS,
    InvalidSeparator,
    ReplyCut,
    Separator,
    effective_separators,
    parse_separator,
    strip_reply,
)

ORIGINAL = "-----Original Message-----"


# --- parse_separator ------------------------------------------------------------------------------------


def test_plain_separator() -> None:
    assert parse_separator(ORIGINAL) == Separator(text=ORIGINAL, is_regex=False, pattern=ORIGINAL)


def test_plain_separator_keeps_text_but_matches_without_surrounding_whitespace() -> None:
    assert parse_separator("  From: \t") == Separator(text="  From: \t", is_regex=False, pattern="From:")


def test_regex_separator() -> None:
    text = "/^On .* wrote:$/"
    assert parse_separator(text) == Separator(text=text, is_regex=True, pattern="^On .* wrote:$")


@pytest.mark.parametrize("text", ["/", "a/b/", "/usr/local", "http://example.com/"])
def test_slashes_that_are_not_a_regex(text: str) -> None:
    assert parse_separator(text).is_regex is False


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "cannot be empty"),
        ("   \t ", "cannot be empty"),
        (r"/(a)\1/", "backreferences and lookarounds are not supported"),
        ("/(?<=a)b/", "not valid RE2 syntax"),
        ("/(?=a)/", "not valid RE2 syntax"),
        ("/[/", "not valid RE2 syntax"),
        ("/x*/", "can match empty text"),
        ("//", "can match empty text"),
        ("/^/", "can match empty text"),
        ("/$/", "can match empty text"),
        (r"/\b/", "can match empty text"),
        ("/a|/", "can match empty text"),
        ("/wrote:/i", "flags after its closing slash"),
        ("line one\nline two", "must be one line"),
    ],
)
def test_invalid_separator(text: str, fragment: str) -> None:
    with pytest.raises(InvalidSeparator, match=r"^[A-Z]") as raised:
        parse_separator(text)
    message = str(raised.value)
    assert fragment in message
    assert "\n" not in message
    assert message.endswith(".")


def test_invalid_separator_message_quotes_the_admin_text() -> None:
    with pytest.raises(InvalidSeparator) as raised:
        parse_separator(r"/(a)\1/")
    assert r"'/(a)\1/'" in str(raised.value)


def test_invalid_separator_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_separator("")


@pytest.mark.parametrize("text", DEFAULT_SEPARATORS)
def test_every_default_separator_is_valid(text: str) -> None:
    parse_separator(text)


def test_built_in_separators_are_taken_unchecked_as_parse_separator_reads_them() -> None:
    # Delivery takes the built-in list without compiling each expression on its own (separators.parsed):
    # it must read every entry as the full check does, which the test above runs on each.
    separators_module.parsed.cache_clear()
    separators_module.compiled_regex.cache_clear()
    taken = [separators_module.parsed(text) for text in DEFAULT_SEPARATORS]
    assert separators_module.compiled_regex.cache_info().misses == 0
    assert taken == [parse_separator(text) for text in DEFAULT_SEPARATORS]
    assert any(separator.is_regex for separator in taken)


@pytest.mark.parametrize(
    "text",
    [
        "-----Original Message-----",
        "-----Ursprüngliche Nachricht-----",
        "-----Message d'origine-----",
        "-----Mensaje original-----",
        "-----Oorspronkelijk bericht-----",
        "-----Mensagem original-----",
        "________________________________",
    ],
)
def test_outlook_markers_are_plain_defaults(text: str) -> None:
    assert text in DEFAULT_SEPARATORS


# --- effective_separators -------------------------------------------------------------------------------


def test_effective_separators_defaults() -> None:
    assert effective_separators([], []) == DEFAULT_SEPARATORS


def test_effective_separators_remove_keeps_order() -> None:
    removed = DEFAULT_SEPARATORS[1]
    result = effective_separators([], [removed, "not a default"])
    assert result == tuple(text for text in DEFAULT_SEPARATORS if text != removed)


def test_effective_separators_add_appends_in_order_without_duplicates() -> None:
    result = effective_separators(["Sent from my phone", ORIGINAL, "/^-- $/", "Sent from my phone"], [])
    assert result == (*DEFAULT_SEPARATORS, "Sent from my phone", "/^-- $/")


def test_effective_separators_removed_then_added_goes_last() -> None:
    result = effective_separators([ORIGINAL], [ORIGINAL])
    assert result[-1] == ORIGINAL
    assert result.count(ORIGINAL) == 1


# --- strip_reply: the rules -----------------------------------------------------------------------------


def test_nothing_matches() -> None:
    assert strip_reply("Hello\n\nThanks", [ORIGINAL]) == ReplyCut("Hello\n\nThanks", None, None, ())


def test_plain_cut_and_trailing_blank_lines_removed() -> None:
    cut = strip_reply("Hello  \n\n\n-----Original Message-----\nold", [ORIGINAL])
    assert cut == ReplyCut("Hello", ORIGINAL, 4, (), quote_line=4, quote_separator=ORIGINAL)


@pytest.mark.parametrize(
    "line",
    [
        "-----Original Message-----",
        "-----original message-----",
        "   -----Original Message-----",
        "\t-----Original Message-----",
        "> -----Original Message-----",
        "> > -----Original Message-----",
        ">>-----Original Message-----",
        "-----Original Message----- (sent on a Monday)",
    ],
)
def test_plain_matches_at_line_start_after_quote_marks(line: str) -> None:
    assert strip_reply(f"new\n{line}\nold", [ORIGINAL]).line == 2


@pytest.mark.parametrize(
    "line",
    ["see -----Original Message----- below", "x> -----Original Message-----", "--Original Message--"],
)
def test_plain_does_not_match_inside_a_line(line: str) -> None:
    assert strip_reply(f"new\n{line}\nold", [ORIGINAL]).separator is None


def test_plain_may_be_followed_by_more_text() -> None:
    cut = strip_reply("new\nFrom: Bob <bob@x>\nold", ["From:"])
    assert (cut.text, cut.separator, cut.line) == ("new", "From:", 2)


def test_plain_special_characters_are_literal() -> None:
    assert strip_reply("new\n(a.b)*\nold", ["(a.b)*"]).line == 2
    assert strip_reply("new\naxb\nold", ["a.b"]).separator is None


def test_earliest_position_wins_over_list_order() -> None:
    body = "new\nFrom: a\nTo: b\n-----Original Message-----\nold"
    cut = strip_reply(body, [ORIGINAL, "/^From:.*\\nTo:/"])
    assert (cut.text, cut.separator, cut.line) == ("new", "/^From:.*\\nTo:/", 2)


def test_earliest_plain_wins_over_earlier_listed_plain() -> None:
    body = "new\n_____\n-----Original Message-----\nold"
    assert strip_reply(body, [ORIGINAL, "_____"]).separator == "_____"


@pytest.mark.parametrize(
    ("separators", "reported"),
    [
        (["-----Original", ORIGINAL], "-----Original"),
        ([ORIGINAL, "-----Original"], ORIGINAL),
        (["/Message-----$/", ORIGINAL], "/Message-----$/"),  # the regex match begins mid-line
        ([ORIGINAL, "/Message-----$/"], ORIGINAL),
        (["/Original/", "/^-----/"], "/Original/"),
    ],
)
def test_same_line_tie_reports_the_earlier_listed(separators: list[str], reported: str) -> None:
    cut = strip_reply("new\n-----Original Message-----\nold", separators)
    assert (cut.separator, cut.line) == (reported, 2)


def test_regex_cut_is_at_the_start_of_the_line_where_the_match_begins() -> None:
    cut = strip_reply("new text\nOn Monday John wrote:\n> old", ["/wrote:/"])
    assert (cut.text, cut.line) == ("new text", 2)


def test_regex_is_case_insensitive_and_multiline() -> None:
    cut = strip_reply("new\nfoo\nON MONDAY JOHN WROTE:\n> old", ["/^on .* wrote:$/"])
    assert cut.line == 3


def test_regex_spanning_lines_cuts_where_it_begins() -> None:
    body = "new\n\nOn Mon, Jan 5, 2026 at 10:00 AM John Smith <\njohn@example.com> wrote:\n\n> old"
    cut = strip_reply(body, [r"/^On [^\n]*<\n[^\n]*> wrote:$/"])
    assert (cut.text, cut.line) == ("new", 3)


def test_cut_on_the_first_line_keeps_the_whole_body() -> None:
    body = "-----Original Message-----\nold\n\nnew at the bottom\n"
    assert strip_reply(body, [ORIGINAL]) == ReplyCut(body, None, None, (), quote_line=1, quote_separator=ORIGINAL)


def test_only_blank_lines_before_the_cut_keeps_the_whole_body() -> None:
    body = "\n  \n\t\n-----Original Message-----\nold"
    assert strip_reply(body, [ORIGINAL]) == ReplyCut(body, None, None, (), quote_line=4, quote_separator=ORIGINAL)


def test_first_line_match_wins_even_if_a_later_line_would_leave_text() -> None:
    """Earliest match decides; when it leaves nothing the body is kept, no second-best is tried."""
    body = "On 5 May Bob wrote:\n> hi\nanswer\n-----Original Message-----\nold"
    assert strip_reply(body, [ORIGINAL, "/wrote:$/"]).separator is None


def test_crlf_is_normalised() -> None:
    cut = strip_reply("Hello\r\nthere\r\n\r\n-----Original Message-----\r\nold\r\n", [ORIGINAL])
    assert (cut.text, cut.line) == ("Hello\nthere", 4)
    assert strip_reply("a\r\nb", []).text == "a\nb"


def test_non_ascii_body_and_separator() -> None:
    body = "Grüße aus Köln 東京\n\n-----URSPRÜNGLICHE NACHRICHT-----\nalt"
    cut = strip_reply(body, ["-----Ursprüngliche Nachricht-----"])
    assert (cut.text, cut.line) == ("Grüße aus Köln 東京", 3)


def test_lone_surrogates_survive() -> None:
    body = "caf\udce9\n-----Original Message-----\nold"
    assert strip_reply(body, [ORIGINAL]).text == "caf\udce9"


def test_no_separators() -> None:
    assert strip_reply("x\ny", []) == ReplyCut("x\ny", None, None, ())


def test_invalid_stored_separators_are_skipped_with_a_reason() -> None:
    body = "new\n-----Original Message-----\nold"
    cut = strip_reply(body, [r"/(a)\1/", "", "/x*/", ORIGINAL])
    assert (cut.text, cut.separator, cut.line) == ("new", ORIGINAL, 2)
    assert len(cut.skipped) == 3
    assert cut.skipped[0].startswith(r"separator '/(a)\1/' skipped: ")
    assert "backreferences" in cut.skipped[0]
    assert cut.skipped[1].startswith("separator '' skipped: ")
    assert cut.skipped[2].startswith("separator '/x*/' skipped: ")


class _Exploding:
    """A compiled pattern whose search fails, as RE2 does when it runs out of memory."""

    def search(self, text: bytes, pos: int | None = None, endpos: int | None = None) -> None:
        raise RuntimeError("DFA out of memory")

    def finditer(self, text: bytes) -> Iterator[object]:
        return iter(())


def _no_combined_matcher(patterns: tuple[str, ...]) -> object:
    raise RuntimeError("RE2 out of memory for the combined pattern")


def test_separator_that_raises_while_searching_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(separator_search, "_combined_matcher", _no_combined_matcher)
    monkeypatch.setattr(separators_module, "compiled_regex", lambda body: _Exploding())
    cut = strip_reply("new\n-----Original Message-----\nold", ["/exploding-only-here/", ORIGINAL])
    assert (cut.text, cut.separator) == ("new", ORIGINAL)
    assert cut.skipped == ("separator '/exploding-only-here/' skipped: DFA out of memory",)


# --- strip_reply with the defaults, on real client output -----------------------------------------------

FUSCE = "Fusce bibendum, quam hendrerit sagittis tempor."

GMAIL = """Hello

On Mon, Apr 2, 2012 at 6:26 PM, Megan One <xxx@gmail.com> wrote:

> Hi
"""

GMAIL_WRAPPED = """Fusce bibendum, quam hendrerit sagittis tempor.

On Mon, Aug 26, 2019 at 4:37 PM The Hiring Engine <
a-really-long-automated-email+1234556@humanresources.com> wrote:

> Test
> Respond
"""

APPLE_MAIL = """Hello
> On 22 Aug 2015, at 19:21, Adam Renberg <tgwizard@gmail.com> wrote:
>
> Hi there!
"""

IPHONE = """Hello

Sent from my iPhone

On Apr 3, 2012, at 4:19 PM, bob <bob@example.com> wrote:

> Hi
"""

OUTLOOK = """Hello

From: xxx@xxx.mailgun.org [mailto:xxx@xxx.mailgun.org]
Sent: March-09-12 4:22 PM
To: Dan Le
Subject: The manager has commented on your Loop

Hi dan.le@example.com<mailto:dan.le@example.com>,
"""

OUTLOOK_BOLD_HEADERS = """Outlook with a reply


 ------------------------------

*From:* Google Apps Sync Team [mailto:mail-noreply@google.com]
*Sent:* Thursday, February 09, 2012 1:36 PM
*To:* jow@xxxx.com
*Subject:* Google Apps Sync was updated!



Dear Google Apps Sync user,
"""

# Outlook leaves a space at the end of each wrapped header line; written as "\x20" so editors keep it.
OUTLOOK_SPLIT_FROM = """Fusce bibendum, quam hendrerit sagittis tempor.

From: Human Resources\x20
<a-really-long-automated-email+1234556@humanresources.com>\x20
Sent: Monday, August 26, 2019 4:37 PM
To: Abhishek Kona <abhishek.kona@company.com>
Subject: A new message from applicant

Here's a new person:
"""

OUTLOOK_WEB = """Fusce bibendum, quam hendrerit sagittis tempor.
________________________________
From: The Hiring Engine Automation <job-applicant-inbound+65560@hiringenginemail.com>
Sent: Wednesday, September 25, 2019 5:45 PM
To: shazzwrd@msn.com <shazzwrd@msn.com>
Subject: Your application for Local CDL A Driver at Republic Transport

Hi Kevin
"""

GERMAN_OUTLOOK = """Fusce bibendum, quam hendrerit sagittis tempor.

-----Ursprüngliche Nachricht-----
Von: Max Mustermann <max.m@beispiel.de>
An: Erika Musterfrau <e.m@beispiel.de>
Betreff: Ihre Anfrage
Datum: 25.11.2025 15:00

This is the original message content.
"""

THUNDERBIRD_BOTTOM_POSTED = """On 04/02/2012 06:26 PM, Megan One wrote:
> Hi
Hello
"""

YAHOO = """Hello


----- Original Message -----
From: "bob@xxx.mailgun.org" <bob@xxx.mailgun.org>
To: xxx@gmail.com
Cc:
Sent: Monday, April 2, 2012 5:44 PM
Subject: Test

Hi
"""

GERMAN_GMAIL = """Fusce bibendum, quam hendrerit sagittis tempor.

Am 13.12.2017 21:11 schrieb "John Doe - Stripe <s.test.i@mail.stripe.com>:

Hi there!
"""

FRENCH_GMAIL_WRAPPED = """Fusce bibendum, quam hendrerit sagittis tempor.

Le lun. 15 nov. 2021 à 19:42, John - Acme <john@acme.supportcorp.com>
a écrit :

Etiam non sagittis orci.
"""

NORWEGIAN_GMAIL_WRAPPED = """Fusce bibendum, quam hendrerit sagittis tempor.

tir. 18. apr. 2017 kl. 13:09 skrev Test user <test@example.com
>:

> Ok. Thanks.
"""

POLISH_GMAIL = """Thank you very much.

W dniu 7 stycznia 2015 15:24 użytkownik Paweł Brzoski <pbrzoski91@gmail.com> napisał:

This is my previous mail
"""

CHINESE_APPLE = """Thank you very much.

在 2016年11月8日，下午2:23，Test user <test@example.com> 写道：

This is my previous mail
"""


@pytest.mark.parametrize(
    ("client", "body", "expected", "line"),
    [
        ("Gmail", GMAIL, "Hello", 3),
        ("Gmail, wrapped attribution", GMAIL_WRAPPED, FUSCE, 3),
        ("Apple Mail", APPLE_MAIL, "Hello", 2),
        ("iPhone", IPHONE, "Hello", 3),
        ("Outlook", OUTLOOK, "Hello", 3),
        ("Outlook, bold headers under a rule", OUTLOOK_BOLD_HEADERS, "Outlook with a reply", 4),
        ("Outlook, wrapped From", OUTLOOK_SPLIT_FROM, FUSCE, 3),
        ("Outlook web", OUTLOOK_WEB, FUSCE, 2),
        ("German Outlook", GERMAN_OUTLOOK, FUSCE, 3),
        ("Yahoo", YAHOO, "Hello", 4),
        ("German Gmail", GERMAN_GMAIL, FUSCE, 3),
        ("French Gmail, wrapped", FRENCH_GMAIL_WRAPPED, FUSCE, 3),
        ("Norwegian Gmail, wrapped", NORWEGIAN_GMAIL_WRAPPED, FUSCE, 3),
        ("Polish Gmail", POLISH_GMAIL, "Thank you very much.", 3),
        ("Chinese Apple Mail", CHINESE_APPLE, "Thank you very much.", 3),
    ],
)
def test_defaults_on_real_clients(client: str, body: str, expected: str, line: int) -> None:
    cut = strip_reply(body, DEFAULT_SEPARATORS)
    assert (cut.text, cut.line) == (expected, line), client
    assert cut.skipped == ()


def test_defaults_keep_a_bottom_posted_thunderbird_reply_whole() -> None:
    assert strip_reply(THUNDERBIRD_BOTTOM_POSTED, DEFAULT_SEPARATORS).text == THUNDERBIRD_BOTTOM_POSTED


@pytest.mark.parametrize(
    "header",
    [
        "On Mon, Jan 5, 2026 at 10:00 AM John Smith <john@example.com> wrote:",
        "On Mon, Jan 5, 2026 at 10:00 AM John Smith <\njohn@example.com> wrote:",
        "On Tue, 16 Nov 2021, 12:34 pm John - Acme <john@acme.supportcorp.com>\nwrote:",
        "On 5 Jan 2026, at 10:00, John Smith wrote:",
        "---- On Wed, 24 Feb 2021 14:02:50 +0530 john@gmail.com wrote ----",
        "Am 25.06.2015 um 10:55 schrieb Test user:",
        "Am Mo., 5. Jan. 2026 um 10:00 Uhr schrieb John Smith <john@example.com>:",
        "Am Mo., 5. Jan. 2026 um 10:00 Uhr schrieb John Smith <\njohn@example.com>:",
        "Le 19 mars 2014 10:37, Cédric Lombardot <cedric.lombardot@gmail.com> a écrit :",
        "Le 19/03/2014 11:34, Georges du chemin a écrit\u00a0:",
        "Le lun. 5 janv. 2026 à 10:00, John Smith <john@example.com> a\u00a0écrit\u202f:",
        "Le lun. 5 janv. 2026 à 10:00, John Smith <john@example.com>\na écrit :",
        "El 19/03/2014 11:34, Juan Pérez <juan.perez@mailcatch.com> escribió:",
        "El lun, 5 ene 2026 a las 10:00, John Smith (<\njohn@example.com>) escribió:",
        "Op ma 5 jan. 2026 om 10:00 schreef John Smith <john@example.com>:",
        "Op ma 5 jan. 2026 om 10:00 schreef John Smith <\njohn@example.com>:",
        "Em seg., 5 de jan. de 2026 às 10:00, John Smith <john@example.com> escreveu:",
        "Em seg., 5 de jan. de 2026 às 10:00, John Smith <\njohn@example.com> escreveu:",
        "Il giorno lun 5 gen 2026 alle ore 10:00 John Smith <john@example.com> ha scritto:",
        "Den 08/06/2015 kl. 21.21 skrev Test user <test@example.com>:",
        "2014-03-20 8:48 GMT+01:00 Rémi Dolan <do_not_reply@dolan.com>:",
        "> On Mon, Jan 5, 2026 at 10:00 AM John Smith <john@example.com> wrote:",
    ],
)
def test_default_attribution_lines(header: str) -> None:
    cut = strip_reply(f"New text\n\n{header}\n\n> old text\n", DEFAULT_SEPARATORS)
    assert (cut.text, cut.line) == ("New text", 3)


@pytest.mark.parametrize(
    "header",
    [
        "From: Bob <bob@example.com>\nSent: Monday, January 5, 2026 10:00\nTo: Help <help@example.com>",
        "Von: Max <max@beispiel.de>\nGesendet: Montag, 5. Januar 2026 10:00\nAn: Hilfe",
        "De : Jean <jean@exemple.fr>\nEnvoyé : lundi 5 janvier 2026 10:00\nÀ : Aide",
        "De\u00a0: Jean <jean@exemple.fr>\nEnvoyé\u00a0: lundi 5 janvier 2026 10:00",
        "De: Juan <juan@ejemplo.es>\nEnviado: lunes, 5 de enero de 2026 10:00\nPara: Ayuda",
        "Van: Jan <jan@voorbeeld.nl>\nVerzonden: maandag 5 januari 2026 10:00\nAan: Hulp",
        "De: João <joao@exemplo.pt>\nEnviada em: segunda-feira, 5 de janeiro de 2026 10:00\nPara: Ajuda",
        "Da: Gianni <gianni@esempio.it>\nInviato: lunedì 5 gennaio 2026 10:00\nA: Aiuto",
        "From: Human Resources\n<hr@example.com>\nSent: Monday, August 26, 2019 4:37 PM",
        "> From: Bob <bob@example.com>\n> Date: Mon, 5 Jan 2026 10:00\n> Subject: Printer",
        "发件人: Company Questions <questions@company.com>\n发送时间: 2017年8月2日 15:37\n收件人: Sylvie",
    ],
)
def test_default_header_blocks(header: str) -> None:
    cut = strip_reply(f"New text\n\n{header}\n\nold text\n", DEFAULT_SEPARATORS)
    assert (cut.text, cut.line) == ("New text", 3)


@pytest.mark.parametrize(
    "body",
    [
        # crisp-oss/email-reply-parser's false-positive fixtures
        "On the surface, this looks like a quote header but it's not.\n\n"
        "On the other hand, we should be careful about edge cases.\n"
        "On average, this parser works well.\n\n"
        "On a separate note, I wanted to mention that performance is great.\n",
        "Here are different timestamp formats that might cause issues:\n\n2024-01-15 14:30:25\n"
        "2024/01/15 14:30:25\n15.01.2024 14:30\n01/15/2024 at 2:30 PM\nJan 15, 2024 at 14:30\n\n"
        "All of these are just examples in my content, not quote headers.\n",
        "Hello,\n\nI'm writing you because of:\n-- first point needs to be checked\n"
        "-- second point needs to be checked\n\nThanks!",
        # github/email_reply_parser's "a complex body with only one fragment"
        "One: Here's what I've got.\n\n- This would be the first bullet point that wraps to the second line\n"
        "to the next\n- This is the second bullet point and it doesn't wrap\n\nTwo:\n"
        "- Here is another bullet point\n- And another one\n",
        # prose that merely looks like a header
        "Hi,\nFrom: the manager, a note about the budget.\nPlease review it by Friday.\nThanks",
        "Hi\n\nSomething wrote:\nmore text",
        "Hi\nOn Monday the printer jammed again, as I wrote:\nit needs a new roller.\n",
        "Hi\nOn Monday the printer jammed.\nAs I wrote:\nit needs a new roller.\n",
        "Hi\nPlease write to <help@example.com> about it:\nthanks",
        "Hi\n__________\nshort rule lines are decoration\n",
    ],
)
def test_defaults_do_not_cut_ordinary_text(body: str) -> None:
    cut = strip_reply(body, DEFAULT_SEPARATORS)
    assert (cut.separator, cut.text) == (None, body)


# --- size -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_big_body_without_any_separator() -> None:
    lines = (f"Line {number} of a long body, with On, wrote and From: in it.\n" for number in range(90_000))
    body = "".join(lines)
    assert len(body) > 5_000_000
    assert strip_reply(body, DEFAULT_SEPARATORS) == ReplyCut(body, None, None, ())


@pytest.mark.slow
def test_big_body_with_the_separator_at_the_end() -> None:
    body = "Hi\n" + "text line\n" * 500_000 + "-----Original Message-----\nold"
    cut = strip_reply(body, DEFAULT_SEPARATORS)
    assert (cut.separator, cut.line) == (ORIGINAL, 500_002)
    assert cut.text == body[: body.index("-----Original")].rstrip()


@pytest.mark.slow
def test_hundred_thousand_quoted_lines() -> None:
    quoted = "> On 5 May I wrote the line From: below\n" * 100_000
    header = "On Mon, Jan 5, 2026 at 10:00 AM Bob <bob@example.com> wrote:\n"
    cut = strip_reply("Answer\n\n" + header + quoted, DEFAULT_SEPARATORS)
    assert (cut.text, cut.line) == ("Answer", 3)
    assert strip_reply("Answer\n\n" + quoted, DEFAULT_SEPARATORS).separator is None


@pytest.mark.slow
def test_one_huge_line() -> None:
    body = "On 5 " + "x" * 5_000_000 + " wrote it"
    assert strip_reply("new\n" + body, DEFAULT_SEPARATORS).separator is None
