"""The schema and its migrations, and the admin store's edits, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from email2ticket.reply.extract import DEFAULT_SEPARATORS
from email2ticket.store.admin import AdminError, AdminStore
from email2ticket.store.schema import SCHEMA_REVISION


def test_migrations_build_exactly_the_schema(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from email2ticket.store.migrate import head_revision
    from email2ticket.store.schema import metadata

    store = AdminStore(database_url)
    assert store.init() == f"schema created at revision {SCHEMA_REVISION}"
    assert store.init() == f"schema already at revision {SCHEMA_REVISION}"
    assert head_revision() == SCHEMA_REVISION
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert diff == []


def test_separator_edits_are_relative_to_the_built_in_list(database_url: str) -> None:
    store = AdminStore(database_url)
    store.init()
    first = DEFAULT_SEPARATORS[0]
    assert store.remove_separator(first).startswith("removed built-in separator")
    assert store.add_separator("--- Reply above this line ---") == "added separator '--- Reply above this line ---'"
    listed = store.list_separators()
    assert first not in [s["text"] for s in listed]
    assert listed[-1] == {"text": "--- Reply above this line ---", "origin": "added"}
    with pytest.raises(AdminError, match="not in the list"):
        store.remove_separator("never added")
    with pytest.raises(AdminError):
        store.add_separator("/(unclosed/")
    assert store.add_separator(first) == f"restored built-in separator {first!r}"
    assert store.reset_separators() == "dropped 1 edit(s); the built-in separator list is in force"
    assert [s["text"] for s in store.list_separators()] == list(DEFAULT_SEPARATORS)


def test_settings_validation(database_url: str) -> None:
    store = AdminStore(database_url)
    store.init()
    values = {item["name"]: item["value"] for item in store.show_settings()}
    assert values["restrict_replies"] == "on" and values["unknown_senders"] == "accept"
    assert store.set_setting("restrict_replies", "false")["value"] == "off"
    assert store.set_setting("reply_prefixes", "RE, Antw:, SV")["value"] == "RE, Antw, SV"
    for name, value in (("restrict_replies", "maybe"), ("unknown_senders", "bounce"), ("no_such", "on")):
        with pytest.raises(AdminError):
            store.set_setting(name, value)


def test_admin_cli_errors_are_one_line(database_url: str, run_admin: Any) -> None:
    assert run_admin("--database-url", database_url, "init").returncode == 0
    for args, expected in (
        (("ticket", "show", "99"), "error: there is no ticket #99"),
        (("ticket", "assign", "1", "nobody@example.com"), "error: there is no ticket #1"),
        (("user", "set", "ghost@example.com", "--access", "full"), "error: there is no user ghost@example.com"),
        (("settings", "set", "restrict_replies", "maybe"), "error: restrict_replies takes on/off"),
        (("messages", "show", "5"), "error: there is no message 5 in the audit trail"),
        (("ticket", "show", "abc"), "error: email2ticket ticket show: argument id: invalid int value"),
    ):
        result = run_admin("--database-url", database_url, *args)
        assert result.returncode != 0, result
        assert result.stderr_text.startswith(expected) and result.stderr_text.count("\n") == 1, result
    shown = run_admin("--database-url", database_url, "settings", "show", "--json")
    assert json.loads(shown.stdout)["bare_number_references"] == "on"
