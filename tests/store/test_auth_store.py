"""Migration 0002 (sender verification) on a database that already holds mail, on SQLite and PostgreSQL:
rows from before verification existed are never counted as verified, and the migration reverses."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, text

from email2ticket.store.admin import AdminStore
from email2ticket.store.engine import current_revision, make_engine
from email2ticket.store.migrate import alembic_config, upgrade
from email2ticket.store.schema import SCHEMA_REVISION


def test_upgrade_from_0001_keeps_old_rows_unverified(database_url: str) -> None:
    engine = make_engine(database_url, lock_timeout=10)
    upgrade(engine, "0001")
    now = datetime.now(UTC)
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO users (id, email, is_technician, access, disabled, created_at) "
                "VALUES (1, 'bob@helpdesk.example', true, 'full', false, :now)"
            ),
            {"now": now},
        )
        c.execute(
            text(
                "INSERT INTO tickets (id, subject, status, requester_id, description, created_at, updated_at) "
                "VALUES (1, 'Printer', 'open', 1, 'jams', :now, :now)"
            ),
            {"now": now},
        )
        c.execute(
            text("INSERT INTO comments (id, ticket_id, author_id, body, created_at) VALUES (1, 1, 1, 'done', :now)"),
            {"now": now},
        )
        c.execute(
            text(
                "INSERT INTO messages (id, received_at, body_digest, raw_sha256, idempotency_key, action, exit_code, "
                "reasons, size, raw) VALUES (1, :now, 'd', 'r', 'k', 'update', 0, '[]', 1, :raw)"
            ),
            {"now": now, "raw": b"x"},
        )
    store = AdminStore(database_url)
    assert store.init() == f"schema upgraded from 0001 at revision {SCHEMA_REVISION}"
    ticket = store.show_ticket(1)
    assert ticket["unverified_sender"] is False and ticket["comments"][0]["verified"] is False
    assert store.list_messages(action=None, since=None)[0]["auth_verdict"] is None

    from alembic import command

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    with engine.connect() as connection:
        assert current_revision(connection) == "0001"
        columns = {c["name"] for c in inspect(connection).get_columns("comments")}
        assert "author_verified" not in columns
        body = connection.execute(text("SELECT body FROM comments WHERE id = 1")).scalar()
        assert body == "done"
    engine.dispose()
