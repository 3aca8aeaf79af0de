"""SMTP relays that misbehave in time, for the tests and bench/notify_isolation.py: one that accepts connections
and never says a word (a hung relay), and one that answers every command, but only after `delay` seconds.

    with StallingRelay() as relay:                # hung: connections are accepted and held, never answered
        ... relay.port, relay.connections
    with StallingRelay(delay=2.0) as relay:       # slow: a real SMTP dialogue, each reply 2 s late
        ... relay.messages

aiosmtpd (support/servers/smtpsink.py) answers at once; a relay whose replies are late has to be written by
hand, on plain sockets and a thread per connection. This module imports nothing from pytest.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

HOST = "127.0.0.1"


class StallingRelay:
    """A TCP server on 127.0.0.1:<free port>: `delay` None never answers, else every reply comes `delay` s late."""

    def __init__(self, delay: float | None = None) -> None:
        self.delay = delay
        self.host = HOST
        self._server = socket.create_server((HOST, 0), backlog=1024)
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []
        self._stopped = threading.Event()
        self.connections = 0
        self.messages = 0  # messages accepted (slow mode only)
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> StallingRelay:
        self._acceptor.start()
        return self

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._clients.append(client)
            if self.delay is not None:
                threading.Thread(target=self._converse, args=(client,), daemon=True).start()

    def _converse(self, client: socket.socket) -> None:
        """A minimal SMTP server whose every reply is late."""
        with contextlib.suppress(OSError), client.makefile("rb") as lines:
            self._reply(client, b"220 slow.relay.test ESMTP")
            in_data = False
            for line in lines:
                if in_data:
                    if line.rstrip(b"\r\n") == b".":
                        in_data = False
                        with self._lock:
                            self.messages += 1
                        self._reply(client, b"250 2.0.0 queued")
                    continue
                verb = line[:4].upper()
                if verb == b"DATA":
                    in_data = True
                    self._reply(client, b"354 go ahead")
                elif verb == b"QUIT":
                    self._reply(client, b"221 bye")
                    return
                else:
                    self._reply(client, b"250 ok")

    def _reply(self, client: socket.socket, line: bytes) -> None:
        assert self.delay is not None
        if self._stopped.wait(self.delay):
            raise OSError("stopped")
        client.sendall(line + b"\r\n")

    def stop(self) -> None:
        self._stopped.set()
        self._server.close()
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(OSError):
                    client.close()

    def __enter__(self) -> StallingRelay:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def wait_for(condition: Callable[[], object], timeout: float, step: float = 0.05) -> bool:
    """Poll `condition()` until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False
