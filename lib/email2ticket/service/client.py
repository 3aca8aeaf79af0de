"""The front door of `email2ticket-deliver`: hand the message to the resident service, else deliver standalone.

A pipe command starts a fresh interpreter for every mail, so what this module imports is paid per
message. When a delivery service socket is configured (`--socket PATH`, `$EMAIL2TICKET_SOCKET`, or
`[service] socket` in the configuration file) the message is streamed to `email2ticket serve`, which
has everything loaded and connected, and the command exits with the service's verdict. This path
imports only C modules that a bare `python3 -IS` already has or loads in microseconds: `_socket`
(the `socket` wrapper costs more CPU than the interpreter's own start-up), `posix` (not `os`), no
`typing`, `json`, `enum` or `re`. `tomllib` is imported only when the socket must be read from the
configuration file. Without a service, or when it cannot be reached and `fallback = "standalone"`,
the normal in-process delivery (email2ticket.cli.deliver) runs instead. A socket that belongs to
anyone but root, this user or `[service] user`, or lies in a directory every user may write (without
the sticky bit), is treated as unreachable: whoever put it there would get the mail.

Once the message has been handed over, the service's verdict is the only truth: a service that
disappears before answering makes this command exit 75, and the MTA's retry is safe because the
message's idempotency key is written in the same transaction as the ticket.

Wire protocol (version 1) on a Unix stream socket, one message per connection:

    client:  b"E2T1 <n>\\n" + n bytes of request: NUL-separated items, "arg=<argv item>" and
             "env=<NAME>=<value>" (the environment variables in FORWARDED_ENV)
    service: b"GO <delivery_timeout seconds>\\n"  or  b"NO <reason>\\n" (the client falls back)
    client:  the raw message as chunks b"<hex length>\\n<bytes>", ended by b"0\\n"
    service: b"<exit status> <stdout length> <stderr length>\\n" + stdout bytes + stderr bytes

A message up to PIPELINE_LIMIT is read before connecting and sent right behind the request, without
waiting for GO (one round trip less; if the answer is NO, the client still has it all). The end
marker means a client that dies mid-message never gets a truncated message delivered.
"""

from __future__ import annotations

import _socket
import io
import posix
import sys

from ..errors import describe_error

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (about 10 ms)
if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

PROTOCOL = b"E2T1"
SOCKET_ENV = b"EMAIL2TICKET_SOCKET"
CONFIG_ENV = b"EMAIL2TICKET_CONFIG"
SYSTEM_CONFIG = "/etc/email2ticket/config.toml"
# What the standalone delivery would read from the environment, forwarded so the service decides alike.
FORWARDED_ENV = (b"SENDER", b"RECIPIENT", b"ORIGINAL_RECIPIENT", b"EMAIL2TICKET_DATABASE_URL", b"EMAIL2TICKET_CONFIG")
# The options of email2ticket-deliver that take a value; any other argument but the flags below,
# or an option spelt differently, makes the client step aside and lets argparse judge the command line.
VALUE_OPTIONS = ("--config", "--database-url", "--sender", "--recipient", "--queue-id", "--socket", "--fallback")
FLAG_OPTIONS = ("--dry-run", "--json")
FALLBACKS = ("standalone", "tempfail")

EX_TEMPFAIL = 75
EXIT_CODES = (0, 65, 75, 77)
CONNECT_TIMEOUT = 5.0  # connecting and the service's GO; nothing of the message is consumed yet
ANSWER_MARGIN = 30.0  # beyond the service's delivery_timeout, for its roll-back and the reply
CHUNK = 256 * 1024
# A message up to this size is read before connecting and sent with the request, without waiting for
# the service's GO first; should the service refuse it, it is still here for the standalone delivery.
PIPELINE_LIMIT = 256 * 1024
# What the service accepts (service/pipe.py): a request of at most MAX_REQUEST bytes (argv and the
# forwarded environment; a larger one is delivered standalone), chunks of at most MAX_CHUNK bytes, whose
# headers are hex digits only. This client sends chunks of CHUNK, or PIPELINE_LIMIT + 1, bytes at most.
MAX_REQUEST = 64 * 1024
MAX_CHUNK = 1024 * 1024


class ServiceUnavailable(Exception):
    """The service did not take the message; what was read of standard input is kept for standalone."""


class ServiceLost(Exception):
    """The message was (partly) handed over but no verdict came back: exit 75, the retry is safe."""


def run() -> None:
    """`email2ticket-deliver` (bin/): through the service when one is configured and up, else standalone.

    After the service's verdict the process ends at once (`_exit`), without the interpreter's shutdown:
    tearing down the modules costs as many instructions as everything else the client does (6.7 M of 33 M,
    measured with callgrind against a live service), and there is nothing to clean up: the service's output
    went straight to the descriptors, the socket closes with the process. The standalone delivery ends
    normally (its database connections close politely)."""
    stdin = Stdin()
    try:
        code = deliver_via_service(sys.argv[1:], stdin)
    except Exception:  # only before the service has the message (after, it is 75): standalone, with all of it
        code = None
    if code is None:
        sys.exit(deliver_standalone(stdin))
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib is not loaded at start-up
            stream.flush()
        except Exception:
            pass
    posix._exit(code)


