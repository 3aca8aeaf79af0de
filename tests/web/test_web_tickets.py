"""Tickets: list and detail with every mail-derived field escaped, attachments only ever as downloads, assign and
close; and the download names themselves (RFC 6266)."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from urllib.parse import quote, unquote

import pytest

from email2ticket.web.app import WebAdmin
from email2ticket.web.downloads import content_disposition, safe_filename
from support.mail import mail
from web.webclient import Admin

Deliver = Callable[..., tuple[str, int | None, int | None]]
XSS = "<img src=x onerror=alert(1)>"


def with_attachments(subject: str, names: list[str]) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "alice@example.org", "helpdesk@helpdesk.example", subject
    message.set_content("See the files.\n")
    for index, _ in enumerate(names):
        data = f"<html><script>alert({index})</script></html>".encode()
        message.add_attachment(data, "text", "html", filename=f"PLACEHOLDER{index}")
    raw = message.as_bytes()
    for index, name in enumerate(names):  # RFC 2231, so that a name can hold anything, line breaks included
        raw = raw.replace(
            f'filename="PLACEHOLDER{index}"'.encode(), f"filename*=utf-8''{quote(name, safe='')}".encode()
        )
    return raw


def test_ticket_list_and_detail_escape_everything(admin: Admin, deliver: Deliver) -> None:
    _, ticket, _ = deliver(mail(XSS, f"Body with {XSS}\n", sender="alice@example.org", name='"><svg onload=alert(3)>'))
    listing = admin.get("/tickets")
    assert listing.status_code == 200
    assert XSS not in listing.text and "&lt;img src=x onerror=alert(1)&gt;" in listing.text
    page = admin.get(f"/tickets/{ticket}").text
    assert XSS not in page and "<svg" not in page
    assert '<p class="subject" id="subject">&lt;img src=x onerror=alert(1)&gt;</p>' in page
    assert "alice@example.org" in page and "open" in page


def test_comments_show_their_author_and_verification(admin: Admin, deliver: Deliver) -> None:
    _, ticket, _ = deliver(mail("Printer jam", sender="alice@example.org"))
    deliver(mail(f"RE: Printer jam [Ticket #{ticket}]", "It works again.\n", sender="alice@example.org"))
    page = admin.get(f"/tickets/{ticket}").text
    assert "Comment by alice@example.org" in page and "sender not verified" in page
    assert "It works again." in page
    assert "(update)" in page  # the audit trail of the ticket links its messages


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "<script>x</script>.html", 'a"b;c\r\nSet-Cookie: x=1.txt', "Bericht für März.pdf"]
)
def test_attachments_are_downloads_under_a_harmless_name(admin: Admin, deliver: Deliver, name: str) -> None:
    _, ticket, _ = deliver(with_attachments("Files", [name]))
    page = admin.get(f"/tickets/{ticket}").text
    assert "<script>" not in page
    start = page.index(f'href="/tickets/{ticket}/attachments/') + len('href="')
    link = page[start : page.index('"', start)]
    response = admin.get(link)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"  # never rendered, whatever was sent
    assert response.headers["x-content-type-options"] == "nosniff"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="') and "filename*=UTF-8''" in disposition
    assert "\r" not in disposition and "\n" not in disposition and "/" not in disposition.split("filename*=")[0]
    shown = unquote(disposition.split("filename*=UTF-8''", 1)[1])
    assert shown == safe_filename(name, "x") and not set('<>/\\"') & set(shown)
    assert response.content.startswith(b"<html><script>")
    assert admin.get(f"/tickets/{ticket + 1}/attachments/1").status_code == 404  # not this ticket's attachment


def test_assign_and_close(admin: Admin, web: WebAdmin, deliver: Deliver) -> None:
    _, ticket, _ = deliver(mail("Printer jam"))
    assert "Assign" in admin.get(f"/tickets/{ticket}").text
    refused = admin.follow(admin.post(f"/tickets/{ticket}/assign", {"technician": "nobody@example.org"}))
    assert "there is no user nobody@example.org" in refused.text
    web.state.admin.add_user("bob@example.org", name=None, technician=True, access=None)
    assigned = admin.follow(admin.post(f"/tickets/{ticket}/assign", {"technician": "bob@example.org"}))
    assert f"Ticket #{ticket} assigned to bob@example.org." in assigned.text
    closed = admin.follow(admin.post(f"/tickets/{ticket}/close"))
    assert f"Ticket #{ticket} closed." in closed.text and "Close the ticket" not in closed.text
    shown = web.state.admin.show_ticket(ticket)
    assert (shown["technician"], shown["status"]) == ("bob@example.org", "closed")
    assert "#1" in admin.get("/tickets?status=closed").text and "no tickets" in admin.get("/tickets?status=open").text
    assert admin.get("/tickets/4242").status_code == 404


@pytest.mark.parametrize(
    ("name", "ascii_part", "encoded"),
    [
        ("report.pdf", 'filename="report.pdf"', "report.pdf"),
        ("../../etc/passwd", 'filename="passwd"', "passwd"),
        ("C:\\Windows\\evil.exe", 'filename="evil.exe"', "evil.exe"),
        ('<b>"x";.html', 'filename="_b__x__.html"', "_b__x__.html"),
        ("Bericht für März.pdf", 'filename="Bericht f_r M_rz.pdf"', "Bericht%20f%C3%BCr%20M%C3%A4rz.pdf"),
        ("evil\u202egpj.exe", 'filename="evil_gpj.exe"', "evil_gpj.exe"),
        ("a\r\nSet-Cookie: x", 'filename="a__Set-Cookie_ x"', "a__Set-Cookie_%20x"),
        ("...", 'filename="attachment-7"', "attachment-7"),
        (None, 'filename="attachment-7"', "attachment-7"),
        ("100%'s.txt", 'filename="100__s.txt"', "100%25%27s.txt"),
    ],
)
def test_content_disposition(name: str | None, ascii_part: str, encoded: str) -> None:
    assert content_disposition(name, "attachment-7") == f"attachment; {ascii_part}; filename*=UTF-8''{encoded}"


def test_long_names_keep_their_extension() -> None:
    name = safe_filename("x" * 500 + ".pdf", "f")
    assert len(name) == 150 and name.endswith(".pdf")


def test_the_ticket_page_shows_queue_priority_and_tags_escaped(admin: Admin, web: WebAdmin, deliver: Deliver) -> None:
    from email2ticket.store.routing_admin import add_filter, add_queue

    add_queue(web.state.admin, "<b>vip</b>", [])
    actions = ["queue=<b>vip</b>", "priority=high", "tag=<i>x</i>"]
    add_filter(web.state.admin, "vip", ["Subject contains printer"], actions)
    _, ticket, _ = deliver(mail("Printer jam", sender="alice@example.org"))
    page = admin.get(f"/tickets/{ticket}").text
    assert "<b>vip</b>" not in page and "<i>x</i>" not in page
    assert '<td id="queue">&lt;b&gt;vip&lt;/b&gt;, priority high, tags: &lt;i&gt;x&lt;/i&gt;</td>' in page
