"""The thin client's side of the service: one pipe invocation per connection (protocol in service/client.py).

The client forwards its argv and the environment the pipe command reads; the service answers GO (or
NO: the client then falls back as configured), reads the chunked message, delivers it through the
Deliverer (service/worker.py) and sends back the exit status with the pipe's stdout and stderr.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..cli.common import ArgumentError
from ..cli.deliver import build_parser
from ..mail.envelope import envelope_from
from ..store.engine import normalise_url
from .client import FORWARDED_ENV, PROTOCOL

if TYPE_CHECKING:
    import argparse

    from .worker import Deliverer, Lifecycle

REQUEST_TIMEOUT = 10.0  # a connected pipe client sends its request at once


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


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")
