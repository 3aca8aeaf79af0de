"""Deadlines that reach the work on the message itself: no `except Exception` and no C call can outlast them.

A delivery's budget (delivery_timeout) is enforced from outside the code that runs it: by SIGALRM in the
pipe command, by the service's event loop for a worker thread. Waiting on the database is cut short by
the database (lock and statement timeouts, a cancel request). Work on the message (parsing, cutting the
reply) is pure Python and C, so it is interrupted by raising exits.DeadlineExceeded in the thread doing
it, but only while that thread is inside `message_work()`: an exception raised asynchronously anywhere
else (inside the database driver or the connection pool) could leave them in a state nobody expects.

The pipe also starts a watchdog: should a C call never return (a regular-expression search releases the
GIL, so Python signal handlers wait for it), the watchdog thread writes the status line and exits 75
itself, delivery_timeout + WATCHDOG_GRACE seconds after the start. The transaction never committed:
nothing is lost, and the MTA retries.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..exits import DeadlineExceeded

WATCHDOG_GRACE = 2.0

_lock = threading.Lock()
_working: set[int] = set()  # threads inside message_work(): where DeadlineExceeded may be raised


@contextmanager
def message_work() -> Iterator[None]:
    """Mark the calling thread as working on the message (not inside the database) for the block."""
    ident = threading.get_ident()
    with _lock:
        outer = ident in _working
        _working.add(ident)
    try:
        yield
    finally:
        if not outer:
            with _lock:
                _working.discard(ident)


def working_on_message(ident: int | None = None) -> bool:
    """Is the thread (default: the calling one) inside message_work()?"""
    return (threading.get_ident() if ident is None else ident) in _working


def interrupt(ident: int) -> bool:
    """Raise DeadlineExceeded in thread `ident` if it is working on the message; True when it was raised."""
    with _lock:
        if ident not in _working:
            return False
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(DeadlineExceeded))
        return True


class Watchdog:
    """The pipe's last resort: exit 75 when the delivery has not ended `seconds` + WATCHDOG_GRACE after start."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._timer = threading.Timer(seconds + WATCHDOG_GRACE, self._give_up)
        self._timer.daemon = True

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._timer.cancel()

    def _give_up(self) -> None:
        line = (
            f"4.3.0 delivery took longer than delivery_timeout ({self.seconds:g} s) and did not stop; "
            "deferred, nothing was written\n"
        )
        try:
            os.write(2, line.encode())
        finally:
            os._exit(75)  # EX_TEMPFAIL: the MTA keeps the mail (exits.ExitCode.TEMPFAIL)
