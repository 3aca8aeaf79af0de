"""Handing a rendered notification (outbound/render.py) to the local MTA: the imperative shell of notifications.

Two transports, chosen by notifications.method:

- "sendmail" (default): `sendmail -t -i -f <envelope sender>` with the message on stdin. Recipients come
  from To: (-t), so no address ever reaches a command line; -i keeps a line holding only "." from
  ending the message early. Postfix, Exim and OpenSMTPD all ship this interface. An untrusted user's
  -f is ignored by Exim unless `untrusted_set_sender` allows it, except the null sender "<>".
- "smtp": a plain SMTP session with a relay on this host (127.0.0.1:25 by default). No STARTTLS and no
  AUTH: the relay is local, and it is the relay that delivers onwards with TLS. The message's LF line
  ends become CRLF here, because smtplib sends bytes exactly as given.

Every failure becomes one SendFailed carrying a one-line reason and whether a retry may succeed
(`temporary`): the post-commit send loop records it and, when temporary, tries again later. The ticket
is already committed by then, so nothing here may raise anything else. subprocess and smtplib are
imported only when a notification is actually sent.

A send has one deadline, not a timeout per step: smtplib's `timeout` bounds each connect, read and write
on its own, so a relay that answers every command just inside it (greeting, EHLO, MAIL, RCPT, DATA, the
message, QUIT) would hold a delivery for seven times as long. Here each step gets only what is left.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from typing import TYPE_CHECKING

from ..errors import describe_error

if TYPE_CHECKING:
    import smtplib

    from ..config.model import NotificationsConfig
    from .render import OutgoingMail

# sysexits(3): what a retry may cure. EX_TEMPFAIL is what Postfix's and Exim's sendmail say for "queue
# later"; EX_OSERR (fork failed, out of memory) is treated as temporary by Postfix's own pipe(8) too.
TEMPORARY_EXITS = frozenset({71, 75})
_REASON_MAX = 300
_BARE_LF = re.compile(rb"\r?\n")


class SendFailed(Exception):
    """The notification was not handed over; `temporary` says whether trying again later may work."""

    def __init__(self, reason: str, *, temporary: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary


def send(mail: OutgoingMail, config: NotificationsConfig, *, deadline: float | None = None) -> None:
    """Hand `mail` to the MTA as configured, by `deadline` (time.monotonic(); default: `timeout` from now);
    SendFailed, and only SendFailed, when that did not work."""
    if deadline is None:
        deadline = time.monotonic() + config.timeout
    try:
        if config.method == "sendmail":
            _send_with_sendmail(mail, config, deadline)
        elif config.method == "smtp":
            _send_with_smtp(mail, config, deadline)
        else:
            raise SendFailed(f"notifications.method is {config.method!r}: nothing is sent", temporary=False)
    except SendFailed:
        raise
    except Exception as exc:  # a bug here must not undo a committed ticket: report it as a retryable failure
        raise SendFailed(f"unexpected {type(exc).__name__}: {_one_line(str(exc))}", temporary=True) from exc


def sendmail_argv(mail: OutgoingMail, config: NotificationsConfig) -> list[str]:
    """The sendmail command line: recipients from To:, the envelope sender with -f ("<>" for the null one)."""
    return [config.sendmail, "-t", "-i", "-f", mail.envelope_from or "<>"]


def _send_with_sendmail(mail: OutgoingMail, config: NotificationsConfig, deadline: float) -> None:
    """Run sendmail; stderr goes to a file, not a pipe, so a daemon it leaves behind cannot keep us waiting."""
    import signal
    import subprocess
    import tempfile

    argv = sendmail_argv(mail, config)
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True
            )
        except OSError as exc:
            raise SendFailed(f"cannot run {config.sendmail}: {exc.strerror or exc}", temporary=True) from exc
        given = max(0.0, deadline - time.monotonic())
        try:
            process.communicate(mail.data, timeout=given)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid, signal.SIGKILL)  # the whole group: a shell wrapper's children too
            process.wait()
            raise SendFailed(f"{config.sendmail} took longer than {round(given, 1):g} s", temporary=True) from None
        errors.seek(0)
        first_error = _one_line(errors.read(4096).decode("utf-8", "replace").partition("\n")[0])
    code = process.returncode
    if code == 0:
        return
    if code < 0:
        raise SendFailed(f"{config.sendmail} was killed by signal {-code}", temporary=True)
    detail = f": {first_error}" if first_error else ""
    raise SendFailed(f"{config.sendmail} exited with status {code}{detail}", temporary=code in TEMPORARY_EXITS)


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pid, sig)


def _send_with_smtp(mail: OutgoingMail, config: NotificationsConfig, deadline: float) -> None:
    """One SMTP transaction, over by `deadline` whatever the relay does."""
    import smtplib
    import socket

    from .smtp_session import BoundedSMTP

    where = f"SMTP {config.smtp_host}:{config.smtp_port}"
    try:
        # Our own host name, not socket.getfqdn(): that may wait for a reverse DNS lookup on every send.
        client = BoundedSMTP(deadline, local_hostname=socket.gethostname())
        client.connect(config.smtp_host, config.smtp_port)
    except smtplib.SMTPResponseException as exc:  # even a 5xx greeting refuses this host, not this message
        text = _smtp_text(exc.smtp_code, exc.smtp_error)
        raise SendFailed(f"{where}: connection refused: {text}", temporary=True) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise SendFailed(f"{where}: cannot connect: {describe_error(exc, name_type=False)}", temporary=True) from exc
    try:
        client.sendmail(mail.envelope_from, [mail.recipient], _BARE_LF.sub(b"\r\n", mail.data))
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        text = "; ".join(_smtp_text(code, answer) for code, answer in exc.recipients.values())
        temporary = bool(codes) and all(400 <= code < 500 for code in codes)
        raise SendFailed(f"{where}: recipient refused: {text}", temporary=temporary) from exc
    except smtplib.SMTPResponseException as exc:  # MAIL FROM, DATA or end-of-data refused
        raise _refused(where, "message", exc) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise SendFailed(f"{where}: {describe_error(exc, name_type=False)}", temporary=True) from exc
    finally:
        _quit(client)


def _refused(where: str, what: str, exc: smtplib.SMTPResponseException) -> SendFailed:
    """A 4xx answer may succeed later; a 5xx answer will not."""
    temporary = not 500 <= exc.smtp_code < 600
    return SendFailed(f"{where}: {what} refused: {_smtp_text(exc.smtp_code, exc.smtp_error)}", temporary=temporary)


def _quit(client: smtplib.SMTP) -> None:
    """End the session; the message is already accepted, so a failing QUIT must not make it look unsent."""
    try:
        client.quit()
    except Exception:
        client.close()


def _smtp_text(code: int, answer: bytes | str) -> str:
    text = answer.decode("utf-8", "replace") if isinstance(answer, bytes) else answer
    return _one_line(f"{code} {text}")


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _REASON_MAX else text[: _REASON_MAX - 1] + "…"
