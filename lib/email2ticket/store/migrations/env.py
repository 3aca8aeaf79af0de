"""Alembic environment: always run on the connection email2ticket hands over (see store/migrate.py)."""

from __future__ import annotations

from alembic import context

from email2ticket.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `email2ticket init`, which provides the database connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
