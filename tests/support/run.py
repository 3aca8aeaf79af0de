"""Running an executable to its end, as the tests do: ``Runner(script, home)(*args, stdin=...) -> Result``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support.executables import child_env


@dataclass(frozen=True)
class Result:
    """Outcome of one run of an executable."""

    returncode: int
    stdout: bytes
    stderr: bytes
    argv: tuple[str, ...] = field(default=(), compare=False)

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")

    @property
    def stderr_first_line(self) -> str:
        lines = self.stderr_text.splitlines()
        return lines[0] if lines else ""

    @property
    def json(self) -> Any:
        """stdout parsed as its single JSON line (AssertionError if it is not exactly one)."""
        lines = [line for line in self.stdout_text.splitlines() if line.strip()]
        if len(lines) != 1:
            raise AssertionError(f"expected exactly one JSON line on stdout, got {len(lines)}\n{self}")
        try:
            return json.loads(lines[0])
        except json.JSONDecodeError as exc:
            raise AssertionError(f"stdout is not JSON ({exc})\n{self}") from None

    def __str__(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\nexit status {self.returncode}\n"
            f"--- stdout ---\n{self.stdout_text}\n--- stderr ---\n{self.stderr_text}"
        )


class Runner:
    """Runs ``[sys.executable, script, *args]`` in a clean environment.

    The child gets only PATH, HOME (a per-test directory, also the working
    directory) and PYTHONPATH=<repo>/lib (so the working tree is what runs,
    installed or not); nothing else from the outer environment, in particular
    no EMAIL2TICKET_* variable.  ``env`` entries are merged over that; a value
    of None removes the variable.  A subclass changes ``command``,
    ``base_env`` and ``options`` to run something else the same way.
    """

    def __init__(self, script: Path, home: Path) -> None:
        self.script = script
        self.home = home

    def base_env(self) -> dict[str, str]:
        return child_env(self.home)

    def command(self, args: tuple[str, ...]) -> tuple[str, ...]:
        return (sys.executable, str(self.script), *args)

    def options(self) -> dict[str, Any]:
        """Further subprocess.run() keyword arguments: the working directory (made if missing)."""
        self.home.mkdir(parents=True, exist_ok=True)
        return {"cwd": self.home}

    def __call__(
        self,
        *args: str | os.PathLike[str],
        stdin: bytes = b"",
        env: Mapping[str, str | None] | None = None,
        timeout: float = 120.0,
        cwd: Path | None = None,
    ) -> Result:
        child = self.base_env()
        for key, value in (env or {}).items():
            if value is None:
                child.pop(key, None)
            else:
                child[key] = value
        argv = self.command(tuple(os.fspath(a) for a in args))
        options = self.options() | ({"cwd": cwd} if cwd else {})
        try:
            proc = subprocess.run(
                argv, input=stdin, capture_output=True, env=child, timeout=timeout, check=False, **options
            )
        except subprocess.TimeoutExpired as exc:
            partial = Result(-1, exc.stdout or b"", exc.stderr or b"", argv)
            pytest.fail(f"timed out after {timeout} s\n{partial}", pytrace=False)
        return Result(proc.returncode, proc.stdout, proc.stderr, argv)