def deliver_standalone(stdin: Stdin) -> int:
    """The full in-process delivery; started with -S, the third-party packages need `site` first."""
    if sys.flags.no_site and "site" not in sys.modules:
        import site

        site.main()
    try:
        from ..cli.deliver import main as standalone_main
    except BaseException as exc:  # a broken install must defer the mail (75), never bounce it (1)
        _write(2, f"4.3.5 email2ticket is not installed correctly: {type(exc).__name__}: {exc}\n")
        return EX_TEMPFAIL
    return standalone_main(None, stdin=stdin.replay() if stdin.parts else None)


class Stdin:
    """Standard input as far as this process has read it, to hand it on whole if the service cannot take it."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []  # kept as read, so even a failed read loses nothing
        self.complete = False

    @property
    def head(self) -> bytes:
        return b"".join(self.parts)

    def read_head(self, limit: int) -> None:
        """Read up to `limit` bytes; `complete` tells whether that was all of it."""
        size = 0
        while size < limit:
            part = posix.read(0, min(CHUNK, limit - size))
            if not part:
                self.complete = True
                break
            self.parts.append(part)
            size += len(part)

    def replay(self) -> io.BufferedReader:
        """The whole of standard input again: what was read, then the rest."""
        return io.BufferedReader(_Replay(self.head))


class _Replay(io.RawIOBase):
    def __init__(self, head: bytes) -> None:
        self.head = memoryview(head)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        if self.head:
            size = min(len(target), len(self.head))
            target[:size] = self.head[:size]
            self.head = self.head[size:]
            return size
        data = posix.read(0, len(target))
        target[: len(data)] = data
        return len(data)


def deliver_via_service(argv: list[str], stdin: Stdin) -> int | None:
    """The exit status the service decided, or None when the message should be delivered standalone."""
    options = scan_arguments(argv)
    if options is None or posix.isatty(0):
        return None  # let the standalone path report the command line or the terminal
    config = options.get("--config") or _environ(CONFIG_ENV) or None
    path = options.get("--socket")
    if path is None:
        path = _environ(SOCKET_ENV)
    if path is None:
        path = read_service_config(config).get("socket")
    if not path:
        return None
    stdin.read_head(PIPELINE_LIMIT + 1)
    try:
        refusal = socket_refusal(path, config)
        if refusal is not None:
            raise ServiceUnavailable(refusal)
        connection = connect(path, argv, stdin)
    except ServiceUnavailable as exc:
        fallback = options.get("--fallback") or read_service_config(config).get("fallback") or "standalone"
        if fallback != "tempfail":
            return None
        _write(2, f"4.3.0 the delivery service at {path} is unavailable ({exc}) and fallback is tempfail\n")
        return EX_TEMPFAIL
    try:
        return hand_over(connection, stdin)
    except ServiceLost as exc:
        _write(2, f"4.3.0 the delivery service at {path} {exc}; the message will be retried\n")
        return EX_TEMPFAIL
    except Exception as exc:  # a bug here must defer the mail, never bounce it
        _write(2, f"4.3.0 internal error in the delivery client: {type(exc).__name__}: {exc}\n")
        return EX_TEMPFAIL
    finally:
        connection.close()


def scan_arguments(argv: list[str]) -> dict[str, str] | None:
    """The options of the command line, or None when it is anything argparse might read differently."""
    options: dict[str, str] = {}
    items = iter(argv)
    for item in items:
        name, eq, value = item.partition("=")
        if name in VALUE_OPTIONS:
            following = value if eq else next(items, None)
            if following is None:
                return None
            options[name] = following
        elif item not in FLAG_OPTIONS:
            return None
    if options.get("--fallback", "standalone") not in FALLBACKS:
        return None
    return options


def socket_refusal(path: str, config: str | None) -> str | None:
    """Why the socket at `path` must not be handed mail, or None (then connecting tells whether it is up).

    Whoever can put a socket there could take every message and answer 0: the socket must belong to root,
    to this user or to `[service] user`, and its directory must not be writable by every user unless it
    has the sticky bit (as /tmp), where nobody can replace another user's file.
    """
    directory = path.rpartition("/")[0] or "/" if "/" in path else "."
    try:
        owner = posix.stat(path).st_uid
        mode = posix.stat(directory).st_mode
    except OSError:
        return None
    if mode & 0o002 and not mode & 0o1000:
        return f"its directory {directory} is writable by every user"
    if owner not in (0, posix.geteuid()) and owner != _service_uid(config):
        return f"it belongs to uid {owner}, not to root, this user or [service] user"
    return None


def _service_uid(config: str | None) -> int | None:
    name = read_service_config(config).get("user")
    if not name:
        return None
    import pwd  # a C module; only paid for by a socket that belongs to another user

    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def read_service_config(explicit: str | None) -> dict[str, str]:
    """`[service] socket`, `fallback` and `user` from the configuration file, the way config/ finds it.

    A file without a [service] table costs a read and no TOML parsing. Any problem means "no
    service": the standalone delivery then reads the file itself and reports the problem (75).
    """
    path = explicit or (SYSTEM_CONFIG if _exists(SYSTEM_CONFIG) else None)
    if path is None:
        return {}
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        if b"[service]" not in data:
            return {}
        import tomllib

        table = tomllib.loads(data.decode("utf-8")).get("service", {})
    except Exception:
        return {}
    wanted = ("socket", "fallback", "user")
    return {key: value for key, value in table.items() if key in wanted and isinstance(value, str)}


def connect(path: str, argv: list[str], stdin: Stdin) -> _socket.socket:
    """Connect and send the request - with the whole message when it was small enough to read first -
    then wait for GO. ServiceUnavailable means the service did not take the message: `stdin` still
    holds what was read, for the standalone delivery."""
    request = encode_request(argv)
    connection = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        connection.settimeout(CONNECT_TIMEOUT)
        connection.connect(path)
        if stdin.complete:  # no round trip before the message: the service reads it after its GO
            request += _chunk(stdin.head) + _chunk(b"")
        try:  # noqa: SIM105 - contextlib is not loaded at start-up; importing it costs more than this
            connection.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered NO and closed without reading: the answer is still there to read
        answer = _read_line(connection)
    except (OSError, ServiceLost) as exc:
        connection.close()
        raise ServiceUnavailable(describe_error(exc, name_type=False)) from None
    if not answer.startswith(b"GO "):
        connection.close()
        raise ServiceUnavailable(answer[3:].decode("utf-8", "replace") if answer.startswith(b"NO ") else "no GO")
    try:
        timeout = float(answer[3:])
    except ValueError:
        connection.close()
        raise ServiceUnavailable(f"unexpected answer {answer[:40]!r}") from None
    connection.settimeout(timeout + ANSWER_MARGIN)
    return connection


def encode_request(argv: list[str]) -> bytes:
    items = [b"arg=" + arg.encode("utf-8", "surrogateescape") for arg in argv]
    environ = posix.environ
    items += [b"env=" + name + b"=" + environ[name] for name in FORWARDED_ENV if name in environ]
    body = b"\0".join(items)
    if len(body) > MAX_REQUEST:
        raise ServiceUnavailable(f"the command line and environment exceed {MAX_REQUEST} bytes")
    return PROTOCOL + b" %d\n" % len(body) + body


def _chunk(data: bytes) -> bytes:
    return b"%x\n" % len(data) + data


def hand_over(connection: _socket.socket, stdin: Stdin) -> int:
    """Send the rest of the message (a large one), then relay the verdict to stdout, stderr and the exit status."""
    if not stdin.complete:
        try:
            connection.sendall(_chunk(stdin.head))
            while True:
                chunk = posix.read(0, CHUNK)
                connection.sendall(_chunk(chunk))
                if not chunk:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass  # the service stopped reading: it may still have answered (read below), or it died
        except OSError as exc:
            raise ServiceLost(f"failed while receiving the message ({describe_error(exc, name_type=False)})") from None
    try:
        status = _read_line(connection).split(b" ")
        code, out_length, err_length = int(status[0]), int(status[1]), int(status[2])
        output = _read_exactly(connection, out_length + err_length)
    except (OSError, ValueError, IndexError) as exc:
        raise ServiceLost(f"gave no verdict ({describe_error(exc, name_type=False)})") from None
    if code not in EXIT_CODES:
        raise ServiceLost(f"answered with an unknown exit status {code}")
    _write(1, output[:out_length])
    _write(2, output[out_length:])
    return code


def _read_line(connection: _socket.socket) -> bytes:
    """One reply line, a byte at a time: lines are short, and nothing after them may be consumed."""
    data = b""
    while not data.endswith(b"\n"):
        byte = connection.recv(1)
        if not byte:
            raise ServiceLost("closed the connection before answering")
        data += byte
        if len(data) > 4096:
            raise ServiceLost("sent an overlong line")
    return data[:-1]


def _read_exactly(connection: _socket.socket, size: int) -> bytes:
    parts, remaining = [], size
    while remaining:
        part = connection.recv(min(remaining, CHUNK))
        if not part:
            raise ServiceLost("closed the connection in the middle of its verdict")
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def _write(fd: int, data: bytes | str) -> None:
    view = memoryview(data.encode("utf-8", "replace") if isinstance(data, str) else data)
    while view:
        view = view[posix.write(fd, view) :]


def _environ(name: bytes) -> str | None:
    value = posix.environ.get(name)
    return value.decode("utf-8", "surrogateescape") if value is not None else None


def _exists(path: str) -> bool:
    try:
        posix.stat(path)
    except OSError:
        return False
    return True
