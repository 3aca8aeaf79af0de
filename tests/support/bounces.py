"""The catalogue of the real bounces in the shared corpus (support/corpus.py): for each sample what it is (which
MTA, which failure) and what must be read from it, and the samples that look like bounces but are not.

Where a sample leaves something out (no recipient in the text, no original Message-ID), the expectation says so
rather than skipping the assertion. signals/test_bounce.py checks each report; outbound/test_notifications.py
delivers each bounce through the executable.
"""

from __future__ import annotations

DSN = "RFC 3464 delivery-status report"
SUBJECT = "bounce subject from a system sender"

# path: (kind, recipients, status, original Message-IDs, detected_by)
CORPUS_BOUNCES: dict[str, tuple[str, tuple[str, ...], str | None, tuple[str, ...], str]] = {
    # Postfix, user unknown at Gmail; the returned message is attached whole.
    "flanker/messages/bounce/zed.eml": (
        "hard",
        ("asdfasdfasdfasdfasdfasdfewrqertrtyrthsfgdfgadfqeadvxzvz@gmail.com",),
        "5.1.1",
        ("<20090708054735.GC7578@example.com>",),
        DSN,
    ),
    # AOL "MAILBOX FULL" (552 5.2.2): Action: failed makes it hard, whatever the cause.
    "flanker/messages/bounce/mailbox-full.eml": (
        "hard",
        ("user@aol.com",),
        "5.2.2",
        ("<4E326A95.3010907@example.com>",),
        DSN,
    ),
    # sendmail gave up after 5 days: Action: failed with Status 4.0.0 is a lost message, so hard (flufl.bounce
    # reports it as permanent too: its DSN detector goes by the Action). The original has no Message-ID.
    "flanker/messages/bounce/delayed.eml": ("hard", ("foo@example.com",), "4.0.0", (), DSN),
    # The bare message/delivery-status part, without a header: the same "failed, 4.2.2".
    "flanker/messages/bounce/delayed-broken.eml": ("hard", ("demo@example.com",), "4.2.2", (), DSN),
    # A delay warning ("THIS IS A WARNING ONLY"): Action: delayed.
    "flanker/messages/bounce/no-mx.eml": (
        "soft",
        ("user@example.com",),
        "4.4.4",
        ("<19E44CA63F984902B7D654F8FF40F89D@bo>",),
        DSN,
    ),
    "flanker/messages/bounce/office365.eml": (
        "hard",
        ("noname@example.com",),
        "5.1.10",
        ("<20171013111011.20866.254C2F3A4D7AA526@ninomail.com>",),
        DSN,
    ),
    # Gmail's plain-text notices: X-Failed-Recipients; the original headers are quoted in the body.
    "flanker/messages/bounce/gmail-invalid-address.eml": (
        "hard",
        ("awfawfawfawfawfaw@someserverhere.com",),
        "5.1.0",
        ("<CAKsfaBUUGqVZiaMrmH3TRPfq1odQPtM7Ey5YW1SgyJJRHtAjgw@mail.gmail.com>",),
        "X-Failed-Recipients header",
    ),
    "flanker/messages/bounce/gmail-no-dns.eml": (
        "hard",
        ("user@example.comm",),
        None,  # "DNS Error: Domain name not found": no status code in the text
        (),  # the quoted original headers carry no Message-ID
        "X-Failed-Recipients header",
    ),
    # "Delivery failed 10 attempts: info@example.net" from postmaster, no structure that any detector (ours or
    # flufl.bounce's) knows: recognised by its subject and sender, recipients unknown.
    "flanker/messages/bounce/broken-mime.eml": ("unknown", (), None, (), SUBJECT),
    # Exchange, German, "Unable to relay" (mail018's charset is unicode-1-1-utf-7).
    "zammad/mail/mail018.box": (
        "hard",
        ("m.smith@example.com",),
        "5.7.1",
        ("<20131115125507.4636.975502@portal.znuny.com>",),
        DSN,
    ),
    "zammad/mail/mail033-undelivered-mail-returned-to-sender.box": (
        "hard",
        ("not_existing@znuny.com",),
        "5.1.1",
        ("<20150830145601.30.608881@edenhofer.zammad.com>",),
        DSN,
    ),
    # Postfix subject and MAILER-DAEMON sender, but the body is only "some test".
    "zammad/mail/mail052.box": ("unknown", (), None, (), SUBJECT),
    # "Connection timed out", Action: failed, Status 4.4.1: given up, so hard; From: has no address at all.
    "zammad/mail/mail053.box": (
        "hard",
        ("john_example@example.com",),
        "4.4.1",
        ("<20170227103514.188.920664@help.example.com>",),
        DSN,
    ),
    "zammad/mail/mail055.box": (
        "hard",
        ("ticket-bounce-trigger2@example.com",),
        "5.1.1",
        ("<20170526150141.232.13312@example.zammad.loc>",),
        DSN,
    ),
    "zammad/mail/mail063.box": (
        "hard",
        ("notextisting@example.com",),
        "5.1.1",
        ("<E8C3CD7C-8350-4E48-97C5-AE18EE900ECD@example.com>",),
        DSN,
    ),
    # Gmail "Delivery Status Notification (Delay)": the original's id also in X-Original-Message-ID.
    "zammad/mail/mail078.box": (
        "soft",
        ("bob.smith@example.de",),
        "4.4.1",
        ("<20150830145601.30.608881@example.com>",),
        DSN,
    ),
    # Mailbox full; the attached message/rfc822 part is empty.
    "zammad/mail/mail092.box": ("hard", ("receiver@example.org",), "5.2.2", (), DSN),
    # Postfix; the attached message lost the indentation of a folded Received:, the Message-ID is further down.
    "otobo/PostMaster/PostMaster-Test10.box": (
        "hard",
        ("asdfasdfasdfasd@example.com",),
        "5.0.0",
        ("<1183717051.586927.929001308.97809.36@otobo.otobo.org>",),
        DSN,
    ),
    "otobo/EmailParser/PostMaster-Test10.box": (
        "hard",
        ("asdfasdfasdfasd@example.com",),
        "5.0.0",
        ("<1183717051.586927.929001308.97809.36@otobo.otobo.org>",),
        DSN,
    ),
    # A disk-quota bounce that reached a Mailman list owner; "Status: 5.0.0 (recipient reached disk quota)".
    "cpython_test_email/msg_16.txt": (
        "hard",
        ("jangel1@cougar.noc.ucla.edu",),
        "5.0.0",
        ("<002001c144a6$8752e060$56104586@oxy.edu>",),
        DSN,
    ),
    # sendmail "Too many hops" whose boundary parameter is cut off: the DSN fields are read from the text.
    "cpython_test_email/msg_25.txt": (
        "hard",
        ("scoffman@wellpartner.com",),
        "5.4.6",
        ("<01040616033903.00962@server>",),
        "delivery-status fields in the message text",
    ),
    # A spam firewall's "BANNED FILENAME ALERT" for 11 recipients, From: "MAILER DAEMON <>".
    "cpython_test_email/msg_43.txt": (
        "hard",
        (
            "xxxxxxx@dot.ca.gov",
            "xxxxxxxxxxxxx@dot.ca.gov",
            "xxxxxxxxxx@dot.ca.gov",
            "xxxxxxxx@dot.ca.gov",
            "xxxxxx@dot.ca.gov",
            "xxxxxxxxxxxxxxxx@dot.ca.gov",
            "xxxxxxxxxxx@dot.ca.gov",
            "xxxxxxxxxxxx@dot.ca.gov",
            "xxxxxxxxx@dot.ca.gov",
            "xxx@dot.ca.gov",
            "xxxxxxxxxxxxxxx@dot.ca.gov",
        ),
        "5.7.1",
        ("<edab.7804f5cb8070@python.org>",),
        DSN,
    ),
    # CPython's multipart/report (report-type=delivery-status) test message with no status part: no person sends
    # a delivery-status report, so it counts, recipients unknown.
    "cpython_test_email/msg_05.txt": ("unknown", (), None, (), "delivery-status report without readable recipients"),
}

# Corpus messages that carry a delivery-status part or look bounce-like but are deliberately NOT bounces.
CORPUS_NOT_BOUNCES = {
    # multipart/mixed from a person's address (dev@mydomain.somewhere) with a message/delivery-status attachment:
    # the shape of a bounce forwarded by a customer, which must reach the help desk as their mail.
    "otobo/EmailParser/FilenameWithCRLF.box",
    "otobo/EmailParser/FilenameWithNewline.box",
    # From postmaster@example.com, but an ordinary message ("Please enjoy this mega long link").
    "flanker/messages/long-links.eml",
    # Subject "Failed Mail" from test@example.com: a fax notice, not a bounce subject from a system sender.
    "zammad/mail/mail087.box",
    # A read receipt and two spam complaints (ARF): multipart/report, but no delivery failed.
    "flanker/messages/disposition-notification.eml",
    "flanker/messages/complaints/aol.eml",
    "flanker/messages/complaints/yahoo.eml",
}
