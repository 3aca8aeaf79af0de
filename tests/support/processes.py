"""The processes a test leaves running: this (pytest) process's descendants, read from /proc.

``snapshot()`` before the test names every descendant alive then (the servers of wider-scoped fixtures, their
workers); ``leftovers(before)`` after it lists the live descendants reached without passing through one of those:
what the test, or one of its function-scoped fixtures, started and did not stop. A process that daemonizes
(forks twice, as ``pg_ctl`` and the MTAs do) leaves this tree for init's and is not seen; zombies are dead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    started: int  # clock ticks after boot: (pid, started) names one process, whatever pid reuse does
    state: str

    @property
    def key(self) -> tuple[int, int]:
        return self.pid, self.started

    def command(self) -> str:
        try:
            raw = (PROC / str(self.pid) / "cmdline").read_bytes()
        except OSError:
            return "?"
        return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def _read(pid: int) -> Process | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:  # gone meanwhile
        return None
    # "pid (comm) state ppid ... starttime ...": comm may hold spaces and parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    return Process(pid, int(fields[1]), int(fields[19]), fields[0])


def _table() -> dict[int, list[Process]]:
    """parent pid -> its children, for every process now."""
    children: dict[int, list[Process]] = {}
    for entry in PROC.iterdir():
        process = _read(int(entry.name)) if entry.name.isdigit() else None
        if process is not None:
            children.setdefault(process.ppid, []).append(process)
    return children


def _descendants(skip: frozenset[tuple[int, int]] = frozenset()) -> list[Process]:
    """This process's live descendants, not descending into the processes in `skip`."""
    table, found, todo = _table(), [], [os.getpid()]
    while todo:
        for child in table.get(todo.pop(), []):
            if child.key in skip:
                continue
            if child.state not in ("Z", "X"):
                found.append(child)
            todo.append(child.pid)
    return found


def snapshot() -> frozenset[tuple[int, int]]:
    return frozenset(process.key for process in _descendants())


def leftovers(before: frozenset[tuple[int, int]], grace: float = 3.0) -> list[Process]:
    """The live descendants that were not there `before` (their subtrees included), after up to `grace`
    seconds for processes that are on their way out."""
    deadline = time.monotonic() + grace
    while (left := _descendants(before)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def kill(processes: list[Process]) -> None:
    """SIGKILL each of them (only processes of this tree: leftovers() found them)."""
    for process in processes:
        now = _read(process.pid)
        if now is not None and now.key == process.key:  # not another process that got the pid since
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
