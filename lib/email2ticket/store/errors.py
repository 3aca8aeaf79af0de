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

from ..exits import TemporaryFailure


def describe_db_error(exc: BaseException) -> str:
    """The first line of the driver's message, without SQLAlchemy's statement dump."""
    origin = getattr(exc, "orig", None) or exc
    text = str(origin).strip().splitlines()
    return text[0] if text else type(origin).__name__


@contextlib.contextmanager
def translate_errors(where: str) -> Iterator[None]:
    try:
        yield
    except IntegrityError:
        raise
    except DBAPIError as exc:
        raise TemporaryFailure(f"database {where} unavailable: {describe_db_error(exc)}") from exc
    except SQLAlchemyError as exc:
        raise TemporaryFailure(f"database {where} error: {describe_db_error(exc)}") from exc
