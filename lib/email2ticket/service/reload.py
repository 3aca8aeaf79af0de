"""Reloading the service's configuration on SIGHUP, as the daemons admins already run do, without a restart.

A restart closes the sockets: new pipe deliveries fall back to standalone (or 75) and LMTP sessions get 451
until the new process listens. A reload loses nothing: the new configuration applies to every delivery that
starts after it, while the ones in flight finish with the configuration they started with (a delivery reads
the configuration once, at its start). What it cannot change in a running process is kept, and the log says
it needs a restart: the database (the pools are connected to it, and its lock wait is set when they connect)
and the [service] table's sockets, processes, threads and metrics address. `retry_interval` applies at once.

`merge` is the decision, a pure function over the three configurations; `Reloader` is the shell that reads
the file and logs. A file that no longer parses changes nothing: the service keeps running as it was.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from msgspec.structs import replace

from ..exits import DeliveryError

if TYPE_CHECKING:
    from ..config.model import Config

# What a running service cannot take over (see the module's docstring), as the configuration file names it.
RESTART_SETTINGS = ("database_url",)
RESTART_SERVICE_SETTINGS = (
    *("socket", "socket_mode", "socket_group", "lmtp", "lmtp_allow_tcp"),
    *("workers", "threads", "metrics"),
)


def merge(running: Config, started: Config, fresh: Config) -> tuple[Config, list[str]]:
    """The configuration to run with after a reload, and the settings that changed but need a restart.

    `running` is what the service runs with (the command line's --socket, --threads... applied), `started`
    what the file said when it started, `fresh` what it says now. Everything comes from `fresh` but the
    restart-only settings, which stay `running`'s; those that differ between `started` and `fresh` are named.
    """
    changed = [name for name in RESTART_SETTINGS if getattr(fresh, name) != getattr(started, name)]
    changed += [
        f"service.{name}"
        for name in RESTART_SERVICE_SETTINGS
        if getattr(fresh.service, name) != getattr(started.service, name)
    ]
    service = replace(running.service, retry_interval=fresh.service.retry_interval)
    return replace(fresh, database_url=running.database_url, service=service), changed


class Hangup:
    """A SIGHUP that came before this process could reload (while it started, or between a worker's fork and its
    event loop): remembered, so that it reloads as soon as it can, instead of ending or ignoring the signal."""

    pending = False

    @classmethod
    def remember(cls, _signum: int, _frame: object) -> None:
        cls.pending = True


class Reloader:
    """Reads the configuration again (the way the command started with did) and applies what it may."""

    def __init__(self, load: Callable[[], Config], started: Config, running: Config) -> None:
        self.load = load
        self.started = started
        self.running = running

    def reload(self, who: str = "email2ticket serve") -> Config:
        """The configuration to run with from now on (the old one when the file is broken), after one log line."""
        try:
            fresh = self.load()
        except DeliveryError as exc:
            _log(f"{who}: reload refused, still running with the previous configuration: {exc.reason}")
            return self.running
        except Exception as exc:  # a bug must not end the service: it runs on as it was
            _log(f"{who}: reload failed, still running with the previous configuration: {type(exc).__name__}: {exc}")
            return self.running
        self.running, changed = merge(self.running, self.started, fresh)
        restart = f"; changed but applied only by a restart: {', '.join(changed)}" if changed else ""
        _log(f"{who}: configuration reloaded from {fresh.source or 'the built-in defaults'}{restart}")
        return self.running


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
