"""Turning database failures into the MTA contract: whatever the database says, the mail stays queued.

An unreachable server, a lock or statement timeout, a full disk, a read-only file: all of these may
succeed on a later attempt, so all of them become TemporaryFailure (75) with one readable sentence.
Integrity errors are left alone: delivery retries them, because under concurrency they mean "someone
else just wrote this" (the same message delivered twice at once, or the same new sender).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from ..errors import describe_error, first_line
from ..exits import ConfigurationError, DeliveryError, TemporaryFailure
from .pooling import HINT as POOLER_HINT
from .pooling import pooler_refused


def earlier_failure(exc: BaseException) -> DeliveryError | None:
    """A failure of ours that this database error happened while handling, if any.

    When the delivery budget expires in the middle of a query, the driver's connection is left
    mid-command and SQLAlchemy's rollback then fails ("another command is already in progress"):
    the timeout is the real reason, and the one the admin must read.
    """
    seen: set[int] = set()
    context = exc.__context__
    while context is not None and id(context) not in seen:
        if isinstance(context, DeliveryError):
            return context
        seen.add(id(context))
        context = context.__context__
    return None


@contextlib.contextmanager
def translate_errors(where: str) -> Iterator[None]:
    try:
        yield
    except IntegrityError:
        raise
    except SQLAlchemyError as exc:
        cause = earlier_failure(exc)
        if cause is not None:
            raise cause from exc
        known = recognised(exc, where) if isinstance(exc, DBAPIError) else None
        if known is not None:
            raise TemporaryFailure(known) from exc
        kind = "unavailable" if isinstance(exc, DBAPIError) else "error"
        detail = describe_error(exc, name_type=False)
        if pooler_refused(detail):  # a misconfiguration, not the message's fault: it names the fix
            raise ConfigurationError(f"database {where} {kind}: {detail}; {POOLER_HINT}") from exc
        raise TemporaryFailure(f"database {where} {kind}: {detail}") from exc


# What PostgreSQL and libpq say when the connection budget is spent: max_connections, or the slots reserved for
# superusers (PostgreSQL 16 also reserves some for roles with pg_use_reserved_connections).
_TOO_MANY = ("too many clients", "remaining connection slots are reserved", "too many connections")
# What libpq says of a server that target_session_attrs=read-write (or primary) skips.
_SKIPPED_STANDBY = ("session is read-only", "server is in hot standby mode")


def recognised(exc: DBAPIError, where: str) -> str | None:
    """The sentence for the database failures an admin has to tell apart at a glance, or None for the rest.

    A standby reached by mistake (the URL names it alone, or lacks target_session_attrs) answers reads and
    refuses the first write: that is a configuration to fix, not a broken database. Every server of a failover
    URL skipped (the primary down, the standby not yet promoted) is a failover under way. A full connection
    budget is the MTA running more deliveries than max_connections allows. All three defer (75): the MTA keeps
    the mail, and a retry succeeds once the cause is gone.
    """
    origin = exc.orig
    text = str(origin)
    if getattr(origin, "sqlstate", None) == "25006":  # read_only_sql_transaction
        return (
            f"the database is read-only (a standby?): {where} takes no writes; database_url must lead to the primary "
            "(name every server, with target_session_attrs=read-write)"
        )
    if any(symptom in text for symptom in _TOO_MANY):
        return (
            f"database {where} has too many connections (its max_connections is reached): the MTA retries; "
            "keep the MTA's delivery processes below it (README: Connection budget)"
        )
    if any(symptom in text for symptom in _SKIPPED_STANDBY):
        return f"no server of database {where} accepts writes (a failover under way?): {_attempts(text)}"
    return None


def _attempts(text: str) -> str:
    """Each server psycopg tried, with what it answered ("127.0.0.1:5432: Connection refused; ..."), from the
    "- host: 'H', port: 'P', hostaddr: ...: connection failed: ... failed: WHY" lines of its error."""
    tried = []
    for line in text.splitlines():
        found = _ATTEMPT.match(line)
        if found:
            tried.append(f"{found['host']}:{found['port']}: {found['why'].strip()}")
    return "; ".join(tried) or first_line(text)


_ATTEMPT = re.compile(r"- host: '(?P<host>[^']*)', port: '(?P<port>[^']*)'.* failed: (?P<why>.*)$")
