"""The thin client's side of the service: one pipe invocation per connection (protocol in service/client.py).

The client forwards its argv and the environment the pipe command reads; the service answers GO (or
NO: the client then falls back as configured), reads the chunked message, delivers it through the
Deliverer (service/worker.py) and sends back the exit status with the pipe's stdout and stderr.

Whoever can connect may send anything, so every read is bounded: a request of at most MAX_REQUEST bytes,
chunk headers of hex digits only announcing at most MAX_CHUNK bytes, and at most max_message_bytes of
message (plus one chunk): past that the rest is not read, and the message gets the pipe's 65 `5.3.4`.
Malformed framing closes the connection with one line in the service's log.

`E2T1 PING` instead of a request is answered `PONG <pid>` and nothing else: `email2ticket doctor`
(ops/service_check.py) asks it to see that a service answers on the socket without delivering anything.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING

from msgspec import Struct

from ..cli.common import ArgumentError
from ..cli.deliver import build_parser
from ..mail.envelope import envelope_from
from ..store.engine import normalise_url
from .client import FORWARDED_ENV, MAX_CHUNK, MAX_REQUEST, PROTOCOL

if TYPE_CHECKING:
    import argparse

    from ..config.model import Config
    from .worker import Deliverer, Lifecycle

REQUEST_TIMEOUT = 10.0  # a connected pipe client sends its request at once
HEADER_LINE = 32  # "E2T1 <length>\n" and "<hex length>\n" are far shorter
PING = b"PING"  # in place of the request's length: doctor's "are you there?" (ops/service_check.py)
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


class ProtocolError(Exception):
    """The peer did not speak the thin client's protocol."""


class PipeRequest(Struct, frozen=True):
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
        self.parser = build_parser()  # argparse parsers are reusable; building one costs more than parsing

    @property
    def config(self) -> Config:
        """The deliverer's, which a reload replaces (service/reload.py)."""
        return self.deliverer.config

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away: it delivered nothing, or it exits 75 and is retried
        except ProtocolError as exc:  # not our client, or not a sane one: say so once, and hang up
            _log(f"closed a pipe connection: {exc}")
        except Exception as exc:  # a bug: one line in the log, never an unretrieved task exception
            _log(f"closed a pipe connection after an internal error: {type(exc).__name__}: {exc}")
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_items = await asyncio.wait_for(_read_request(reader), REQUEST_TIMEOUT)
        if request_items is None:
            writer.write(b"PONG %d\n" % os.getpid())
            await writer.drain()
            return
        argv, environ = request_items
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
            reply = await self.deliverer.deliver(raw, envelope, dry_run=args.dry_run, want_json=args.json)
            stdout, stderr = _encode(reply.stdout), _encode(reply.stderr)
            writer.write(b"%d %d %d\n" % (reply.exit_code, len(stdout), len(stderr)))
            writer.write(stdout + stderr)
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


async def _read_line(reader: asyncio.StreamReader, what: str) -> bytes:
    """One header line, without its LF; a longer one is never buffered beyond the reader's limit (64 KiB)."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise ProtocolError(f"{what} line longer than {HEADER_LINE} bytes") from None
    if len(line) > HEADER_LINE:
        raise ProtocolError(f"{what} line longer than {HEADER_LINE} bytes: {line[:HEADER_LINE]!r}")
    return line[:-1]


async def _read_request(reader: asyncio.StreamReader) -> tuple[list[str], dict[str, str]] | None:
    """The request's argv and forwarded environment; None for a ping."""
    line = await _read_line(reader, "request")
    magic, _, length = line.partition(b" ")
    if magic == PROTOCOL and length == PING:
        return None
    if magic != PROTOCOL or not length.isdigit():
        raise ProtocolError(f"unexpected greeting {line[:40]!r}")
    if int(length) > MAX_REQUEST:
        raise ProtocolError(f"request of {int(length)} bytes, over the {MAX_REQUEST}-byte maximum")
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
    """The chunked message, or its first limit+1 bytes when it is larger: the rest is never read, and
    deliver() refuses those bytes with the pipe's 65 5.3.4."""
    parts: list[bytes] = []
    kept = 0
    while True:
        size = chunk_size(await _read_line(reader, "chunk header"))
        if size == 0:
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        kept += size
        if kept > limit:
            return b"".join(parts)[: limit + 1]


def chunk_size(header: bytes) -> int:
    """A chunk header's length: hex digits only (no sign, prefix, space or "_"), at most MAX_CHUNK."""
    if not header or len(header) > 8 or not _HEX_DIGITS.issuperset(header):
        raise ProtocolError(f"malformed chunk header {header[:20]!r}")
    size = int(header, 16)
    if size > MAX_CHUNK:
        raise ProtocolError(f"chunk of {size} bytes, over the {MAX_CHUNK}-byte maximum")
    return size


def _log(line: str) -> None:
    print(f"email2ticket serve: {line}", file=sys.stderr, flush=True)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")
