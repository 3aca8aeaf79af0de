"""Another session on a test's database: what a delivery has to wait for."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def hold_lock(url: str, tables: str = "settings") -> Iterator[None]:
    """Block every delivery on the database for the duration of the block: BEGIN IMMEDIATE on SQLite, an
    exclusive lock on `tables` (a comma-separated list) on PostgreSQL; rolled back at the end."""
    holder: Any
    if url.startswith("sqlite"):
        holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    else:
        import psycopg

        holder = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        holder.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        holder.rollback()
        holder.close()
