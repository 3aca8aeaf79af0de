"""The resident delivery service's engine: the same delivery as the pipe, on pooled connections and threads.

A pipe process per mail pays for its imports and a new database connection on every message, a
hundred times what the delivery itself costs. `email2ticket serve` (service/server.py) pays once, and hands
each message to a `Deliverer`, which runs exactly what `email2ticket-deliver` runs in-process -
cli.deliver.deliver_message(), which calls deliver.deliver(), then report_outcome/report_error and
log_delivery - so the decision, the audit record, the output and the exit status are the pipe's.

What differs is the shell around it. The store is shared by a few threads, each delivery borrowing a
pooled connection. The pipe's time budget is SIGALRM, which only the main thread can receive, so here
each delivery gets a `Deadline`: when it passes, the running statement is cancelled, the transaction
rolls back instead of committing, and the verdict is 75 - the same effect as the pipe's budget.

This module also serves the thin client's Unix socket (the wire protocol is described in service/client.py);
LMTP (service/lmtp.py) uses the same Deliverer.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..cli.common import ArgumentError, report_crash
from ..cli.deliver import DeliveryTimeout, build_parser, deliver_message, log_delivery, report_error, report_outcome
from ..exits import DEFAULT_STATUS, DeliveryError, ExitCode
from ..mail.envelope import Envelope, envelope_from
from ..outbound.send import after_delivery
from ..store.delivery import DeliveryStore, DeliveryTransaction
from ..store.engine import normalise_url
from .client import FORWARDED_ENV, PROTOCOL

if TYPE_CHECKING:
    import argparse

    from ..config.model import Config
    from ..delivery.core import Outcome

# How long past delivery_timeout a delivery may take to roll back before the service answers 75
# without it (a thread stuck outside the database). Should it commit after all, the MTA's retry is
# recognised as a duplicate: the message still lands once.
GRACE = 10.0
REQUEST_TIMEOUT = 10.0  # a connected pipe client sends its request at once


@dataclass(frozen=True)
class Verdict:
    """What the pipe command prints and exits with, and what LMTP answers for one recipient."""

    exit_code: int
    status: str  # RFC 3463 enhanced status code
    reason: str  # one sentence
    stdout: bytes = b""
    stderr: bytes = b""


class Deadline:
    """One delivery's time budget, enforced from outside the thread that runs it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._expired = False
        self._connection: Any = None  # the DBAPI connection of the running transaction

    @property
    def expired(self) -> bool:
        return self._expired

    def error(self) -> DeliveryTimeout:
        return DeliveryTimeout(f"delivery took longer than delivery_timeout ({self.seconds:g} s); rolled back")

    def check(self) -> None:
        if self._expired:
            raise self.error()

    def expire(self) -> None:
        """Called by the event loop when the time is up: mark it, and interrupt the database."""
        with self._lock:
            self._expired = True
            connection = self._connection
        if connection is not None:
            _interrupt(connection)

    @contextlib.contextmanager
    def watching(self, connection: Any) -> Iterator[None]:
        with self._lock:
            self._connection = connection
        try:
            yield
        finally:
            with self._lock:
                self._connection = None


def _interrupt(connection: Any) -> None:
    """Abort what a DBAPI connection is running: sqlite3's interrupt(), psycopg's cancel request."""
    if hasattr(connection, "interrupt"):
        connection.interrupt()
    elif hasattr(connection, "cancel_safe"):  # psycopg >= 3.2: bounded wait for the cancel to be sent
        threading.Thread(target=connection.cancel_safe, kwargs={"timeout": 5.0}, daemon=True).start()
    elif hasattr(connection, "cancel"):
        threading.Thread(target=connection.cancel, daemon=True).start()


_current = threading.local()  # .deadline of the delivery running on this thread


class ServiceStore(DeliveryStore):
    """The delivery store with a connection pool, whose transactions respect the thread's Deadline."""

    @contextlib.contextmanager
    def transaction(self, *, commit: bool = True) -> Iterator[DeliveryTransaction]:
        deadline: Deadline | None = getattr(_current, "deadline", None)
        if deadline is None:
            with super().transaction(commit=commit) as tx:
                yield tx
            return
        deadline.check()
        try:
            with super().transaction(commit=commit) as tx:
                with deadline.watching(tx.conn.connection.dbapi_connection):
                    deadline.check()
                    yield tx
                # The last moment to roll back instead of committing.
                deadline.check()
        except Exception as exc:
            if deadline.expired and not isinstance(exc, DeliveryTimeout):
                raise deadline.error() from exc
            raise


