"""The resident delivery service's engine: the same delivery as the pipe, on pooled connections and threads.

A pipe process per mail pays for its imports and a new database connection on every message, a
hundred times what the delivery itself costs. `email2ticket serve` (service/server.py) pays once, and hands
each message to a `Deliverer`, which runs the same delivery layer as `email2ticket-deliver`
(delivery/run.py, then delivery/answer.py), so the decision, the audit record, the log line, the
output and the exit status are the pipe's.

What differs is the shell around it. The store is shared by a few threads, each delivery borrowing a
pooled connection. The pipe's time budget is SIGALRM, which only the main thread can receive, so here
each delivery gets a `Deadline`: when it passes, the running statement is cancelled, the transaction
rolls back instead of committing, and the verdict is 75 - the same effect as the pipe's budget.

A cancel request needs a server process that listens. One that hangs (stopped, swapped out, its host
gone without a reset) never answers it, and the thread would wait on its socket for ever, and the next
delivery on the same pooled connection too. So a statement still running CANCEL_GRACE seconds after the
cancel has its connection's socket shut down under it: the thread gets an error at once, the pool
discards that connection (and, having seen it die, replaces the others on their next use), and the
next delivery connects afresh.

This module also serves the thin client's Unix socket (the wire protocol is described in service/client.py);
LMTP (service/lmtp.py) uses the same Deliverer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..delivery.answer import Answer, answer
from ..delivery.deadline import interrupt
from ..delivery.run import Result, deliver_message, has_notifications, log_result
from ..exits import DeliveryError, DeliveryTimeout
from ..mail.envelope import Envelope
from ..store.delivery import DeliveryStore, DeliveryTransaction
from .sender import Sender

if TYPE_CHECKING:
    from prometheus_client import Gauge
    from sqlalchemy.engine import Connection

    from ..config.model import Config
    from .metrics import Metrics

# How long past delivery_timeout a delivery may take to roll back before the service answers 75
# without it (a thread stuck outside the database). Should it commit after all, the MTA's retry is
# recognised as a duplicate: the message still lands once.
GRACE = 10.0
# How long a cancelled statement may take to stop before its connection is cut (see the module's docstring).
CANCEL_GRACE = 2.0


class Deadline:
    """One delivery's time budget, enforced from outside the thread that runs it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._expired = False
        self._connection: Any = None  # the DBAPI connection of the running transaction
        self.thread: int | None = None  # the worker thread running the delivery, once it started

    @property
    def expired(self) -> bool:
        return self._expired

    def error(self) -> DeliveryTimeout:
        return DeliveryTimeout(f"delivery took longer than delivery_timeout ({self.seconds:g} s); rolled back")

    def check(self) -> None:
        if self._expired:
            raise self.error()

    def expire(self) -> None:
        """Called by the event loop when the time is up: mark it, and interrupt the database, or the work on
        the message itself (delivery/deadline.py: parsing, cutting the reply) in the thread running it."""
        with self._lock:  # held while interrupting: the thread cannot leave this delivery meanwhile (release)
            self._expired = True
            connection = self._connection
            if self.thread is not None and interrupt(self.thread):
                return
        if connection is not None:
            _interrupt(connection)
            if hasattr(connection, "pgconn"):  # sqlite3's interrupt() always works; a server may never answer
                timer = threading.Timer(CANCEL_GRACE, self._sever, args=(connection,))
                timer.daemon = True
                timer.start()

    def _sever(self, connection: Any) -> None:
        """The cancelled statement is still running: cut its connection, so the thread gets an error now."""
        with self._lock:
            if self._connection is not connection:
                return  # the transaction ended meanwhile: the connection is back in the pool, or gone
            _shut_down(connection)

    def release(self) -> None:
        """The delivery is over: its thread may go on to the next message, out of this deadline's reach."""
        with self._lock:
            self.thread = None

    def watch(self, connection: Any) -> None:
        """From now on, `connection` (a DBAPI connection) is what expire() interrupts."""
        with self._lock:
            self._connection = connection

    def unwatch(self, connection: Any = None) -> None:
        """Stop watching `connection` (default: whatever is watched); from then on nothing here touches it."""
        with self._lock:
            if connection is None or self._connection is connection:
                self._connection = None


def _interrupt(connection: Any) -> None:
    """Abort what a DBAPI connection is running: sqlite3's interrupt(), psycopg's cancel request."""
    if hasattr(connection, "interrupt"):
        connection.interrupt()
    elif hasattr(connection, "cancel_safe"):  # psycopg >= 3.2: bounded wait for the cancel to be sent
        threading.Thread(target=connection.cancel_safe, kwargs={"timeout": 5.0}, daemon=True).start()
    elif hasattr(connection, "cancel"):
        threading.Thread(target=connection.cancel, daemon=True).start()


def _shut_down(connection: Any) -> None:
    """Shut down a psycopg connection's socket under the thread waiting on it; the driver then reports the
    connection lost, and SQLAlchemy invalidates it instead of returning it to the pool."""
    with contextlib.suppress(Exception):  # already closed: nothing left to cut
        duplicate = socket.socket(fileno=os.dup(connection.pgconn.socket))
        with duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)  # acts on the connection, not just on this descriptor


_current = threading.local()  # .deadline of the delivery running on this thread


