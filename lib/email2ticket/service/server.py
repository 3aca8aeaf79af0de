"""`email2ticket serve`: the process around the resident delivery service.

The listening sockets are bound once, by the first process: the thin client's Unix socket (mode and
group from the configuration, so the MTA's pipe user can connect) and, optionally, LMTP on a Unix or
loopback TCP socket. With `workers = 1` that process serves them itself; with more, it forks that
many workers which all accept on the same sockets (one Python interpreter's lock then no longer caps
throughput) and replaces any that dies. Should that supervising process die itself, however it dies
(SIGKILL, the OOM killer), the kernel sends its workers SIGTERM and they drain and exit: orphans would
go on serving, and a new `serve` would refuse to start beside them.

SIGHUP reloads the configuration file without closing anything (service/reload.py); the supervising
process passes it on to its workers. With `[service] metrics`, Prometheus metrics are served on a loopback
address by the first process, adding up the workers' (service/metrics.py).

Shutdown (SIGTERM or SIGINT) is graceful: the socket files are removed and nothing new is accepted,
so new pipe deliveries fall back as configured; LMTP sessions get 451 for a new transaction; every
message already handed over is delivered and answered, within delivery_timeout; then the process
exits 0. systemd is told READY=1 and STOPPING=1 when it asks ($NOTIFY_SOCKET).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from msgspec import Struct
from msgspec.structs import replace

from ..config.model import ServiceConfig
from ..config.service import parse_listen_address
from ..exits import ConfigurationError
from ..store.engine import redact
from .reload import Hangup, Reloader

if TYPE_CHECKING:
    from ..config.model import Config
    from .metrics import MetricsServer

BACKLOG = 1024  # a burst of pipe deliveries waits in the kernel, not in a connect error
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
RESPAWN_DELAY = 1.0  # seconds before replacing a worker that died, so a crash loop does not spin


class Listener(Struct, frozen=True):
    """A bound, listening socket and what it speaks."""

    kind: str  # "pipe" (service/client.py's protocol) or "lmtp"
    sock: socket.socket
    path: str | None  # the socket file, removed at shutdown
    where: str  # for the start-up line


def serve(
    config: Config,
    *,
    socket_path: str | None = None,
    lmtp: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    load: Callable[[], Config] | None = None,
) -> int:
    """Run the service until SIGTERM/SIGINT; the arguments override the configuration's [service]. On SIGHUP,
    `load` (default: the same file again) gives the configuration to reload."""
    started = config
    service = config.service
    service = replace(
        service,
        socket=service.socket if socket_path is None else socket_path or None,
        lmtp=service.lmtp if lmtp is None else lmtp or None,
        workers=workers or service.workers,
        threads=threads or service.threads,
    )
    if not service.socket and not service.lmtp:
        raise ConfigurationError("nothing to serve: set [service] socket and/or lmtp (or --socket / --lmtp)")
    config = replace(config, service=service)
    reloader = Reloader(load or (lambda: _load_again(started)), started, config)
    signal.signal(signal.SIGHUP, Hangup.remember)  # never the default (the end of the process), never lost
    _check_database(config)
    listeners = bind(service)
    metrics: MetricsServer | None = None
    try:
        if service.metrics:
            from .metrics import MetricsServer

            metrics = MetricsServer(config)  # before any fork: the workers inherit where to write their values
        where = ", ".join(f"{listener.kind} on {listener.where}" for listener in listeners)
        where += f", metrics on http://{metrics.where}/metrics" if metrics else ""
        print(
            f"email2ticket serve: {where}; database {redact(config.resolved_database_url())}; "
            f"{service.workers} process(es) x {service.threads} thread(s)",
            file=sys.stderr,
            flush=True,
        )
        if service.workers == 1:
            return _run_worker(reloader, listeners, notify=True)
        return _supervise(reloader, listeners, metrics)
    finally:
        _close(listeners)
        if metrics is not None:
            metrics.close()


def _load_again(started: Config) -> Config:
    """The configuration file the service started with, read again (the database stays the running one)."""
    from ..config.load import load_config

    return load_config(started.source, database_url=started.database_url) if started.source else started


def _check_database(config: Config) -> None:
    """Create a new SQLite database now, and say early when the schema needs `init`; never fatal."""
    from ..exits import DeliveryError
    from ..store.engine import ensure_schema, make_engine

    url = config.resolved_database_url()
    try:
        engine = make_engine(url, lock_timeout=config.lock_timeout)
        try:
            ensure_schema(engine, url)
        finally:
            engine.dispose()
    except DeliveryError as exc:
        print(f"email2ticket serve: warning: {exc.first_line()} (deliveries exit 75 until then)", file=sys.stderr)
    except Exception as exc:
        print(f"email2ticket serve: warning: database {redact(url)} not usable yet: {exc}", file=sys.stderr)


def bind(service: ServiceConfig) -> list[Listener]:
    listeners: list[Listener] = []
    try:
        if service.socket:
            sock = _bind_unix(service.socket, service.socket_mode, service.socket_group)
            listeners.append(Listener("pipe", sock, service.socket, service.socket))
        if service.lmtp:
            host, port = parse_listen_address(service.lmtp)
            if host == "unix":
                path = str(port)
                sock = _bind_unix(path, service.socket_mode, service.socket_group)
                listeners.append(Listener("lmtp", sock, path, service.lmtp))
            else:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.create_server((host, int(port)), family=family, backlog=BACKLOG)
                listeners.append(Listener("lmtp", sock, None, service.lmtp))
    except BaseException:
        _close(listeners)
        raise
    return listeners


def _bind_unix(path: str, mode: int, group: str | None) -> socket.socket:
    """Bind a Unix socket file with the configured permissions; refuse to steal one that is in use."""
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            _remove_stale(path)
        else:
            raise ConfigurationError(f"{path} exists and is not a socket")
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        previous = os.umask(0o177)  # never world-accessible, not even between bind and chmod
        try:
            sock.bind(path)
        finally:
            os.umask(previous)
        if group is not None:
            try:
                os.chown(path, -1, grp.getgrnam(group).gr_gid)
            except KeyError:
                raise ConfigurationError(f"service.socket_group {group!r} is not a group") from None
        os.chmod(path, mode)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {path}: {exc.strerror or exc}") from exc
    except BaseException:
        sock.close()
        raise
    return sock


def _remove_stale(path: str) -> None:
    """Remove a socket file that nobody listens on (a service that died left it); one sentence, never a
    traceback, when someone does, when it cannot be told (another user's socket), or when it cannot go."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            pass  # left behind by a service that died
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ConfigurationError(
                f"cannot tell whether another service listens on {path} ({_owner(path)}): {exc.strerror or exc}; "
                "remove the file if none does, or choose another socket path"
            ) from None
        else:
            raise ConfigurationError(f"another process is already serving {path}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigurationError(
            f"cannot remove {path}, left behind by a service that stopped ({_owner(path)}): {exc.strerror or exc}; "
            "remove it as its owner or root, or choose another socket path"
        ) from None


def _owner(path: str) -> str:
    try:
        uid = os.stat(path).st_uid
        return f"it belongs to {pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"it belongs to uid {uid}"
    except OSError:
        return "gone meanwhile"


def _close(listeners: list[Listener]) -> None:
    """Remove the socket files first: from then on, new clients fall back at once."""
    _unlink(listeners)
    for listener in listeners:
        listener.sock.close()


def _unlink(listeners: list[Listener]) -> None:
    for listener in listeners:
        if listener.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(listener.path)


def _supervise(reloader: Reloader, listeners: list[Listener], metrics: MetricsServer | None) -> int:
    """Fork the workers, replace any that dies, pass SIGHUP on, and stop them all on SIGTERM/SIGINT."""
    children: set[int] = set()
    stopping = False

    def reload(_signum: int, _frame: object) -> None:
        reloader.reload()  # for the workers forked from now on; each running one reloads by itself
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            _notify(b"STOPPING=1")
            _close(listeners)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def spawn() -> None:
        supervisor = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker: default signal dispositions, its own event loop, pool and threads
            code = 75
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                Hangup.pending = False  # the supervisor's: it reloads itself, and then forwards the signal
                signal.signal(signal.SIGHUP, Hangup.remember)  # until its event loop takes it over
                _die_with(supervisor)
                code = _run_worker(reloader, listeners, notify=False)
            finally:
                sys.stderr.flush()
                os._exit(code)
        children.add(pid)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    if Hangup.pending:  # one came while it started
        Hangup.pending = False
        reload(signal.SIGHUP, None)
    for _ in range(reloader.running.service.workers):
        spawn()
    _notify(b"READY=1")
    while children:
        pid, status = os.wait()
        children.discard(pid)
        if metrics is not None:
            metrics.process_ended(pid)
        if not stopping:
            print(f"email2ticket serve: worker {pid} ended ({_describe_status(status)}); replacing it", file=sys.stderr)
            time.sleep(RESPAWN_DELAY)
            if not stopping:
                spawn()
    return 0


def _die_with(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when `parent` (the supervisor that forked it) dies: it then
    drains like any shutdown. Linux's prctl(PR_SET_PDEATHSIG); elsewhere the supervisor's own SIGTERM is all."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            error = os.strerror(ctypes.get_errno())
            print(f"email2ticket serve: worker {os.getpid()} cannot follow its parent: {error}", file=sys.stderr)
    if os.getppid() != parent:  # it died before the request was made: nothing would tell us any more
        os.kill(os.getpid(), signal.SIGTERM)


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _run_worker(reloader: Reloader, listeners: list[Listener], *, notify: bool) -> int:
    try:
        return asyncio.run(_worker(reloader, listeners, notify=notify))
    finally:  # asyncio restored the default dispositions: a repeated SIGTERM must not kill the clean-up
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)


async def _worker(reloader: Reloader, listeners: list[Listener], *, notify: bool) -> int:
    """One process's event loop: accept on every listener until told to stop, then drain."""
    from .lmtp import LmtpHandler
    from .pipe import PipeServer
    from .worker import GRACE, Deliverer, Lifecycle

    config = reloader.running
    loop = asyncio.get_running_loop()
    metrics = None
    if config.service.metrics:
        from .metrics import Metrics

        metrics = Metrics()
    lifecycle = Lifecycle(metrics.in_flight if metrics else None)
    deliverer = Deliverer(config, metrics)
    lmtp = LmtpHandler(deliverer, lifecycle)
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    who = "email2ticket serve" if notify else f"email2ticket serve: worker {os.getpid()}"

    def hangup() -> None:
        Hangup.pending = False
        deliverer.reconfigure(reloader.reload(who))

    loop.add_signal_handler(signal.SIGHUP, hangup)
    if Hangup.pending:  # one came while this process started
        loop.call_soon(hangup)
    servers: list[asyncio.AbstractServer] = []

    def factory() -> asyncio.Protocol:  # a new LMTP session: the configuration as it is now
        return lmtp.protocol(loop, max_message_bytes=deliverer.config.max_message_bytes)

    for listener in listeners:
        if listener.kind == "pipe":
            servers.append(await asyncio.start_unix_server(PipeServer(deliverer, lifecycle), sock=listener.sock))
        else:
            if listener.path is not None:
                servers.append(await loop.create_unix_server(factory, sock=listener.sock))
            else:
                servers.append(await loop.create_server(factory, sock=listener.sock))
    if notify:
        _notify(b"READY=1")
    await stopped.wait()
    lifecycle.draining = True
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, lambda: None)  # already draining
    for server in servers:
        server.close()  # stops accepting and closes this process's listening sockets
    if notify:
        _notify(b"STOPPING=1")
        _unlink(listeners)
    if not await lifecycle.wait_idle(deliverer.config.delivery_timeout + GRACE):
        print("email2ticket serve: deliveries still running at shutdown; their mail is retried", file=sys.stderr)
    lmtp.close_sessions()
    deliverer.close()
    return 0


def _notify(state: bytes) -> None:
    """sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    address = "\0" + path[1:] if path.startswith("@") else path
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(state)
