"""Configure Email Settings: the "Email to Ticket Conversion" tab, the "Reply Separators" tab, and the users."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from typing import Any

from markupsafe import escape

from email2ticket.config.rule_settings import DESCRIPTIONS, SettingError, setting_names, stored_form
from email2ticket.reply.extract import DEFAULT_SEPARATORS
from email2ticket.web.app import WebAdmin
from support.mail import mail
from web.webclient import Admin


def form_of(page: str) -> dict[str, str]:
    """The settings form as the browser would send it unchanged: every field's value and the value it showed."""
    fields: dict[str, str] = {}
    for name, value in re.findall(r'<input type="hidden" name="(shown-[a-z_]+)" value="([^"]*)"', page):
        fields[name] = html.unescape(value)
        fields[name.removeprefix("shown-")] = html.unescape(value)
    return fields


def value_of(web: WebAdmin, name: str) -> str:
    return str(next(s for s in web.state.admin.show_settings() if s["name"] == name)["value"])


def test_every_rule_setting_is_on_the_form_with_its_help(admin: Admin) -> None:
    page = admin.get("/settings")
    assert page.status_code == 200
    text = page.text
    assert "Configure Email Settings" in text and ">Email to Ticket Conversion</a>" in text
    assert "Restrict Replies to Technicians and the Requester of the Ticket" in text
    for name in setting_names():
        assert f'name="shown-{name}"' in text, name
        assert str(escape(DESCRIPTIONS[name])) in text, name
    assert re.search(r'type="checkbox" id="restrict_replies" name="restrict_replies" value="on" checked', text)
    assert '<option value="accept" selected>accept</option>' in text


def test_saving_writes_what_changed_and_unchecking_a_box_turns_it_off(admin: Admin, web: WebAdmin) -> None:
    form = form_of(admin.get("/settings").text)
    form["restrict_replies"] = "off"  # an unchecked box: only the hidden "off" is sent
    form["unknown_senders"] = "reject"
    form["trusted_hosts"] = "MX1.Example.org, mx2.example.org"
    saved = admin.post("/settings", form)
    assert "Saved 3 setting(s)." in admin.follow(saved).text
    assert value_of(web, "restrict_replies") == "off"
    assert value_of(web, "unknown_senders") == "reject"
    assert value_of(web, "trusted_hosts") == "mx1.example.org, mx2.example.org"  # canonical, as `settings set` stores
    assert "Nothing changed." in admin.follow(admin.post("/settings", form_of(admin.get("/settings").text))).text


def test_invalid_values_are_refused_beside_their_field_and_nothing_is_saved(admin: Admin, web: WebAdmin) -> None:
    form = form_of(admin.get("/settings").text)
    form["max_autoreplies_per_day"] = "lots"
    form["reply_prefixes"] = " , "
    form["restrict_replies"] = "off"  # valid, but not saved while anything is invalid
    page = admin.post("/settings", form)
    assert page.status_code == 400
    for name, value in (("max_autoreplies_per_day", "lots"), ("reply_prefixes", " , ")):
        try:
            stored_form(name, value)
        except SettingError as exc:
            expected = str(exc)
        assert f'<p class="error" role="alert">{escape(expected)}</p>' in page.text
    assert 'value="lots"' in page.text  # the admin's input is shown back
    assert value_of(web, "restrict_replies") == "on"
    assert value_of(web, "max_autoreplies_per_day") == "20"


def test_two_admins_saving_different_fields_both_keep_their_change(
    web: WebAdmin, make_admin: Callable[..., Admin]
) -> None:
    first, second = make_admin(web), make_admin(web)
    form_a, form_b = form_of(first.get("/settings").text), form_of(second.get("/settings").text)
    form_a["restrict_replies"] = "off"
    form_b["max_new_tickets_per_sender_per_hour"] = "3"
    assert first.post("/settings", form_a).status_code == 303
    assert second.post("/settings", form_b).status_code == 303  # its stale restrict_replies=on is not written
    assert value_of(web, "restrict_replies") == "off"
    assert value_of(web, "max_new_tickets_per_sender_per_hour") == "3"


def test_a_field_changed_meanwhile_is_not_overwritten(web: WebAdmin, make_admin: Callable[..., Admin]) -> None:
    first, second = make_admin(web), make_admin(web)
    form_a, form_b = form_of(first.get("/settings").text), form_of(second.get("/settings").text)
    form_a["max_autoreplies_per_day"], form_b["max_autoreplies_per_day"] = "5", "7"
    form_b["acknowledge_unverified"] = "off"
    assert first.post("/settings", form_a).status_code == 303
    page = second.post("/settings", form_b)
    assert page.status_code == 400
    assert "max_autoreplies_per_day was changed meanwhile by someone else, to &#39;5&#39;" in page.text
    assert value_of(web, "max_autoreplies_per_day") == "5"
    assert value_of(web, "acknowledge_unverified") == "off"  # the other field was saved
    again = form_of(page.text)  # the form now shows 5 as the current value, and the admin's 7
    assert again["shown-max_autoreplies_per_day"] == "5"
    again["max_autoreplies_per_day"] = "7"
    assert second.post("/settings", again).status_code == 303  # a deliberate second save wins
    assert value_of(web, "max_autoreplies_per_day") == "7"


