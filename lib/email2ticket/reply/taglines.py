"""Device and app taglines ("Sent from my iPhone", "Get Outlook for Android"), and tidying the end of a comment.

A tagline is the mail app talking, not the author: it is removed from a reply's comment, while the author's
own signature above it is kept (it belongs to the message). A tagline also ends what the author wrote: a
mobile client puts it right above the quoted history, which it often leaves unmarked (willdurand
email_15: "Sent from my Wiko RIDGE FAB 4G" and then the previous message). So taglines are reply
separators, in the built-in list as data, one entry per language, and `separators remove` can drop one.

Each pattern needs a whole line that starts with the phrase and names a device or a mail app within a few
words, without the commas and clauses of a sentence: "Sent from my desk, is much easier than my phone."
and "The notification was sent from my iPhone app" are prose and stay.

`tidy_comment` then removes what a cut leaves dangling at the end: the "On <date>, Bob wrote:" line of a
quote whose marker was cut below it (HTML quotes), and the blank lines around the text.
"""

from __future__ import annotations

import re

# Phones, tablets, operating systems and mail apps, in the forms taglines use them ("iPhone'a", "smartfona").
_DEVICES = (
    "iPhone|iPad|iPod|Apple Watch|Android|BlackBerry|Windows|Outlook|Mail|E-Mail|Email|Yahoo|AOL|Gmail"
    "|Samsung|Galaxy|Huawei|Honor|Xiaomi|Redmi|Motorola|Nokia|Sony|Xperia|HTC|LG|Pixel|OnePlus|Oppo|Wiko"
    "|Lenovo|Fairphone|Smartphone|Handy|Mobiltelefon|Tablet|phone|mobile|Mobil|móvil|movil|celular|telemóvel"
    "|cellulare|telefono|téléphone|telefoon|mobiel|telefon|apparaat|appareil|dispositivo|device|Surface"
    "|WEB\\.DE|GMX|T-Online|Proton|Tuta|Tutanota|Zoho|BlueMail|Blue Mail|TypeApp|Spark|Airmail|Edison|myMail"
    "|Newton|Xfinity|Verizon|AT&T|Sprint|T-Mobile|urządzenia|telefonu|smartfona|смартфона|телефона|айфона"
    "|iPhone|Почты|Почта|Яндекс|Mail\\.ru"
)
_LINK = r"([ \t]*(<[^\n<>]*>|\[[^\n\[\]]*\]))?"  # Outlook glues "<https://aka.ms/o0ukef>" to its tagline
_END = rf"[.!]?{_LINK}[ \t]*$"
_FEW_WORDS = r"[^\s,;:!?]*(?:[ \t]+[^\s,;:!?]+){0,4}"  # the rest of a device's name ("iPhone 12 Pro", "iPhone'a")
_START = r"^[ \t>]*"


def _tagline(phrases: str) -> str:
    """A line starting with one of `phrases` that names a device or app within a few words.

    What follows the device is a few words, not up to 40 characters: a count there let every device name on
    the line start a count of its own, and RE2's DFA then tracked every combination of them (a body of lines
    like "Sent from LGxxLGLG...," took 20 s for 2 MB; tests/reply/test_reply_deadline.py). The count before
    the device is entered from the run of spaces, so its threads stay in step.
    """
    return f"/{_START}({phrases})[ \\t]+[^\\n,;:!?]{{0,40}}({_DEVICES}){_FEW_WORDS}{_END}/"


DEVICE_TAGLINES: tuple[str, ...] = (
    # "Sent from my <anything short>": specific enough on its own ("Sent from my Wiko RIDGE FAB 4G").
    f"/{_START}Sent from my [^\\n,;:!?<>]{{1,40}}{_END}/",
    _tagline("Sent from|Sent with|Sent via|Sent using|Sent on"),
    f"/{_START}(Get|Download) Outlook for (iOS|Android){_END}/",
    _tagline("Von meinem|Von meiner|Gesendet von|Gesendet mit|Gesendet vom|Gesendet über"),
    _tagline("Envoyé de mon|Envoyé depuis mon|Envoyé à partir de|Envoyé avec|Envoyé de|Obtenir|Télécharger"),
    _tagline("Enviado desde mi|Enviado desde|Enviado con|Obtener|Descargar"),
    _tagline("Inviato da|Inviato dal mio|Inviato con|Scarica|Ottieni"),
    _tagline("Enviado do meu|Enviado do|Enviado de meu|Enviado a partir do|Obter o|Baixe o"),
    _tagline(
        "Verzonden vanaf mijn|Verzonden vanaf|Verstuurd vanaf mijn|Verstuurd vanaf|Verzonden met|Verzonden vanuit"
    ),
    _tagline("Skickat från min|Skickat från|Hämta|Skaffa"),
    _tagline("Sendt fra min|Sendt fra|Hent|Få"),
    _tagline("Wysłane z mojego|Wysłane z|Wysłano z mojego|Wysłano z|Pobierz"),
    _tagline("Отправлено с|Отправлено из|Отправлено через"),
    # Japanese and Chinese put the device first or glue it to the phrase: "iPhoneから送信", "发自我的iPhone".
    f"/{_START}({_DEVICES})[^\\n]{{0,20}}から送信{_END}/",
    f"/{_START}Outlook for (iOS|Android) を入手{_END}/",
    f"/{_START}Outlook (voor|für|pour|para|per|för|til|for|dla) (iOS|Android) (downloaden|herunterladen){_END}/",
    f"/{_START}(发自我的|从我的|從我的|寄自我的|发自)[ \\t]*({_DEVICES})[^\\n]{{0,20}}{_END}/",
    f"/{_START}(获取|取得) Outlook for (iOS|Android){_END}/",
)

# The line right above a cut that introduced the quote: ends with a colon, and names someone (an address),
# a date or time, or says who wrote.
_ATTRIBUTION = re.compile(
    r"(@|\d|\b(wrote|writes|schrieb|écrit|escribió|escreveu|schreef|skrev|scritto|napisał|pisze|kirjoitti)\b"
    r"|написал|写道|寫道)[^\n]*[:：]\s*\Z",
    re.IGNORECASE,
)


_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


def tidy_comment(text: str, cut: bool) -> str:
    """The comment without blank lines around it and, after a cut, without a dangling attribution line.

    Only after a cut: then the line is known to have introduced quoted history that is gone. A message that
    was not cut keeps its last line, whatever it looks like.
    """
    text = _LEADING_BLANK_LINES.sub("", text.rstrip())
    if not cut:
        return text
    head, _, last = text.rpartition("\n")
    if _ATTRIBUTION.search(last) and last.lstrip()[:1] != ">" and head.strip():
        return head.rstrip()
    return text
