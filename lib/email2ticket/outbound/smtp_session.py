"""An SMTP client session with one deadline for all of it, for outbound/transport.py.

smtplib's `timeout` is a socket timeout: it bounds each connect, each read and each write on its own. A
relay that answers every command a little inside it passes every check and still holds the sender for
several times as long (seven steps: connect and greeting, EHLO, MAIL, RCPT, DATA, the message, QUIT), and
a notification is sent while a delivery, a service thread or the admin waits. So before every step the
socket gets only the time left until the deadline, and a step that would start past it fails at once.
"""

from __future__ import annotations

import smtplib
import socket
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Buffer


class BoundedSMTP(smtplib.SMTP):
    """smtplib.SMTP whose connect, reads and writes all end by `deadline` (a time.monotonic() value)."""

    def __init__(self, deadline: float, **options: Any) -> None:
        self.deadline = deadline
        super().__init__(timeout=self._left(), **options)  # no host: nothing is sent before connect()

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the send ran out of time")  # an OSError: reported like any timeout
        return left

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return super()._get_socket(host, port, self._left())  # type: ignore[no-any-return, misc]

    def send(self, s: Buffer | str) -> None:
        if self.sock is not None:
            self.sock.settimeout(self._left())
        super().send(s)

    def getreply(self) -> tuple[int, bytes]:
        if self.sock is not None:
            self.sock.settimeout(self._left())
        return super().getreply()