class Deliverer:
    """Runs deliveries for the service: worker threads, one pooled store, a deadline per message."""

    def __init__(self, config: Config) -> None:
        self.config = config
        threads = config.service.threads
        self.store = ServiceStore(config.resolved_database_url(), lock_timeout=config.lock_timeout, pool_size=threads)
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="delivery")

    async def deliver(
        self, raw: bytes, envelope: Envelope, *, dry_run: bool = False, want_json: bool = False
    ) -> Verdict:
        """Deliver one message in a worker thread; never raises for the message's sake."""
        loop = asyncio.get_running_loop()
        deadline = Deadline(self.config.delivery_timeout)
        timer = loop.call_later(deadline.seconds, deadline.expire)
        future = loop.run_in_executor(self.executor, self._work, deadline, raw, envelope, dry_run, want_json)
        try:
            done, _pending = await asyncio.wait({future}, timeout=deadline.seconds + GRACE)
        finally:
            timer.cancel()
        if future in done:
            return future.result()
        print(f"email2ticket serve: a delivery is stuck past delivery_timeout + {GRACE:g} s", file=sys.stderr)
        return _render(lambda out, err: report_error(deadline.error(), want_json=want_json, out=out, err=err))

    def _work(self, deadline: Deadline, raw: bytes, envelope: Envelope, dry_run: bool, want_json: bool) -> Verdict:
        """In a worker thread: what cli.deliver.run() does around the delivery, minus stdin and SIGALRM."""
        _current.deadline = deadline
        started = time.monotonic()
        outcome: Outcome | None = None
        code, note = int(ExitCode.TEMPFAIL), ""
        out, err = io.StringIO(), io.StringIO()
        try:
            deadline.check()  # it may have waited for a free thread for all its time
            outcome = deliver_message(raw, envelope, self.store, self.config, dry_run=dry_run)
            code, note = int(outcome.exit_code), outcome.decision.status_reason
            report_outcome(outcome, want_json=want_json, out=out, err=err)
            status = DEFAULT_STATUS[outcome.exit_code]
            reason = note if code else _summary(outcome)
        except DeliveryError as exc:
            code, note, status, reason = int(exc.exit_code), exc.reason, exc.status, exc.reason
            report_error(exc, want_json=want_json, out=out, err=err)
        except Exception as exc:
            code = int(report_crash(exc, err))
            note = reason = err.getvalue().splitlines()[0].partition(" ")[2]
            status = DEFAULT_STATUS[ExitCode.TEMPFAIL]
            sys.stderr.write(err.getvalue())  # the traceback belongs in the service's log too
        finally:
            _current.deadline = None
            if not dry_run:
                log_delivery(self.config, envelope, outcome, code, note, time.monotonic() - started)
        if outcome is not None and (outcome.notifications or outcome.notifications_due):
            # Committed: the MTA gets its answer now, and the notifications go out on the next free thread.
            # Stopping the service before then leaves them pending, for the next delivery to retry.
            self.executor.submit(after_delivery, self.store, self.config, outcome)
        return Verdict(code, status, reason, _encode(out), _encode(err))

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.store.dispose()


def _summary(outcome: Outcome) -> str:
    ticket = f" ticket #{outcome.ticket}" if outcome.ticket is not None else ""
    return f"{outcome.decision.action}{ticket}"


def _render(report: Any) -> Verdict:
    out, err = io.StringIO(), io.StringIO()
    code = int(report(out, err))
    status, _, reason = err.getvalue().splitlines()[0].partition(" ")
    return Verdict(code, status, reason, _encode(out), _encode(err))


def _encode(stream: io.StringIO) -> bytes:
    return stream.getvalue().encode("utf-8", "surrogateescape")


class Lifecycle:
    """Draining for a graceful shutdown: refuse new messages, let the ones in flight finish."""

    def __init__(self) -> None:
        self.draining = False
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        self._active += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._active -= 1
            if not self._active:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