def test_separators_list_edits_and_reset(admin: Admin, web: WebAdmin) -> None:
    page = admin.get("/separators").text
    assert ">Reply Separators</a>" in page
    assert page.count('<tr class="builtin">') == len(DEFAULT_SEPARATORS)
    added = admin.follow(admin.post("/separators/add", {"text": "--- Reply above this line ---"}))
    assert "Added separator &#39;--- Reply above this line ---&#39;." in added.text
    assert '<tr class="added">' in added.text
    first = DEFAULT_SEPARATORS[0]
    removed = admin.follow(admin.post("/separators/remove", {"text": first}))
    assert "Removed built-in separator" in removed.text
    listed = [s["text"] for s in web.state.admin.list_separators()]
    assert first not in listed and "--- Reply above this line ---" in listed
    bad = admin.follow(admin.post("/separators/add", {"text": "/(unclosed/"}))
    assert 'class="flash error"' in bad.text
    reset = admin.follow(admin.post("/separators/reset"))
    assert "Dropped 2 edit(s)" in reset.text
    assert [s["text"] for s in web.state.admin.list_separators()] == list(DEFAULT_SEPARATORS)
    assert admin.post("/separators/other").status_code == 404


REPLY = "Thanks, that fixed it.\n<b>not bold</b>\n\n--- cut here ---\nOld text\n> quoted\n"


def test_live_test_cuts_at_an_unsaved_candidate(admin: Admin, web: WebAdmin) -> None:
    plain = admin.post("/separators/test", {"reply": REPLY, "candidate": ""}, files={"eml": ("", b"")})
    assert plain.status_code == 200
    assert "No separator matched: the whole body is kept." in plain.text
    tried = admin.post("/separators/test", {"reply": REPLY, "candidate": "--- cut here ---"}, files={"eml": ("", b"")})
    text = tried.text
    assert "Cut at line 4, where the separator --- cut here --- matched." in text
    assert "(your candidate, not saved)" in text
    assert '<pre class="comment" id="comment">Thanks, that fixed it.\n&lt;b&gt;not bold&lt;/b&gt;</pre>' in text
    assert '<span class="cutline">' in text and "<b>not bold</b>" not in text
    assert "--- cut here ---" not in [s["text"] for s in web.state.admin.list_separators()]
    invalid = admin.post("/separators/test", {"reply": REPLY, "candidate": "/(x/"}, files={"eml": ("", b"")})
    assert invalid.status_code == 400 and 'role="alert"' in invalid.text
    empty = admin.post("/separators/test", {"reply": "  ", "candidate": ""}, files={"eml": ("", b"")})
    assert empty.status_code == 400 and "paste a reply" in empty.text


def test_live_test_of_an_uploaded_message_is_what_separators_test_prints(
    admin: Admin, web: WebAdmin, run_admin: Any
) -> None:
    raw = mail("RE: Printer jam [Ticket #1]", "Works now.\n\nOn Mon, 1 Dec 2026, Bob <bob@x.example> wrote:\n> old\n")
    page = admin.post("/separators/test", {"reply": "", "candidate": ""}, files={"eml": ("reply.eml", raw)})
    command = run_admin(
        "--database-url", web.state.config.resolved_database_url(), "separators", "test", "--json", stdin=raw
    )
    assert command.returncode == 0, command
    expected = json.loads(command.stdout)
    assert str(escape(expected["summary"])) in page.text
    assert f'<pre class="comment" id="comment">{escape(expected["comment"])}</pre>' in page.text


def test_users_add_set_and_disable(admin: Admin, web: WebAdmin) -> None:
    added = admin.follow(admin.post("/users/add", {"email": "Bob@Example.org", "name": "Bob", "role": "technician"}))
    assert "Saved bob@example.org." in added.text
    changed = admin.follow(
        admin.post("/users/set", {"email": "bob@example.org", "role": "technician", "access": "full"})
    )
    assert "bob@example.org is a technician with full access." in changed.text
    disabled = admin.follow(admin.post("/users/disable", {"email": "bob@example.org"}))
    assert "is disabled" in disabled.text and '<tr class="disabled">' in disabled.text
    users = web.state.admin.list_users()
    assert users == [
        {"email": "bob@example.org", "name": "Bob", "technician": True, "access": "full", "disabled": True}
    ]
    bad = admin.follow(admin.post("/users/add", {"email": "not an address", "role": "requester"}))
    assert "is not an e-mail address" in bad.text
    worse = admin.follow(admin.post("/users/set", {"email": "bob@example.org", "role": "", "access": "root"}))
    assert "access must be one of none, limited, normal, full" in worse.text
    admin.post("/users/add", {"email": "bob@example.org"})
    assert web.state.admin.list_users()[0]["disabled"] is False  # Enable
