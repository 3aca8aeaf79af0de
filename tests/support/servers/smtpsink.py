"""An SMTP sink on 127.0.0.1 for tests: a real aiosmtpd server that keeps what it is sent.

Every accepted transaction is recorded as a `Received` (envelope sender, recipients, message bytes as
they arrived: CRLF line ends, dot-stuffing undone). Setting `mail_reply`, `rcpt_reply` or `data_reply`
to an SMTP answer ("451 4.3.0 try later", "550 5.1.1 no such user") makes the sink refuse that step
instead; the port is chosen by the kernel, so tests can run in parallel.

    from support.servers.smtpsink import SmtpSink

    with SmtpSink() as sink:
        config = NotificationsConfig(from_address="helpdesk@example.org", method="smtp",
                                     smtp_host=sink.host, smtp_port=sink.port)
        ...
        [received] = sink.messages          # or sink.new_messages(): those since the last call

As a fixture: tests/conftest.py registers this module as a plugin, so every test can ask for `smtp_sink`:

    def test_sends(smtp_sink: SmtpSink) -> None:
        ...
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pytest
from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One message the sink accepted."""

    mail_from: str  # "" for the null sender
    rcpt_tos: tuple[str, ...]
    data: bytes


class _Handler:
    """aiosmtpd handler hooks: record or refuse, as the sink is told."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self.sink.mail_reply:
            return self.sink.mail_reply
        envelope.mail_from = address  # "<>" for the null sender: aiosmtpd takes an empty one for no MAIL at all
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self.sink.rcpt_reply:
            return self.sink.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.data_reply:
            return self.sink.data_reply
        sender = "" if envelope.mail_from == "<>" else envelope.mail_from
        self.sink._record(Received(sender, tuple(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 queued"


class _Controller(Controller):
    """Controller listening on a port the kernel picks (port 0), learnt before the readiness check."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """An SMTP server on 127.0.0.1:<free port>; a context manager that starts and stops it."""

    def __init__(self) -> None:
        self.host = HOST
        self.port = 0
        self.mail_reply: str | None = None
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self._messages: list[Received] = []
        self._taken = 0  # how many new_messages() has handed out
        self._lock = threading.Lock()
        self._controller = _Controller(_Handler(self), hostname=HOST, port=0)

    @property
    def messages(self) -> list[Received]:
        """The messages accepted so far, oldest first (a copy)."""
        with self._lock:
            return list(self._messages)

    def new_messages(self) -> list[Received]:
        """The messages accepted since the last call (all of them, the first time), oldest first."""
        with self._lock:
            fresh, self._taken = self._messages[self._taken :], len(self._messages)
        return fresh

    def _record(self, received: Received) -> None:
        with self._lock:
            self._messages.append(received)

    def start(self) -> SmtpSink:
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A running SmtpSink for one test."""
    with SmtpSink() as sink:
        yield sink
