"""How separators match: tolerance for re-wrapped and encoded markers, the built-in list in many languages, and
what must never cut (prose that merely looks like a marker)."""

from __future__ import annotations

import pytest

from email2ticket.reply.encoded_forms import decoded_view
from email2ticket.reply.extract import DEFAULT_SEPARATORS, strip_reply

ORIGINAL = "-----Original Message-----"


def cut_line(body: str, separators: tuple[str, ...] | list[str] = DEFAULT_SEPARATORS) -> tuple[str, int | None]:
    cut = strip_reply(body, separators)
    return cut.text, cut.line


# --- plain separators are tolerant ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "----- Original Message -----",  # Yahoo, AOL
        "-------- Original Message --------",  # Thunderbird
        "---Original Message---",
        "-----Original\u00a0Message-----",  # a no-break space from an HTML part
        "-----Original  \t Message-----",
        "-----Original\n> Message-----",  # re-wrapped inside a quote
        "> > -----ORIGINAL MESSAGE-----",
        "\u200e-----Original Message-----",  # Windows Mail's bidi marks
    ],
)
def test_plain_separator_tolerates_whitespace_wrapping_and_dash_runs(line: str) -> None:
    assert cut_line(f"new\n\n{line}\nold", [ORIGINAL]) == ("new", 3)


def test_a_bare_rule_line_keeps_its_length() -> None:
    rule = "_" * 32
    assert cut_line(f"new\n{'_' * 30}\nold", [rule]) == (f"new\n{'_' * 30}\nold", None)
    assert cut_line(f"new\n{'_' * 47}\nold", [rule]) == ("new", 2)


def test_admin_plain_separator_matches_when_wrapped() -> None:
    separator = "Bitte oberhalb dieser Zeile antworten"
    assert cut_line("Danke\n\n> Bitte oberhalb\n> dieser Zeile antworten\n> alt", [separator]) == ("Danke", 3)


# --- encoded forms of a separator -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected", "line"),
    [
        ("Neu\n\n-----Urspr=C3=BCngliche Nachricht-----\nVon: a", "Neu", 3),  # quoted-printable left undecoded
        ("New\n\nOn Mon, 5 Jan 2026 at 10:00, Bob <bob@example.com> wr=\note:\n> old", "New", 3),  # soft break
        ("Hallo\n\nVon:&nbsp;Bob &lt;bob@example.de&gt;\nGesendet:&nbsp;Montag\nAn: Hilfe\n\nalt", "Hallo", 3),
        ("Hello<br><br>-----Original Message-----<br>From: Bob<br>old", "Hello<br><br>", 1),  # HTML source as text
    ],
)
def test_separators_are_found_in_quoted_printable_and_html_forms(body: str, expected: str, line: int) -> None:
    assert cut_line(body) == (expected, line)


def test_the_comment_keeps_encoded_text_as_sent() -> None:
    body = "The data should be &gt; 100 and &lt; 200.\n\nOn Dec 15, 2024, John &lt;john@example.com&gt; wrote:\n> x"
    assert cut_line(body) == ("The data should be &gt; 100 and &lt; 200.", 3)


def test_plain_text_gets_no_decoded_view() -> None:
    assert decoded_view("Hello\n\nOn Monday, 5 Jan 2026, Bob wrote:\n> a = b\n") is None


def test_decoded_view_maps_back_to_the_text_as_sent() -> None:
    text = "a&amp;b<br>c=3Dd=\ne"
    view = decoded_view(text)
    assert view is not None
    assert view.text == "a&b\nc=de"
    assert text[view.sent_offset(view.text.index("c")) :].startswith("c=3Dd")


# --- header blocks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "От: Иван <ivan@example.ru>\nОтправлено: 5 января 2026 г. 10:00\nКому: Помощь",
        "Od: Jan <jan@example.pl>\nWysłano: poniedziałek, 5 stycznia 2026 10:00\nDo: Pomoc",
        "Från: Sven <sven@example.se>\nSkickat: den 5 januari 2026 10:00\nTill: Hjälp",
        "Fra: Ole <ole@example.dk>\nSendt: 5. januar 2026 10:00\nTil: Hjælp",
        "差出人: 田中 <tanaka@example.jp>\n送信日時: 2026年1月5日 10:00\n宛先: サポート",
        "发件人: 王 <wang@example.cn>\n发送时间: 2026年1月5日 10:00\n收件人: 支持",
        "Subject: Test\nFrom: bob@example.com\nTo: help@example.com",  # Hotmail quotes the subject first
        "Date: Mon, 5 Jan 2026 10:00\nSubject: Test\nFrom: bob@example.com",
        'Message du : 05/01/2026 10:00\nDe : "Bob" <bob@example.fr>\nA : aide@example.fr',  # French webmail
    ],
)
def test_header_blocks_in_more_languages_and_orders(header: str) -> None:
    assert cut_line(f"New text\n\n{header}\n\nold text\n") == ("New text", 3)


def test_a_header_block_right_below_a_signature_cuts() -> None:
    body = "Thanks\nBob\nFrom: Alice <alice@example.com>\nSent: Monday, 5 January 2026 10:00\nTo: Bob\n\nold"
    assert cut_line(body) == ("Thanks\nBob", 3)


def test_a_header_block_on_the_first_line_is_not_quoted_history() -> None:
    body = (
        "Od: Jan <jan@example.pl>\nWysłano: środa\nDo: Anna\n\nCzesc Anno\n\n"
        "W dniu 28.02.2023 14:00 Anna <a@b.pl> napisał(a):\n> x"
    )
    cut = strip_reply(body, DEFAULT_SEPARATORS)
    assert (cut.line, cut.text.endswith("Czesc Anno")) == (7, True)


