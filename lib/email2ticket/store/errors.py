"""Turning database failures into the MTA contract: whatever the database says, the mail stays queued.

An unreachable server, a lock or statement timeout, a full disk, a read-only file: all of these may
succeed on a later attempt, so all of them become TemporaryFailure (75) with one readable sentence.
Integrity errors are left alone: delivery retries them, because under concurrency they mean "someone
else just wrote this" (the same message delivered twice at once, or the same new sender).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from ..errors import describe_error
from ..exits import DeliveryError, TemporaryFailure


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
        kind = "unavailable" if isinstance(exc, DBAPIError) else "error"
        raise TemporaryFailure(f"database {where} {kind}: {describe_error(exc, name_type=False)}") from exc
