"""Migration 0005 (queues, filters, priority, tags) on a database that already holds tickets, on SQLite and PostgreSQL:
no row is lost, every ticket lands in the `default` queue at priority `normal`, and the migration reverses."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from email2ticket.store.admin import AdminStore
from email2ticket.store.engine import current_revision, make_engine
from email2ticket.store.migrate import alembic_config, upgrade
from email2ticket.store.schema import SCHEMA_REVISION

TABLES = ("users", "tickets", "comments", "messages", "notes", "notifications", "settings")


def counts(connection: Connection) -> dict[str, int]:
    return {table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() for table in TABLES}


def test_upgrade_from_0004_puts_every_ticket_in_the_default_queue_without_losing_a_row(database_url: str) -> None:
    engine = make_engine(database_url, lock_timeout=10)
    upgrade(engine, "0004")
    now = datetime.now(UTC)
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO users (id, email, is_technician, access, disabled, created_at) VALUES "
                "(1, 'alice@example.com', false, 'none', false, :now), "
                "(2, 'bob@helpdesk.example', true, 'full', false, :now)"
            ),
            {"now": now},
        )
        for number in (1, 2, 3):
            c.execute(
                text(
                    "INSERT INTO tickets (id, subject, status, requester_id, technician_id, description, created_at, "
                    "updated_at) VALUES (:id, :subject, 'open', 1, 2, 'text', :now, :now)"
                ),
                {"id": number, "subject": f"Ticket {number}", "now": now},
            )
        c.execute(
            text("INSERT INTO comments (id, ticket_id, author_id, body, created_at) VALUES (1, 2, 2, 'done', :now)"),
            {"now": now},
        )
        c.execute(
            text(
                "INSERT INTO messages (id, received_at, body_digest, raw_sha256, idempotency_key, action, exit_code, "
                "reasons, size, raw) VALUES (1, :now, 'd', 'r', 'k', 'create', 0, '[]', 1, :raw)"
            ),
            {"now": now, "raw": b"x"},
        )
        setting = "INSERT INTO settings (name, value, updated_at) VALUES ('restrict_replies', 'off', :now)"
        c.execute(text(setting), {"now": now})
    with engine.connect() as connection:
        before = counts(connection)

    store = AdminStore(database_url)
    assert store.init() == f"schema upgraded from 0004 at revision {SCHEMA_REVISION}"
    with engine.connect() as connection:
        assert counts(connection) == before
    assert [(t["id"], t["queue"], t["priority"], t["tags"]) for t in store.list_tickets()] == [
        (1, "default", "normal", []),
        (2, "default", "normal", []),
        (3, "default", "normal", []),
    ]
    assert store.show_ticket(2)["comments"][0]["body"] == "done"
    assert [t["id"] for t in store.list_tickets(queue="default")] == [1, 2, 3]

    from alembic import command

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
    with engine.connect() as connection:
        assert current_revision(connection) == "0004"
        assert "queue_id" not in {c["name"] for c in inspect(connection).get_columns("tickets")}
        assert not inspect(connection).has_table("queues")
        assert counts(connection) == before
    engine.dispose()


def statements_of_a_delivery(url: str, raw: bytes, recipient: str) -> int:
    """How many SQL statements one new ticket's delivery runs (in this process, through the delivery layer)."""
    from sqlalchemy import event

    from email2ticket.config.load import load_config
    from email2ticket.delivery.run import deliver_message
    from email2ticket.mail.envelope import Envelope
    from email2ticket.store.delivery import DeliveryStore

    config = load_config(None, database_url=url, environ={})
    store = DeliveryStore(url, lock_timeout=10)
    seen: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: seen.append(str(args[2])))
    try:
        result = deliver_message(raw, Envelope("alice@example.com", recipient, None), store, config)
    finally:
        store.dispose()
    assert result.outcome is not None and result.outcome.action == "create", result
    return len([s for s in seen if not s.lstrip().upper().startswith(("BEGIN", "PRAGMA", "SELECT PG_", "SHOW"))])


def test_routing_costs_a_new_ticket_no_statement_of_its_own(database_url: str) -> None:
    """Queues and filters are read with the settings, and a queue, priority or technician goes into the ticket's own
    INSERT: a routed, filtered, assigned new ticket runs as many statements as a plain one; only tags add one."""
    from email2ticket.store.routing_admin import add_filter, add_queue

    store = AdminStore(database_url)
    store.init()
    store.add_user("bob@helpdesk.example", name=None, technician=True, access=None)
    message = "From: alice@example.com\nSubject: {subject}\nMessage-ID: <{n}@example.com>\n\nbody\n"

    def count(subject: str, n: int, recipient: str = "helpdesk@helpdesk.example") -> int:
        raw = message.format(subject=subject, n=n).encode()
        return statements_of_a_delivery(database_url, raw, recipient)

    count("warm-up", 0)  # the sender's user row exists from here on
    plain = count("Printer jam", 1)
    add_queue(store, "sales", ["sales@helpdesk.example"])
    add_filter(store, "urgent", ["Subject contains URGENT"], ["priority=high", "assign=bob@helpdesk.example"])
    add_filter(store, "tagged", ["Subject contains TAGME"], ["tag=x"])
    assert count("Order", 2, "sales@helpdesk.example") == plain
    assert count("URGENT order", 3, "sales@helpdesk.example") == plain
    assert count("TAGME", 4) == plain + 1
    tickets = {t["id"]: t for t in store.list_tickets()}
    assert (tickets[3]["queue"], tickets[4]["queue"], tickets[5]["queue"]) == ("sales", "sales", "default")
    assert (tickets[4]["priority"], tickets[4]["technician"]) == ("high", "bob@helpdesk.example")
    assert tickets[5]["tags"] == ["x"]
