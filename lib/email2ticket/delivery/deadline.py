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

import os
import threading
import time
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
    import ctypes  # only the service interrupts another thread; the pipe has SIGALRM

    with _lock:
        if ident not in _working:
            return False
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(DeadlineExceeded))
        return True


class Watchdog:
    """The pipe's last resort: exit 75 when the delivery has not ended `seconds` + WATCHDOG_GRACE after start.

    When the alarm does reach Python (the thread was not stuck in C), `extend` gives the clean-up that
    follows (recording a failed attempt, so the message is counted) WATCHDOG_GRACE from then on.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._deadline = time.monotonic() + seconds + WATCHDOG_GRACE
        self._wake = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done = True
        self._wake.set()

    def extend(self, seconds: float = WATCHDOG_GRACE) -> None:
        self._deadline = max(self._deadline, time.monotonic() + seconds)
        self._wake.set()

    def _watch(self) -> None:
        while not self._done:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                self._give_up()
            self._wake.wait(remaining)
            self._wake.clear()

    def _give_up(self) -> None:
        line = (
            f"4.3.0 delivery took longer than delivery_timeout ({self.seconds:g} s) and did not stop; "
            "deferred, nothing was written\n"
        )
        try:
            os.write(2, line.encode())
        finally:
            os._exit(75)  # EX_TEMPFAIL: the MTA keeps the mail (exits.ExitCode.TEMPFAIL)
