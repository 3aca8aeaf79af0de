"""The built-in reply separators: where each major mail client starts the quoted history, in many languages.

This module is data. A separator is plain text (matched at a line start, after whitespace and `>` quote marks,
tolerating re-wrapped whitespace and any length of dash or underscore runs) or a /regular expression/ (RE2,
case-insensitive and multi-line; the cut is at the start of the line where the match begins, blank lines at the
start of a match skipped). `reply/extract.py` does the matching; the admin edits this list with `email2ticket
separators add/remove`, and the edits are stored as differences, so an upgrade that improves an entry here
reaches every installation that did not remove it.

Each client family and language is its own entry so that an admin can remove one without losing the others.
Regular expressions are written to stay on one line or a few, and to need something a sentence in ordinary
prose does not have (a date or time, an address in <angle brackets>, a second header line), because a false
separator silently drops the customer's words (tests/test_reply.py keeps a catalogue of such prose).
"""

from __future__ import annotations

from .taglines import DEVICE_TAGLINES

# Field names of the header block that Outlook, webmails and mobile clients put above the quoted message,
# by language. FROM_LABELS start a block; OTHER_LABELS are the fields that follow it. "Message du" is the
# French webmail (Orange, SFR) date line; "De" doubles as French/Spanish/Portuguese "From".
FROM_LABELS = (
    "From|Von|De|Van|Da|Fra|Från|Od|От|Від|Lähettäjä|Feladó|Kimden|Odesílatel|Από"
    "|发件人|發件人|寄件者|差出人|送信者|보낸 사람|Message du"
)
OTHER_LABELS = (
    "Sent|Date|To|Subject|Cc|Reply-To"  # en
    "|Gesendet|Datum|An|Betreff|Kopie"  # de
    "|Envoyé|Envoyé le|Envoyé par|À|A|Objet|Sujet|Copie à"  # fr
    "|Enviado|Enviada em|Enviado el|Fecha|Para|Asunto"  # es, pt
    "|Data|Assunto|Inviato|Oggetto"  # pt, it
    "|Verzonden|Verstuurd|Aan|Onderwerp"  # nl
    "|Sendt|Dato|Til|Emne|Skickat|Till|Ämne|Kopia"  # da, no, sv
    "|Wysłano|Wysłane|Do|Temat|DW"  # pl
    "|Отправлено|Дата|Кому|Тема|Копия"  # ru
    "|Lähetetty|Vastaanottaja|Aihe|Päivämäärä|Elküldve|Címzett|Tárgy|Gönderildi|Kime|Konu"  # fi, hu, tr
    "|Odesláno|Komu|Předmět"  # cs
    "|发送时间|发送日期|收件人|主题|日期|抄送|寄件日期|收件者|主旨|副本"  # zh
    "|送信日時|日付|宛先|件名|보낸 날짜|받는 사람|제목"  # ja, ko
)
_FIELD_END = r"\*?[ \t\x{00A0}]*[:：]"  # "From:", "De :" (French space), "*From:*" (bold turned into text)
_LINE_START = r"[ \t>]*\*?"
# A header block starts below a rule line (dashes, underscores, equals signs) or at least below some line, never
# on the body's first line: a reply that begins with header lines of its own (mail-parser-reply email_pl_1_2)
# is not quoted history there, and a match on the first line would keep the whole body anyway.
_BLOCK_START = r"(?:^[ \t>]*[-_=]{4,}[ \t]*\n(?:[ \t>]*\n)?|\n)"


# A From value that is a mailbox and nothing else: an optional name ("Bob", "bob@x.com", "\"Doe, J.\""), then
# an address, bare or in angle brackets, and the end of the line.
_MAILBOX_ONLY = r"[ \t]*(\"?[^\n<>\"]{0,80}\"?[ \t]*)?<?[^\n<>@ \t]+@[^\n<> \t]+>?[ \t]*$"


def _header_block(first: str, then: str) -> str:
    """A line with a `first` field, then within three lines one with a `then` field."""
    return (
        f"/{_BLOCK_START}{_LINE_START}({first}){_FIELD_END}[^\\n]*\\n"
        f"(?:[^\\n]*\\n){{0,2}}{_LINE_START}({then}){_FIELD_END}/"
    )


# The verb of "<someone> wrote:" by language, for attributions that carry the sender's <address>.
_WROTE = (
    "wrote|writes|schrieb|schreibt|a écrit|escribió|escreveu|schreef|skrev|ha scritto|scrisse"
    "|napisał|napisała|napisał\\(a\\)|pisze|написал|написала|написал\\(а\\)|kirjoitti|napsal|napsal\\(a\\)"
    "|írta|yazdı|şunu yazdı|写道|寫道|のメール|님이 작성"
)