def test_the_cut_of_a_header_block_is_at_its_first_line_not_the_blank_line_above() -> None:
    cut = strip_reply("New\n\n\nFrom: Bob <bob@example.com>\nSent: Monday\n", DEFAULT_SEPARATORS)
    assert (cut.text, cut.line, cut.quote_line) == ("New", 4, 4)


@pytest.mark.parametrize("label", ["From", "Van", "De", "Da", "Von"])
def test_a_lone_from_line_with_a_mailbox(label: str) -> None:
    body = f"\n{label}: foo@example.com <foo@example.com>\n\nMy email is <foo@example.com>"
    cut = strip_reply(body, DEFAULT_SEPARATORS)
    assert (cut.separator, cut.quote_line, cut.text) == (None, 2, body)  # nothing above it: the body is kept
    assert cut_line(f"Hi\n\n{label}: Bob <bob@example.com>\n\nold") == ("Hi", 3)


def test_tie_on_one_line_goes_to_the_separator_earlier_in_the_list() -> None:
    body = "new\n\nFrom: Bob <bob@example.com>\nSent: Monday\n"
    assert strip_reply(body, ["From:", *DEFAULT_SEPARATORS]).separator == "From:"
    assert strip_reply(body, [*DEFAULT_SEPARATORS, "From:"]).separator != "From:"


# --- attributions -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "W dniu 2015-01-07 14:23, pbrzoski91@gmail.com pisze:",
        "Dnia 28 lutego 2023 14:00 Anna Nowak <anna.nowak@example.com> napisał(a):",
        '02.04.2012 14:20 пользователь "bob@example.org" <\nbob@example.org> написал:',
        "Test user <test@example.com> schrieb:",
        "Test user <test@example.com> a écrit :",
        "John Doe/ACME wrote on 05.01.2026 10:00:00:",
        "Max Muster/ACME schrieb am 05.01.2026 10:00:00:",
        "ma 5.1.2026 klo 10.00 Bob Smith (bob@example.com) kirjoitti:",
        "Dne 05.01.2026 v 10:00 Bob Smith napsal(a):",
        "5 Oca 2026 Pzt, 10:00 tarihinde Bob <bob@example.com> şunu yazdı:",
        "2016. 11. 8. 오후 12:39 Test user <test@example.com> 작성:",
        "2016/11/08 14:26、Test user <test@example.com> のメッセージ:",
        "On Jun 17, 2017, at 14:15, Valerian - Crisp <test@gmail.com<\nmailto:test@gmail.com>> wrote:",
        "## Please type your reply above this line ##",
        "Op 5 jan. 2026 om 10:00 heeft Jan Jansen <jan@example.nl> het volgende geschreven:",
        "Wiadomość napisana przez Jan Kowalski w dniu 05.01.2026, o godz. 10:00:",
        "Am Montag, 5. Januar 2026, 10:00:00 MEZ hat Max <max@example.de> Folgendes geschrieben:",
        "2026/01/05 10:00、山田太郎のメール:",
        "在 2026年1月5日 10:00，王伟 写道：",
        "山田太郎 さんは書きました:",
        "Juan Pérez/ACME escribió el 05/01/2026 10:00:00:",
    ],
)
def test_more_attribution_lines(header: str) -> None:
    assert cut_line(f"New text\n\n{header}\n\n> old text\n") == ("New text", 3)


# --- device taglines --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tagline",
    [
        "Sent from my iPhone",
        "Sent from my Verizon Wireless BlackBerry",
        "Sent from my Wiko RIDGE FAB 4G",
        "Sent from my Samsung Galaxy smartphone.",
        "Get Outlook for Android",
        "Get Outlook for iOS<https://aka.ms/o0ukef>",
        "Sent from Mail for Windows 10",
        "Sent from Mail<https://go.microsoft.com/fwlink/?LinkId=550986> for Windows 10",
        "Sent from Yahoo Mail on Android",
        "Sent from TypeApp<http://www.typeapp.com/r?b=2621>",
        "Sent with Proton Mail secure email.",
        "Von meinem iPhone gesendet",
        "Gesendet von Outlook für Android<https://aka.ms/AAb9ysg>",
        "Envoyé de mon iPhone",
        "Envoyé à partir de Outlook pour iOS<https://aka.ms/o0ukef>",
        "Enviado desde mi iPhone",
        "Inviato da iPhone",
        "Enviado do meu iPhone",
        "Verzonden vanaf mijn iPhone",
        "Skickat från min iPhone",
        "Sendt fra min iPhone",
        "Wysłane z mojego iPhone'a",
        "Отправлено с iPhone",
        "iPhoneから送信",
        "Outlook voor iOS downloaden<https://aka.ms/o0ukef>",
        "-------- Originalmeddelande --------",
        "-------- 原始信息 --------",
        "发自我的iPhone",
    ],
)
def test_device_taglines_end_the_new_text(tagline: str) -> None:
    assert cut_line(f"Answer\n\nBob\n\n{tagline}\n\nOld message without a marker\n") == ("Answer\n\nBob", 5)


@pytest.mark.parametrize(
    "line",
    [
        "Sent from my desk, is much easier than my mobile phone.",
        "The notification was sent from my iPhone app to all users.",
        "This email was sent from our automated system, not Sent from my iPad.",
        "  // Sent from my custom mailer",
        "Gesendet von Herrn Müller am Montag",
        "Envoyé de Paris par la poste",
        "Enviado desde la oficina central",
        "Sendt fra kontoret i går",
        "Get well soon, and send the logs when you can.",
    ],
)
def test_prose_about_sending_is_not_a_tagline(line: str) -> None:
    body = f"Hello\n\n{line}\n\nThanks\n"
    assert cut_line(body) == (body, None)
