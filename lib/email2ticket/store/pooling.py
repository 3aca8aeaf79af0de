"""PostgreSQL behind a transaction-pooling pooler (PgBouncer's `pool_mode = transaction`): what changes.

Such a pooler lends a server connection for one transaction and then hands it to another client, so nothing
may live on the server side between two transactions of ours. Two things would:

- psycopg prepares a statement on the server once one connection has run it `prepare_threshold` (5) times.
  The next transaction may then run on a server connection that never saw it ('prepared statement "_pg3_0"
  does not exist'), or on one where another client prepared its own _pg3_0 ('... already exists'). PgBouncer
  can track prepared statements only from 1.21 (max_prepared_statements); Debian 12 ships 1.18. So psycopg
  prepares nothing (`prepare_threshold=None`); our statements are short, planning them costs little.
- Our lock, statement and time-zone settings normally travel in the `options` startup parameter, which sets
  them for the session. PgBouncer refuses it ("unsupported startup parameter: options"), and an installation
  told to ignore it would run without the timeouts that keep a delivery inside its budget. Behind the pooler
  they are set for each transaction instead (`set_config(..., true)` is SET LOCAL), one statement after BEGIN.

The admin says which mode is in front of the database with `pool_mode=transaction` in database_url's query:
wherever the URL comes from (configuration file, environment, --database-url), every process (pipe, service,
admin commands) reads the same. The option is ours and leaves the URL before psycopg sees it. It is not
detected: a pooler answers exactly like PostgreSQL, which is what it is for. Without the option, the two
errors above are a configuration error naming it (store/errors.py): 75 with the fix in the MTA's status line,
never counted against the message as a poison suspect would be (delivery/attempts.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

POOL_MODE = "pool_mode"
TRANSACTION = "transaction"
POOL_MODES = ("session", TRANSACTION)
HINT = f"if a pooler in transaction mode (PgBouncer) is in between, add ?{POOL_MODE}={TRANSACTION} to database_url"
# What PostgreSQL or PgBouncer say when the URL lacks the option but a transaction-pooling pooler is in between.
_SYMPTOMS = ("unsupported startup parameter", 'prepared statement "_pg3_')


def split_pool_mode(url: str) -> tuple[URL, bool]:
    """The URL without our option, and whether it says that a transaction-pooling pooler is in between.

    Raises ValueError for a value other than "session" (the default: nothing changes) or "transaction"."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    value = parsed.query.get(POOL_MODE)
    if value is None:
        return parsed, False
    modes = {value} if isinstance(value, str) else set(value)
    if len(modes) != 1 or not modes <= set(POOL_MODES):
        raise ValueError(
            f"{POOL_MODE}={','.join(sorted(modes))}: say {POOL_MODE}={TRANSACTION} for a pooler in transaction mode "
            f"(PgBouncer's pool_mode = transaction), or leave it out (a statement-mode pooler cannot work: a delivery "
            "is one transaction of several statements)"
        )
    return parsed.difference_update_query([POOL_MODE]), modes == {TRANSACTION}


def connect_arguments(
    settings: dict[str, str], connect_timeout: int, *, transaction_pooling: bool
) -> dict[str, object]:
    """psycopg's connect arguments: the session settings at start-up, or no prepared statements and no `options`."""
    if transaction_pooling:
        return {"connect_timeout": connect_timeout, "prepare_threshold": None}
    options = " ".join(f"-c {name}={value}" for name, value in settings.items())
    return {"connect_timeout": connect_timeout, "options": options}


def set_per_transaction(engine: Engine, settings: dict[str, str]) -> None:
    """Behind a transaction-pooling pooler: the session settings, for each transaction, as its first statement.

    SQLAlchemy's "begin" event runs for every transaction, explicit or begun by the first statement, before
    anything else is sent; psycopg's BEGIN goes ahead of this statement, so the settings end with the transaction.
    """
    from sqlalchemy import event

    names = ", ".join(f"set_config('{name}', '{value}', true)" for name, value in settings.items())
    statement = f"SELECT {names}"

    @event.listens_for(engine, "begin")
    def _settings(connection: Connection) -> None:
        connection.exec_driver_sql(statement)


def pooler_refused(message: str) -> bool:
    """Is the database's error what a transaction-pooling pooler says to a URL without our option?"""
    return any(symptom in message for symptom in _SYMPTOMS)