def _checked_in(dbapi_connection: Any, _record: Any) -> None:
    """The pool took a connection back (on the thread that used it): its deadline lets go of it."""
    deadline: Deadline | None = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.unwatch(dbapi_connection)


class ServiceStore(DeliveryStore):
    """The delivery store with a connection pool, whose transactions respect the thread's Deadline.

    The deadline watches the connection from the moment it is taken from the pool (connect) until it is
    back (the pool's checkin): the first statement (BEGIN and the preamble), the COMMIT and the rollback
    the pool does on its return can hang on a dead server as well. Not a moment longer: by then another
    delivery may hold it.
    """

    def __init__(self, url: str, *, lock_timeout: float, pool_size: int | None = None) -> None:
        from sqlalchemy import event

        super().__init__(url, lock_timeout=lock_timeout, pool_size=pool_size)
        event.listen(self.engine, "checkin", _checked_in)

    def connect(self) -> Connection:
        connection = super().connect()
        deadline: Deadline | None = getattr(_current, "deadline", None)
        if deadline is not None:
            deadline.watch(connection.connection.dbapi_connection)
        return connection

    @contextlib.contextmanager
    def transaction(self, *, commit: bool = True, sender: str | None = None) -> Iterator[DeliveryTransaction]:
        deadline: Deadline | None = getattr(_current, "deadline", None)
        if deadline is None:
            with super().transaction(commit=commit, sender=sender) as tx:
                yield tx
            return
        deadline.check()
        try:
            with super().transaction(commit=commit, sender=sender) as tx:
                deadline.check()
                yield tx
                # The last moment to roll back instead of committing.
                deadline.check()
        except Exception as exc:
            if deadline.expired and not isinstance(exc, DeliveryTimeout):
                raise deadline.error() from exc
            raise
        finally:
            deadline.unwatch()


class Deliverer:
    """Runs deliveries for the service: worker threads, one pooled store, a deadline per message.

    `config` may be replaced while the service runs (a reload, service/reload.py): each delivery reads it once,
    at its start, and runs to its end with that one."""

    def __init__(self, config: Config, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics  # service/metrics.py, when [service] metrics is on
        threads = config.service.threads
        self.store = ServiceStore(config.resolved_database_url(), lock_timeout=config.lock_timeout, pool_size=threads)
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="delivery")
        self.sender = Sender(config)  # outgoing mail has threads and connections of its own (service/sender.py)

    def reconfigure(self, config: Config) -> None:
        """Run the next deliveries, and send the next notifications, with `config` (a reload)."""
        self.config = config
        self.sender.config = config

    async def deliver(
        self, raw: bytes, envelope: Envelope, *, dry_run: bool = False, want_json: bool = False
    ) -> Answer:
        """Deliver one message in a worker thread; never raises for the message's sake."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        config = self.config
        deadline = Deadline(config.delivery_timeout)
        timer = loop.call_later(deadline.seconds, deadline.expire)
        work = (config, started, deadline, raw, envelope, dry_run, want_json)
        future = loop.run_in_executor(self.executor, self._work, *work)
        try:
            done, _pending = await asyncio.wait({future}, timeout=deadline.seconds + GRACE)
        finally:
            timer.cancel()
        if future in done:
            return future.result()
        print(f"email2ticket serve: a delivery is stuck past delivery_timeout + {GRACE:g} s", file=sys.stderr)
        stuck = Result(envelope, error=deadline.error(), dry_run=dry_run)
        if self.metrics is not None:
            self.metrics.delivered(stuck, started)
        return answer(stuck, want_json=want_json)

    def _work(
        self,
        config: Config,
        started: float,
        deadline: Deadline,
        raw: bytes,
        envelope: Envelope,
        dry_run: bool,
        want_json: bool,
    ) -> Answer:
        """In a worker thread: the delivery layer, with this thread's Deadline instead of the pipe's SIGALRM."""
        _current.deadline = deadline
        deadline.thread = threading.get_ident()
        try:
            deadline.check()  # it may have waited for a free thread for all its time
            result = deliver_message(raw, envelope, self.store, config, dry_run=dry_run)
        except DeliveryError as exc:
            result = Result(envelope, error=exc, dry_run=dry_run)
        finally:
            deadline.release()
            _current.deadline = None
        reply = answer(result, want_json=want_json)
        if result.crash is not None:
            sys.stderr.write(reply.stderr)  # the traceback belongs in the service's log too
        log_result(result, config)
        if self.metrics is not None:
            self.metrics.delivered(result, started)
        if has_notifications(result):
            # Committed: the MTA gets its answer now, and the notifications go out on a sender thread, never
            # on this one. Stopping the service before then leaves them pending, for a later retry.
            self.sender.submit(result)
        return reply

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.sender.close()
        self.store.dispose()


class Lifecycle:
    """Draining for a graceful shutdown: refuse new messages, let the ones in flight finish."""

    def __init__(self, gauge: Gauge | None = None) -> None:
        self.draining = False
        self.gauge = gauge  # the in-flight metric (service/metrics.py), when metrics are on
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        self._active += 1
        self._idle.clear()
        if self.gauge is not None:
            self.gauge.inc()
        try:
            yield
        finally:
            if self.gauge is not None:
                self.gauge.dec()
            self._active -= 1
            if not self._active:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