DEFAULT_SEPARATORS: tuple[str, ...] = (
    # Our own acknowledgements and notifications start with this line (outbound/render.py), so a reply to one is
    # cut there even when the mail client quotes without a header line.
    "##- Please type your reply above this line -##",
    # Outlook desktop ("-----Original Message-----" and its translations, also Lotus Notes and AOL), Yahoo,
    # Zimbra and Thunderbird ("----- Original Message -----", "-------- Original Message --------"): plain
    # separators match any run of three or more dashes around the words.
    "-----Original Message-----",
    "-----Ursprüngliche Nachricht-----",
    "-----Message d'origine-----",
    "-----Mensaje original-----",
    "-----Oorspronkelijk bericht-----",
    "-----Mensagem original-----",
    "-----Messaggio originale-----",
    "-----Oprindelig meddelelse-----",
    "-----Opprinnelig melding-----",
    "-----Ursprungligt meddelande-----",
    "-----Wiadomość oryginalna-----",
    "-----Oryginalna wiadomość-----",
    "-----Исходное сообщение-----",
    "-----Alkuperäinen viesti-----",
    "-----Originalmeddelande-----",
    "-----Původní zpráva-----",
    "-----元のメッセージ-----",
    "-----原始邮件-----",
    "-----原始郵件-----",
    "-----原始信息-----",
    "----- Mail original -----",
    "----- Ursprüngliche Mail -----",
    "-------- Oprindelig besked --------",
    # A message forwarded inside a reply (Gmail and Thunderbird with dashes, Apple Mail with a colon) is
    # history too; a reply that is only a forward then keeps its whole body instead of a lone marker line.
    "-----Forwarded message-----",
    "Begin forwarded message:",
    "-----Weitergeleitete Nachricht-----",
    "Anfang der weitergeleiteten Nachricht:",
    "-----Message transféré-----",
    "Début du message réexpédié :",
    "-----Mensaje reenviado-----",
    "Inicio del mensaje reenviado:",
    "-----Messaggio inoltrato-----",
    "Inizio messaggio inoltrato:",
    "-----Mensagem encaminhada-----",
    "Início da mensagem reencaminhada:",
    "-----Doorgestuurd bericht-----",
    "Begin doorgestuurd bericht:",
    "-----Vidarebefordrat meddelande-----",
    "-----Videresendt meddelelse-----",
    "-----Videresendt melding-----",
    "-----Wiadomość przekazana dalej-----",
    "-----Пересылаемое сообщение-----",
    "-----転送されたメッセージ-----",
    "-----已转发邮件-----",
    "-----轉寄的郵件-----",
    # The rule line Outlook (desktop, web and mobile) puts above its From: block.
    "________________________________",
    # The From:/Sent:/To:/Subject: block of Outlook, Lotus/HCL Notes, Hotmail and most webmails, localised:
    # a From line and another header line within three lines, in either order (Hotmail quotes "Subject:"
    # first). The cut moves up to a rule line right above the block.
    _header_block(FROM_LABELS, OTHER_LABELS),
    _header_block(OTHER_LABELS, FROM_LABELS),
    # A lone From line whose value is only a mailbox ("From: Bob <bob@example.com>"), below some other line.
    f"/\\n{_LINE_START}({FROM_LABELS}){_FIELD_END}{_MAILBOX_ONLY}/",
    # "On <date>, <name> wrote:" (Gmail, Apple Mail, Thunderbird, Yahoo) and its translations. The line
    # must contain a digit (every client writes a date or a time) and end with the verb and a colon, on the
    # same line or, as Gmail wraps it, the next one: "On the other hand, as I wrote:" mid-paragraph does
    # not cut. Zoho writes "---- On <date> <name> wrote ----", Zimbra puts dashes in front. German, Dutch
    # and the Scandinavian languages put the name after the verb.
    r"/^[ \t>]*(-+ )?On [^\n]*[0-9][^\n]*(\n[^\n]*)?\bwrote(:|:?[ \t]+-+)?[ \t]*$/",
    r"/^[ \t>]*(-+ )?Am [^\n]*[0-9][^\n]*(\bschrieb\b[^\n]*(\n[^\n]*)?|\n[^\n]*\bschrieb\b[^\n]*):[ \t]*$/",
    r"/^[ \t>]*(-+ )?Le [^\n]*[0-9][^\n]*(\n[^\n]*)?\ba[ \t\x{00A0}]+écrit[ \t\x{00A0}\x{202F}]*:[ \t]*$/",
    r"/^[ \t>]*(-+ )?El [^\n]*[0-9][^\n]*(\n[^\n]*)?\b(escribió|ha escrit):[ \t]*$/",
    r"/^[ \t>]*(-+ )?Op [^\n]*[0-9][^\n]*(\bschreef\b[^\n]*(\n[^\n]*)?|\n[^\n]*\bschreef\b[^\n]*):[ \t]*$/",
    r"/^[ \t>]*(-+ )?Em [^\n]*[0-9][^\n]*(\n[^\n]*)?\bescreveu:[ \t]*$/",
    # Apple Mail in Dutch and Polish, Yahoo and Apple Mail in German: "Op <date> heeft <name> het volgende
    # geschreven:", "Wiadomość napisana przez <name> w dniu <date>:", "Am <date> hat <name> Folgendes geschrieben:".
    r"/^[ \t>]*Op [^\n]*[0-9][^\n]*(\n[^\n]*)?het volgende geschreven:[ \t]*$/",
    r"/^[ \t>]*Wiadomość napisana przez [^\n]*(\n[^\n]*)?[0-9][^\n]*:[ \t]*$/",
    r"/^[ \t>]*Am [^\n]*[0-9][^\n]*(\n[^\n]*)?Folgendes geschrieben:[ \t]*$/",
    r"/^[ \t>]*(-+ )?(Il|In data) [^\n]*[0-9][^\n]*(\n[^\n]*)?\bha scritto:[ \t]*$/",
    r"/^[^\n]*[0-9][^\n]*(\bskrev\b[^\n]*(\n[^\n]*)?|\n[^\n]*\bskrev\b[^\n]*):[ \t]*$/",
    # Polish ("W dniu <date> <name> pisze:", "Dnia <date> <name> napisał(a):"), Russian and Ukrainian
    # ("<date> пользователь <name> написал:"), Finnish, Czech, Hungarian and Turkish attributions.
    r"/^[ \t>]*(W dniu|Dnia) [^\n]*[0-9][^\n]*(\n[^\n]*)?(pisze|napisał|napisała|napisał\(a\)):[ \t]*$/",
    r"/^[^\n]*[0-9][^\n]*(\n[^\n]*)?(написал|написала|написал\(а\)|написав|написала\(а\)):[ \t]*$/",
    r"/^[^\n]*[0-9][^\n]*(\n[^\n]*)?(kirjoitti|napsal|napsal\(a\)|írta|yazdı):[ \t]*$/",
    # Japanese, Chinese and Korean clients (Apple Mail, Thunderbird, Gmail) with or without the address:
    # "2026/01/05 10:00、山田のメール:", "在 2026年1月5日 10:00，王 写道：", "山田 さんは書きました:".
    r"/^[^\n]*[0-9][^\n]*(\n[^\n]*)?(のメール|のメッセージ|写道|寫道|작성)[ \t]*[:：][ \t]*$/",
    r"/^[^\n]{1,100}さんは書きました[ \t]*[:：][ \t]*$/",
    # Lotus/HCL Notes: "<name> wrote on 05.01.2026 10:00:00:" and its translations.
    r"/^[ \t>]*[^\n]{1,100}\b(wrote on|schrieb am|a écrit le|escribió el|ha scritto il|schreef op|escreveu em"
    r"|skrev den|napisał dnia) [^\n]*[0-9][^\n]*:[ \t]*$/",
    # Whatever the language: a line with a date or time that ends with the sender's <address> and at most a
    # short verb before the colon, as Gmail writes it in Polish, Russian, Finnish, Chinese, Japanese or
    # Korean ("2014-03-20 8:48 GMT+01:00 Rémi <remi@example.com>:", "... <a@b.c> 写道："), also when the
    # address or its angle bracket was wrapped onto the next line (Android: "<\nbob@example.com> написал:").
    r"/^[^\n]*[0-9][^\n]*(\n[ \t>]*)?<(\n[ \t>]*)?[^\n<>@ ]+@[^\n<> ]+>[^\n<>]{0,40}[:：][ \t]*$/",
    # "<name> <address> wrote:" without a date, in any of the languages above ("Test user <test@example.com>
    # schrieb:"): the address in angle brackets and the verb are what prose does not have.
    f"/^[^\\n]*<[^\\n<>@ ]+@[^\\n<> ]+>[^\\n<>]{{0,30}}({_WROTE})[ \\t\\x{{00A0}}\\x{{202F}}]*[:：][ \\t]*$/",
    # Help desks and ticket systems mark where a reply has to be typed.
    r"/^[ \t>#*=_-]*(please )?(type your reply|reply|respond) above this line\b/",
    # Device and app taglines ("Sent from my iPhone", "Get Outlook for Android", translations): the author's
    # message ends there, and what follows is the quoted history (see reply/taglines.py).
    *DEVICE_TAGLINES,
)