class ProtocolError(Exception):
    """The peer did not speak the thin client's protocol."""


@dataclass(frozen=True)
class PipeRequest:
    """One pipe invocation as the thin client forwards it: its argv and the environment it reads."""

    args: argparse.Namespace
    environ: dict[str, str]

    @property
    def database_url(self) -> str | None:
        url: str | None = self.args.database_url or self.environ.get("EMAIL2TICKET_DATABASE_URL") or None
        return url

    @property
    def config_file(self) -> str | None:
        path: str | None = self.args.config or self.environ.get("EMAIL2TICKET_CONFIG") or None
        return path


class PipeServer:
    """Serves the thin client (service/client.py): request, GO or NO, the message, the verdict."""

    def __init__(self, deliverer: Deliverer, lifecycle: Lifecycle) -> None:
        self.deliverer = deliverer
        self.lifecycle = lifecycle
        self.config = deliverer.config
        self.parser = build_parser()  # argparse parsers are reusable; building one costs more than parsing

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ProtocolError):
            pass  # the client went away or is not ours: it delivered nothing, or it exits 75 and is retried
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        argv, environ = await asyncio.wait_for(_read_request(reader), REQUEST_TIMEOUT)
        try:
            request = PipeRequest(self.parser.parse_args(argv), environ)
            refusal = self.refusal(request)
        except (ArgumentError, SystemExit):  # the standalone fallback reports it as the pipe always has
            refusal = "malformed command line"
        if refusal:
            writer.write(b"NO " + refusal.encode() + b"\n")
            return
        with self.lifecycle.in_flight():
            writer.write(b"GO %g\n" % self.config.delivery_timeout)
            raw = await asyncio.wait_for(
                _read_message(reader, self.config.max_message_bytes), self.config.delivery_timeout
            )
            args = request.args
            envelope = envelope_from(args.sender, args.recipient, args.queue_id, request.environ)
            verdict = await self.deliverer.deliver(raw, envelope, dry_run=args.dry_run, want_json=args.json)
            writer.write(b"%d %d %d\n" % (verdict.exit_code, len(verdict.stdout), len(verdict.stderr)))
            writer.write(verdict.stdout + verdict.stderr)
            await writer.drain()

    def refusal(self, request: PipeRequest) -> str | None:
        """Why this service must not take the message (the client then falls back), or None."""
        if self.lifecycle.draining:
            return "the service is shutting down"
        url = request.database_url
        if url is not None and normalise_url(url) != self.deliverer.store.url:
            return "the command line names another database than the service delivers into"
        wanted, own = request.config_file, self.config.source
        if wanted is not None and (own is None or os.path.realpath(wanted) != os.path.realpath(own)):
            return "the command line names another configuration file than the service runs with"
        return None


async def _read_request(reader: asyncio.StreamReader) -> tuple[list[str], dict[str, str]]:
    line = await reader.readuntil(b"\n")
    magic, _, length = line.strip().partition(b" ")
    if magic != PROTOCOL or not length.isdigit():
        raise ProtocolError(f"unexpected greeting {line[:40]!r}")
    body = await reader.readexactly(int(length))
    argv: list[str] = []
    environ: dict[str, str] = {}
    forwarded = {name.decode() for name in FORWARDED_ENV}
    for item in body.split(b"\0") if body else []:
        text = item.decode("utf-8", "surrogateescape")
        kind, _, value = text.partition("=")
        if kind == "arg":
            argv.append(value)
        elif kind == "env":
            name, _, content = value.partition("=")
            if name in forwarded:
                environ[name] = content
        else:
            raise ProtocolError(f"unexpected request item {kind!r}")
    return argv, environ


async def _read_message(reader: asyncio.StreamReader, limit: int) -> bytes:
    """The chunked message; beyond limit+1 bytes it is read and dropped (deliver() refuses it with 65)."""
    parts: list[bytes] = []
    kept = 0
    while True:
        header = await reader.readuntil(b"\n")
        try:
            size = int(header, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk header {header[:20]!r}") from None
        if size == 0:
            return b"".join(parts)
        chunk = await reader.readexactly(size)
        if kept <= limit:
            parts.append(chunk[: limit + 1 - kept])
            kept += len(parts[-1])
